"""The wheel carries every package of the tree: pyproject.toml lists packages by name, so a new package that is not
listed would be missing from a user's install while the editable install used by the tests still imports it."""

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "hpcx").rglob("__init__.py")}
    missing = sorted(found - listed)
    assert not missing, (
        f"pyproject.toml [tool.setuptools] packages lacks {missing}: add them or the wheel drops them"
    )
