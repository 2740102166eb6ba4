"""What `hpcx compare` asks for, as the command line gives it: the runs and sweeps named, the grouping keys,
the replicate keys and the other options, turned into the comparison document (and the files --out writes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpcx.compare.comparison import compare
from hpcx.compare.outputs import write_outputs
from hpcx.compare.replicates import REPLICATE_KEYS, Options
from hpcx.errors import UsageError
from hpcx.rundir.layout import TASK_TABLE
from hpcx.runs import Run, find_run


def require_runs(runs: Sequence[str], sweeps: Sequence[str]) -> None:
    """Refuse a comparison of nothing (before the runs root is looked up)."""
    if not runs and not sweeps:
        raise UsageError("compare needs runs", hint="give run ids, or --sweep RUN for a sweep's tasks")


def compare_asked(
    root: Path,
    runs: Sequence[str],
    sweeps: Sequence[str],
    out_dir: Path | None,
    *,
    by: str | None,
    replicate_keys: Sequence[str],
    **chosen: Any,
) -> dict[str, Any]:
    """The comparison of ``runs`` and the tasks of ``sweeps`` (run ids, prefixes, job ids or paths under
    ``root``), grouped ``by`` these comma-separated keys (default: all but the replicate keys), with the other
    options of :class:`Options` as ``chosen``; with ``out_dir`` also the files written there, under "written"."""
    found = asked_runs(root, runs, sweeps)
    group_keys = tuple(k for k in by.split(",") if k) if by is not None else None
    options = Options(by=group_keys, replicate_keys=tuple(replicate_keys) or REPLICATE_KEYS, **chosen)
    doc = compare(found, options)
    if out_dir is not None:
        doc["written"] = [str(p) for p in write_outputs(doc, out_dir, found)]
    return doc


def asked_runs(root: Path, runs: Sequence[str], sweeps: Sequence[str]) -> list[Run]:
    """The runs named, then the sweeps named (each must have a task table: a sweep stands for its tasks)."""
    found = [find_run(root, key) for key in runs]
    for key in sweeps:
        run = find_run(root, key)
        if not (run.dir / TASK_TABLE).exists():
            raise UsageError(
                f"run {run.id} is not a sweep (no tasks.jsonl)", hint="give it as RUN, not --sweep"
            )
        found.append(run)
    return found
