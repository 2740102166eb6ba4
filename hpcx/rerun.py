"""Reproduce a run from its manifest, and say what cannot be restored."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from hpcx import __version__, _proc
from hpcx.errors import CommandError, UsageError
from hpcx.runs import Run
from hpcx.site import Site
from hpcx.submission import Request

_OPTION = {"time_min": "time", "mem_mb": "mem"}


def like_request(run: Run) -> Request:
    """The request that made ``run``: same kind (or its exact script), resources, variables and command."""
    m = run.manifest
    if not m:
        raise UsageError(
            f"run {run.id} has no manifest.json", hint="only runs submitted by hpcx can be rerun"
        )
    options = {_OPTION.get(k, k): v["value"] for k, v in m.get("resources", {}).items()}
    kind = m.get("kind", {}).get("value")
    named = {}  # admin-named resources were recorded as (flag, value); dependencies are not carried over
    script = run.dir / "job.sbatch" if kind == "script" else None
    return Request(
        kind=None if script else kind,
        options={k: (str(v) if v is not None else None) for k, v in options.items()},
        variables=dict(m.get("variables", {})),
        command=tuple(m.get("command", [])),
        workdir=Path(m.get("workdir") or Path.cwd()),
        named=named,
        script=script,
        inputs=tuple(e["path"] for e in m.get("inputs", []) if isinstance(e, dict) and "path" in e),
    )


def differences(run: Run, site: Site) -> list[str]:
    """What differs now from when ``run`` was submitted, one sentence each (empty: nothing we can see)."""
    m = run.manifest
    out = []
    old_site = m.get("site", {})
    if old_site.get("sha256") and old_site["sha256"] != site.sha256:
        out.append(f"the site file changed since the run ({old_site.get('source')} -> {site.source})")
    old_git = m.get("git", {})
    workdir = Path(m.get("workdir") or ".")
    if old_git.get("commit"):
        now = _head(workdir)
        if now != old_git["commit"]:
            out.append(f"the code is at commit {str(now)[:12]}, the run used {old_git['commit'][:12]}: "
                       f"check it out to reproduce exactly")  # fmt: skip
        if old_git.get("dirty"):
            out.append(
                "the run had uncommitted changes (its git.diff in the run directory); they are not re-applied"
            )
    versions = m.get("versions", {})
    if versions.get("hpcx") and versions["hpcx"] != __version__:
        out.append(f"hpcx is {__version__}, the run used {versions['hpcx']}")
    if versions.get("python") and versions["python"] != platform.python_version():
        out.append(f"Python is {platform.python_version()}, the run used {versions['python']}")
    out += _provenance_differences(m)
    out += _input_differences(m, workdir)
    return out


def _input_differences(m: dict[str, Any], workdir: Path) -> list[str]:
    from hpcx.provenance import fingerprint, resolve_input

    out = []
    for old in m.get("inputs", []):
        if not isinstance(old, dict) or "path" not in old:
            continue
        try:
            now = fingerprint(resolve_input(workdir, old["path"]))
        except (UsageError, OSError):
            out.append(f"input {old['path']} is gone")
            continue
        keys = ("sha256", "listing_sha256", "size_bytes", "size")
        if any(old.get(k) != now.get(k) for k in keys if k in old or k in now):
            out.append(f"input {old['path']} changed since the run (its fingerprint differs)")
    return out


def _provenance_differences(m: dict[str, Any]) -> list[str]:
    import os

    out = []
    prov = m.get("provenance", {})
    old_modules = prov.get("modules")
    now_modules = [x for x in os.environ.get("LOADEDMODULES", "").split(":") if x]
    if old_modules is not None and sorted(old_modules) != sorted(now_modules):
        out.append(f"loaded modules differ: the run had {old_modules or 'none'}, now {now_modules or 'none'}")
    old_slurm = (prov.get("slurm") or {}).get("version")
    if old_slurm:
        try:
            now = _proc.run(["sbatch", "--version"], timeout_s=10).stdout.split()[-1]
        except (CommandError, IndexError):
            now = None
        if now and now != old_slurm:
            out.append(f"Slurm is {now}, the run used {old_slurm}")
    return out


def _head(workdir: Path) -> str | None:
    try:
        return _proc.run(["git", "rev-parse", "HEAD"], cwd=workdir, timeout_s=10).stdout.strip()
    except (CommandError, OSError):
        return None
