"""The modulefiles in modules/, loaded by the real Lmod and the real Environment Modules (docs/modules.md).

Debian 12's ``lmod`` and ``environment-modules`` conflict, so scripts/setup installs lmod and unpacks
environment-modules into /opt/hpcx-envmodules; both are driven here through their own ``module`` shell
functions (Lmod's init/bash, and what Environment Modules' ``modulecmd.tcl bash autoinit`` prints), in a
clean ``bash --norc`` whose PATH does not reach hpcx. Each test copies modules/ to a temporary module tree
and edits the marked site-settings lines, as an admin does, to point at this checkout's virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import hpcx

REPO = Path(__file__).resolve().parents[2]
PREFIX = Path(sys.executable).parent.parent  # the virtualenv the tests run in; `hpcx` is in its bin/
SITE = REPO / "examples" / "sites" / "testbed.yaml"
TEMPLATE_DIR = REPO / "job_templates"
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
SHELL_TIMEOUT_S = 60

LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")
ENVMOD_DIR = Path(os.environ.get("HPCX_ENVMODULES_DIR", "/opt/hpcx-envmodules"))
ENVMOD_CMD = ENVMOD_DIR / "usr" / "lib" / "modulecmd.tcl"
TCLSH = "/usr/bin/tclsh"

# The shell code that defines `module` for each tool.
INIT = {
    "lmod": f"source {LMOD_INIT}",
    "envmodules": f'eval "$({TCLSH} {ENVMOD_CMD} bash autoinit)"',
}
# The modulefile each tool picks from the shipped tree, where both files sit side by side.
PICKS = {"lmod": "0.1.0.lua", "envmodules": "0.1.0"}
# Each tool's own bookkeeping variables; everything else must be as it was before the load.
BOOKKEEPING = re.compile(r"^(__LMOD_|_ModuleTable|LMOD_FAMILY_|__MODULES_|LOADEDMODULES$|_LMFILES_$)")

# The marked site-settings lines (docs/modules.md), as regexes over each modulefile, and their new values.
SETTINGS = {
    "lua": {
        "prefix": (r'^(local prefix\s*=\s*)"[^"]*"', '"{}"'),
        "site_file": (r'^(local site_file\s*=\s*)"[^"]*"', '"{}"'),
        "template_dir": (r'^(local template_dir\s*=\s*)"[^"]*"', '"{}"'),
    },
    "tcl": {
        "prefix": (r"^(set prefix\s+)\S+", "{}"),
        "site_file": (r"^(set site_file\s+)\S+", "{}"),
        "template_dir": (r"^(set template_dir\s+)\S+", "{}"),
    },
}


def _require(tool: str) -> None:
    """A missing tool fails the test where scripts/setup should have installed it (root, or CI)."""
    path = LMOD_INIT if tool == "lmod" else ENVMOD_CMD
    missing = [str(p) for p in (path, Path(TCLSH)) if not p.exists()]
    if not missing:
        return
    msg = f"{tool}: {', '.join(missing)} missing; run `bash scripts/setup` as root"
    if os.geteuid() != 0 and os.environ.get("CI") != "true":
        pytest.skip(msg)
    pytest.fail(msg)


def _edit_settings(modulefile: Path, **values: str) -> None:
    text = modulefile.read_text()
    for key, value in values.items():
        pattern, fmt = SETTINGS["lua" if modulefile.suffix == ".lua" else "tcl"][key]
        new = fmt.format(value)
        text, n = re.subn(pattern, lambda m, new=new: m.group(1) + new, text, flags=re.M)
        assert n == 1, f"{modulefile.name}: expected one marked `{key}` line, found {n}"
    modulefile.write_text(text)


def _tree(root: Path, files: tuple[str, ...] = ("0.1.0.lua", "0.1.0")) -> Path:
    """A copy of modules/ (only ``files`` of it) with the site settings pointing at this checkout."""
    assert (PREFIX / "bin" / "hpcx").exists(), f"no hpcx in {PREFIX}/bin: is hpcx installed in this venv?"
    shutil.copytree(REPO / "modules", root)
    for f in {"0.1.0.lua", "0.1.0"} - set(files):
        (root / "hpcx" / f).unlink()
    for f in files:
        _edit_settings(
            root / "hpcx" / f, prefix=str(PREFIX), site_file=str(SITE), template_dir=str(TEMPLATE_DIR)
        )
    return root


def _bash(
    tool: str, tree: Path, body: str, tmp: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``body`` in a clean bash with the tool's `module` defined and MODULEPATH set to ``tree``."""
    _require(tool)
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    script = f"{INIT[tool]}\nexport MODULEPATH={tree}\n{body}\n"
    return subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env={"HOME": str(home), "PATH": BASE_PATH, "LANG": "C.UTF-8", "TERM": "dumb", **(env or {})},
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def _check(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (
        f"bash exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc


def _env(path: Path) -> dict[str, str]:
    items = (e.split("=", 1) for e in path.read_bytes().decode().split("\0") if e)
    return {k: v for k, v in items if not k.startswith("BASH_FUNC_") and k != "_"}


def _user_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not BOOKKEEPING.match(k)}


TOOLS = pytest.mark.parametrize("tool", ["lmod", "envmodules"])


@TOOLS
def test_load_runs_hpcx_and_unload_restores_the_environment(tool: str, tmp_path: Path) -> None:
    tree = _tree(tmp_path / "modules")
    _check(
        _bash(
            tool,
            tree,
            """
            set -e
            if command -v hpcx; then echo "hpcx is reachable before the load" >&2; exit 10; fi
            env -0 > before.env
            module load hpcx/0.1.0
            env -0 > loaded.env
            command -v hpcx > which.txt
            hpcx --version > version.txt
            hpcx --json site show > site.json
            module unload hpcx
            env -0 > after.env
            if command -v hpcx; then echo "hpcx is reachable after the unload" >&2; exit 11; fi
            """,
            tmp_path,
        )
    )
    before, loaded, after = (_env(tmp_path / f"{s}.env") for s in ("before", "loaded", "after"))

    assert loaded["_LMFILES_"] == str(tree / "hpcx" / PICKS[tool])
    assert loaded["PATH"] == f"{PREFIX}/bin:{before['PATH']}"
    assert loaded["HPCX_SITE"] == str(SITE)
    assert loaded["HPCX_TEMPLATE_DIR"] == str(TEMPLATE_DIR)
    assert (tmp_path / "which.txt").read_text().strip() == f"{PREFIX}/bin/hpcx"
    assert (tmp_path / "version.txt").read_text().strip() == f"hpcx, version {hpcx.__version__}"
    site = json.loads((tmp_path / "site.json").read_text())  # hpcx read the site file the module named
    assert (site["source"], site["origin"]) == (str(SITE), "env")
    assert site["name"] == yaml.safe_load(SITE.read_text())["name"]

    assert "HPCX_SITE" not in before and "HPCX_SITE" not in after
    assert after["PATH"] == before["PATH"] == BASE_PATH
    assert _user_env(after) == _user_env(before)


@TOOLS
def test_unload_puts_back_the_users_own_values(tool: str, tmp_path: Path) -> None:
    """A user's HPCX_SITE survives load + unload, and so does a PATH entry the module also adds."""
    tree = _tree(tmp_path / "modules")
    own = {"HPCX_SITE": "/home/me/my-site.yaml", "HPCX_TEMPLATE_DIR": "/home/me/templates"}
    start_path = f"/usr/local/bin:{PREFIX}/bin:/usr/bin:/bin"
    _check(
        _bash(
            tool,
            tree,
            "set -e; env -0 > before.env; module load hpcx/0.1.0; env -0 > loaded.env; hpcx --version; "
            "module unload hpcx; env -0 > after.env",
            tmp_path,
            env={**own, "PATH": start_path},
        )
    )
    loaded, after = _env(tmp_path / "loaded.env"), _env(tmp_path / "after.env")
    assert (loaded["HPCX_SITE"], loaded["HPCX_TEMPLATE_DIR"]) == (str(SITE), str(TEMPLATE_DIR))
    assert {k: after.get(k) for k in own} == own
    # Both tools keep the user's entry on unload; Lmod moves it to the front on load and leaves it there.
    assert sorted(after["PATH"].split(":")) == sorted(start_path.split(":"))
    if tool == "envmodules":
        assert after["PATH"] == start_path


@TOOLS
def test_only_one_hpcx_at_a_time(tool: str, tmp_path: Path) -> None:
    """Lmod swaps versions (family "hpcx"); Environment Modules refuses the second (conflict hpcx)."""
    tree = _tree(tmp_path / "modules")
    other = tmp_path / "hpcx-0.2.0"
    for name in ("0.1.0.lua", "0.1.0"):
        target = tree / "hpcx" / name.replace("0.1.0", "0.2.0")
        shutil.copy(tree / "hpcx" / name, target)
        _edit_settings(target, prefix=str(other))
    proc = _bash(
        tool,
        tree,
        "module load hpcx/0.1.0 || exit 10; module load hpcx/0.2.0; echo rc=$?; env -0 > loaded.env",
        tmp_path,
    )
    _check(proc)
    loaded = _env(tmp_path / "loaded.env")
    entries = loaded["PATH"].split(":")
    if tool == "lmod":
        assert "rc=0" in proc.stdout
        assert loaded["LOADEDMODULES"] == "hpcx/0.2.0"
        assert (loaded["LMOD_FAMILY_HPCX"], loaded["LMOD_FAMILY_HPCX_VERSION"]) == ("hpcx", "0.2.0")
        assert f"{other}/bin" in entries and f"{PREFIX}/bin" not in entries
    else:
        assert "rc=1" in proc.stdout and "conflict" in proc.stderr, proc.stderr
        assert loaded["LOADEDMODULES"] == "hpcx/0.1.0"
        assert f"{PREFIX}/bin" in entries and f"{other}/bin" not in entries


def test_the_tcl_modulefile_under_lmod(tmp_path: Path) -> None:
    """A site with only the Tcl file on an Lmod system: it loads, runs hpcx, and unloads cleanly."""
    tree = _tree(tmp_path / "modules", files=("0.1.0",))
    _check(
        _bash(
            "lmod",
            tree,
            "set -e; env -0 > before.env; module load hpcx/0.1.0; env -0 > loaded.env; "
            "hpcx --version > version.txt; module unload hpcx; env -0 > after.env",
            tmp_path,
        )
    )
    before, loaded, after = (_env(tmp_path / f"{s}.env") for s in ("before", "loaded", "after"))
    assert loaded["_LMFILES_"] == str(tree / "hpcx" / "0.1.0")
    assert loaded["HPCX_SITE"] == str(SITE)
    assert (tmp_path / "version.txt").read_text().strip() == f"hpcx, version {hpcx.__version__}"
    assert _user_env(after) == _user_env(before)


@TOOLS
def test_help_and_whatis(tool: str, tmp_path: Path) -> None:
    tree = _tree(tmp_path / "modules")
    proc = _check(_bash(tool, tree, "module help hpcx/0.1.0 2>&1; module whatis hpcx/0.1.0 2>&1", tmp_path))
    for text in ("hpcx 0.1.0: a batch toolkit", f"HPCX_SITE          {SITE}", "Version: 0.1.0"):
        assert text in proc.stdout, proc.stdout


def test_shipped_settings_are_the_documented_defaults() -> None:
    """The files in modules/ carry the placeholders docs/modules.md tells an admin to edit."""
    lua = (REPO / "modules" / "hpcx" / "0.1.0.lua").read_text()
    tcl = (REPO / "modules" / "hpcx" / "0.1.0").read_text()
    assert tcl.startswith("#%Module")
    for key, default in {
        "prefix": "/opt/hpcx",
        "site_file": "/etc/hpcx/site.yaml",
        "template_dir": "/etc/hpcx/templates",
    }.items():
        assert re.search(rf'^local {key}\s*=\s*"{re.escape(default)}"', lua, re.M), key
        assert re.search(rf"^set {key}\s+{re.escape(default)}\s", tcl, re.M), key
    docs = (REPO / "docs" / "modules.md").read_text()
    assert all(d in docs for d in ("/opt/hpcx", "/etc/hpcx/site.yaml", "/etc/hpcx/templates"))
