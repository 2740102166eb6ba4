"""Run directories: creating them, finding them by id, prefix or job id, and the records inside."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.errors import RunNotFoundError, UsageError
from hpcx.fsutil import atomic_write, atomic_write_json, read_json

SUBDIRS = ("logs", "profile", "checkpoints", "report")
JOB_FILE = "job.json"


@dataclass(frozen=True)
class Run:
    """A run directory and what it records about its job (job.json and manifest.json are read once, on first
    use: make a new Run to see later changes)."""

    id: str
    dir: Path

    @functools.cached_property
    def job(self) -> dict[str, Any]:
        """The scheduler record (scheduler, job_id, submitted_at); empty before submission."""
        path = self.dir / JOB_FILE
        return read_json(path) if path.exists() else {}

    @functools.cached_property
    def manifest(self) -> dict[str, Any]:
        path = self.dir / "manifest.json"
        return read_json(path) if path.exists() else {}


def new_run_id(now: _dt.datetime | None = None) -> str:
    """A sortable, unique id: UTC time plus 6 random hex digits."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def create_run(root: Path) -> Run:
    """Create a fresh run directory under ``root`` (mkdir is exclusive, so concurrent callers never share one)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"runs root {str(root)!r} cannot be created: {exc.strerror}",
            hint="set HPCX_RUNS or runs_root in the site file to a writable directory",
        ) from exc
    for _ in range(10):
        run_id = new_run_id()
        try:
            (root / run_id).mkdir()
        except FileExistsError:
            continue
        for sub in SUBDIRS:
            (root / run_id / sub).mkdir()
        return Run(run_id, root / run_id)
    raise UsageError(f"could not create a unique run directory under {root}")


def discard_run(run: Run) -> None:
    """Remove a run directory whose submission failed, so nothing half-written stays behind."""
    import shutil

    shutil.rmtree(run.dir, ignore_errors=True)


def write_file(run: Run, name: str, data: str, *, mode: int = 0o644) -> Path:
    return atomic_write(run.dir / name, data, mode=mode)


def record_job(run: Run, record: dict[str, Any]) -> None:
    atomic_write_json(run.dir / JOB_FILE, record)


def list_runs(root: Path) -> list[Run]:
    """Every run under ``root``, oldest first (run ids sort by creation time)."""
    if not root.is_dir():
        return []
    return [Run(p.name, p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def find_run(root: Path, key: str) -> Run:
    """Find a run by exact id, unique id prefix, Slurm job id, or a path to a run directory."""
    if os.sep in key and Path(key).is_dir():
        p = Path(key).resolve()
        return Run(p.name, p)
    runs = list_runs(root)
    exact = [r for r in runs if r.id == key]
    if exact:
        return exact[0]
    by_prefix = [r for r in runs if r.id.startswith(key)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    if len(by_prefix) > 1:
        shown = ", ".join(r.id for r in by_prefix[:5])
        raise RunNotFoundError(
            f"run {key!r} is ambiguous: {len(by_prefix)} runs start with it ({shown})",
            hint="give more characters of the run id",
        )
    from hpcx.runs.index import refresh_index  # the index module imports this one

    # The index reads only new or changed job.json files, instead of every run's; a sweep answers to each array.
    by_job = [r["run_id"] for r in refresh_index(root).rows if key in r["job_ids"]]
    if by_job:
        return Run(by_job[-1], root / by_job[-1])
    raise RunNotFoundError(
        f"no run {key!r} under {root}",
        hint="list runs with `hpcx runs`, or set HPCX_RUNS to the runs root it lives in",
    )
