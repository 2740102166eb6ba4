"""The layout's rules, read from the code itself (docs/architecture.md): which side of the job boundary a package is on,
what it may import, and who may spell a run directory's file names. Each failure names the file, the line and the rule.

These read source with ``ast`` only: they need no installed extras and run in CI's first stage, before the machine is
set up, so a broken rule fails in seconds.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

HPCX = Path(__file__).resolve().parents[2] / "hpcx"

LOGIN = (
    "cli",
    "site",
    "templates",
    "schedulers",
    "submit",
    "runs",
    "reports",
    "compare",
    "ui",
    "pipeline",
    "catalog",
    "envs",
)
COMPUTE = ("runtime", "profiling", "run")
# Imported by the login side only inside the function that needs them: `hpcx --help` must stay fast on a login node.
HEAVY = ("torch", "mpi4py", "h5py", "numpy", "matplotlib", "scipy", "psutil", "pynvml")
# A run directory's names, spelled in hpcx/rundir/ and nowhere else (DESIGN.md, "The run directory").
RUN_DIR_FILES = {
    "manifest.json",
    "job.json",
    "job.sbatch",
    "tasks.jsonl",
    "sweep.yaml",
    "git.diff",
    "git-untracked.txt",
    "accounting.json",
    "attempts.jsonl",
    "outputs.json",
    "environment.json",
    "report.json",
    "report.html",
    "audit.jsonl",
}
# A line that builds a name of the same shape for a file that is NOT in a run directory (the HDF5 writer's per-rank
# parts beside the user's data file) says so with this comment, and the rule passes it.
NOT_RUN_DIR = "# not in a run directory"
RUN_DIR_PREFIXES = ("task-", "rank-", "node-", "comm-rank-", "io-rank-", "regions-rank-", "metrics-rank-")


@dataclass(frozen=True)
class Module:
    path: Path
    rel: str  # hpcx/submit/preflight.py
    name: str  # hpcx.submit.preflight
    tree: ast.Module

    @property
    def package(self) -> str:
        """The top-level part under hpcx: 'submit', 'run', 'errors', ..."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else ""

    def where(self, node: ast.AST) -> str:
        return f"{self.rel}:{getattr(node, 'lineno', 0)}"


def load(root: Path = HPCX) -> list[Module]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        name = ".".join(parts)
        out.append(
            Module(path, str(path.relative_to(root.parent)), name, ast.parse(path.read_text(), str(path)))
        )
    return out


def side(package: str) -> str | None:
    return "login" if package in LOGIN else "compute" if package in COMPUTE else None


def imports(module: Module) -> list[tuple[ast.AST, str, bool]]:
    """(node, imported module, at module level) for every import, relative ones resolved."""
    top = set(map(id, module.tree.body))
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            found += [(node, alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.name.split(".")[
                    : -node.level + (1 if module.path.name == "__init__.py" else 0) or None
                ]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node, base, id(node) in top))
            found += [
                (node, f"{base}.{alias.name}", id(node) in top) for alias in node.names if base == "hpcx"
            ]
    return found


def crossing_imports(modules: list[Module]) -> list[str]:
    bad = []
    for m in modules:
        mine = side(m.package)
        for node, target, _ in imports(m):
            parts = target.split(".")
            theirs = side(parts[1]) if parts[0] == "hpcx" and len(parts) > 1 else None
            if mine and theirs and mine != theirs:
                bad.append(f"{m.where(node)}: {mine}-side {m.name} imports {target} from the {theirs} side")
    return bad


def heavy_imports(modules: list[Module]) -> list[str]:
    bad = []
    for m in modules:
        if side(m.package) != "login":
            continue
        for node, target, top_level in imports(m):
            if top_level and target.split(".")[0] in HEAVY:
                bad.append(
                    f"{m.where(node)}: login-side {m.name} imports {target} at module level "
                    "(import it inside the function that needs it)"
                )
    return bad


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            found.add(id(body[0].value))
    return found


