"""Which site hpcx uses, in order: --site, HPCX_SITE, the user config's site, a system-wide site file, the live
Slurm cluster, and the builtin local site only where no Slurm answers or when asked for by name (issue 30, item 1).

These run `hpcx config show` as a user would, with PATH holding no `sinfo` (no Slurm here); the live cluster's
turn is tested against the real test cluster in tests/slurm/test_first_hour.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcx.site import SYSTEM_SITE_FILE, system_site_files

REPO = Path(__file__).resolve().parents[3]
TESTBED_SITE = REPO / "examples" / "sites" / "testbed.yaml"


def _site_file(path: Path, name: str) -> Path:
    """A valid site file whose name says which layer it stands for."""
    text = TESTBED_SITE.read_text().replace("name: testbed", f"name: {name}", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def plain(hpcx, tmp_path):
    """The CLI with no site named anywhere, no user config, no system-wide file and no Slurm on PATH."""
    if SYSTEM_SITE_FILE.exists():
        pytest.skip(f"{SYSTEM_SITE_FILE} exists on this machine: it would be the system-wide site")
    env = {k: v for k, v in hpcx.env.items() if k != "HPCX_SITE"}
    nobin = tmp_path / "nobin"
    nobin.mkdir()
    env.update(
        PATH=str(nobin),
        XDG_CONFIG_HOME=str(tmp_path / "home-config"),
        XDG_CONFIG_DIRS=str(tmp_path / "etc-xdg"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    return type(hpcx)(env)


def _site_row(hpcx, *args: str) -> dict:
    (row,) = [r for r in hpcx.json(*args, "config", "show")["values"] if r["key"] == "site"]
    return row


def test_without_site_file_or_slurm_the_local_site_is_used_and_named_as_such(plain):
    first = plain("config", "show").stdout.splitlines()[0]
    assert first.startswith("site: builtin local site, jobs run on this machine")
    assert "no Slurm here: sinfo is not on PATH" in first
    assert _site_row(plain)["source"] == "builtin"
    err = plain("submit", "--dry-run", "serial", "python", "train.py").stderr
    assert err.splitlines()[0].startswith("site: builtin local site"), err


def test_the_local_site_asked_for_by_name(plain):
    row = _site_row(plain, "--site", "local")
    assert (row["value"], row["source"]) == ("local", "cli")
    assert "asked for by --site" in row["note"]


def test_a_system_wide_site_file_is_found(plain, tmp_path):
    system = _site_file(tmp_path / "etc-xdg" / "hpcx" / "site.yaml", "system")
    row = _site_row(plain)
    assert (row["value"], row["source"]) == (str(system), "system")
    assert plain.json("site", "show")["name"] == "system"
    assert (
        plain("config", "show").stdout.splitlines()[0] == f"site: {system} (from the system-wide site file)"
    )


def test_order_of_precedence_end_to_end(plain, tmp_path):
    system = _site_file(tmp_path / "etc-xdg" / "hpcx" / "site.yaml", "system")
    user_site = _site_file(tmp_path / "user-site.yaml", "user")
    env_site = _site_file(tmp_path / "env-site.yaml", "env")
    cli_site = _site_file(tmp_path / "cli-site.yaml", "cli")
    assert _site_row(plain)["source"] == "system"
    config = tmp_path / "home-config" / "hpcx" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"site: {user_site}\n")
    assert (_site_row(plain)["value"], _site_row(plain)["source"]) == (str(user_site), "user")
    with_env = type(plain)({**plain.env, "HPCX_SITE": str(env_site)})
    assert (_site_row(with_env)["value"], _site_row(with_env)["source"]) == (str(env_site), "env")
    row = _site_row(with_env, "--site", str(cli_site))
    assert (row["value"], row["source"]) == (str(cli_site), "cli")
    assert with_env.json("--site", str(cli_site), "site", "show")["name"] == "cli"
    assert str(system) not in {_site_row(with_env)["value"]}


def test_xdg_config_dirs_come_in_their_order_before_etc_hpcx():
    env = {"XDG_CONFIG_DIRS": "/opt/site-a:/opt/site-b"}
    assert system_site_files(env) == [
        Path("/opt/site-a/hpcx/site.yaml"),
        Path("/opt/site-b/hpcx/site.yaml"),
        Path("/etc/hpcx/site.yaml"),
    ]
    assert system_site_files({}) == [Path("/etc/hpcx/site.yaml")]