def run_dir_names(modules: list[Module]) -> list[str]:
    """A string that IS a run-directory file name, or an f-string that builds one from a prefix, outside rundir/."""
    bad = []
    for m in modules:
        if m.package == "rundir":
            continue
        skip = _docstrings(m.tree)
        lines = m.path.read_text().splitlines()
        for node in ast.walk(m.tree):
            if NOT_RUN_DIR in lines[getattr(node, "lineno", 1) - 1]:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                if node.value in RUN_DIR_FILES:
                    bad.append(
                        f"{m.where(node)}: {m.name} spells the run-directory name {node.value!r} "
                        "(use hpcx.rundir.layout)"
                    )
            elif isinstance(node, ast.JoinedStr) and node.values:
                head = node.values[0]
                if (
                    isinstance(head, ast.Constant)
                    and str(head.value).startswith(RUN_DIR_PREFIXES)
                    and any(isinstance(v, ast.FormattedValue) for v in node.values)
                ):
                    bad.append(
                        f"{m.where(node)}: {m.name} builds a run-directory name from {head.value!r} "
                        "(use hpcx.rundir.layout)"
                    )
    return bad


def test_neither_side_imports_the_other():
    assert crossing_imports(load()) == []


def test_the_login_side_imports_no_heavy_package_at_module_level():
    assert heavy_imports(load()) == []


def test_only_rundir_spells_the_run_directorys_names():
    assert run_dir_names(load()) == []


# --- the rules fail when broken: each shown once on a small tree written for it --------------------------------


@pytest.fixture
def tree(tmp_path):
    def write(files: dict[str, str]) -> list[Module]:
        for name, text in files.items():
            path = tmp_path / "hpcx" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return load(tmp_path / "hpcx")

    return write


def test_a_login_module_importing_the_runtime_is_named_with_its_line(tree):
    modules = tree(
        {
            "submit/__init__.py": "",
            "submit/bad.py": "import os\n\ndef f():\n    from hpcx.runtime import dist\n",
        }
    )
    assert crossing_imports(modules) == [
        "hpcx/submit/bad.py:4: login-side hpcx.submit.bad imports hpcx.runtime from the compute side"
    ]


def test_the_compute_side_importing_the_login_side_is_named(tree):
    modules = tree(
        {"run.py": "from hpcx.submit import sweeps\n", "profiling/x.py": "from ..reports import build\n"}
    )
    assert crossing_imports(modules) == [
        "hpcx/profiling/x.py:1: compute-side hpcx.profiling.x imports hpcx.reports from the login side",
        "hpcx/run.py:1: compute-side hpcx.run imports hpcx.submit from the login side",
    ]


def test_a_heavy_import_at_module_level_on_the_login_side_is_named_but_inside_a_function_is_fine(tree):
    modules = tree(
        {
            "reports/a.py": "import numpy as np\n",
            "reports/b.py": "def f():\n    import numpy\n",
            "runtime/c.py": "import torch\n",
        }
    )
    assert heavy_imports(modules) == [
        "hpcx/reports/a.py:1: login-side hpcx.reports.a imports numpy at module level "
        "(import it inside the function that needs it)"
    ]


def test_a_run_directory_name_outside_rundir_is_named_but_a_docstring_or_message_is_not(tree):
    modules = tree(
        {
            "reports/a.py": '"""Reads manifest.json."""\nM = "manifest.json"\ndef f(r):\n    return f"task-{r:05d}"\n',
            "reports/b.py": 'def g():\n    raise ValueError("manifest.json is missing")\n',
            "io/parts.py": 'def part(r):\n    return f"rank-{r:05d}.h5"  # not in a run directory: beside the data\n',
            "rundir/layout.py": 'MANIFEST = "manifest.json"\n',
        }
    )
    assert run_dir_names(modules) == [
        "hpcx/reports/a.py:2: hpcx.reports.a spells the run-directory name 'manifest.json' (use hpcx.rundir.layout)",
        "hpcx/reports/a.py:4: hpcx.reports.a builds a run-directory name from 'task-' (use hpcx.rundir.layout)",
    ]
