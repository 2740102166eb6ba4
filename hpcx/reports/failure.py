"""Why a job ended badly, for the line after its state in the report: Slurm's reason and the tail of the
stderr log of the job, or of its first failed array task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcx.runs import Run
from hpcx.runs.logs import stderr_file
from hpcx.schedulers.base import ACTIVE_STATES

STDERR_TAIL_LINES = 5
STDERR_LINE_CHARS = 240
# A job that has not ended (Slurm's ACTIVE_STATES, or UNFINISHED from hpcx's records): no failure to explain yet.
_NOT_ENDED = ACTIVE_STATES | {"UNFINISHED"}


def failure(run: Run, report: dict[str, Any]) -> dict[str, Any] | None:
    """Why a job (or an array's first failed task) ended badly, for the line after its state: Slurm's reason
    (sacct's Reason, else what its state and exit code say) and the last lines of the stderr log of the job,
    or of the task, with the failing rank when hpcx's records name one. None when it completed or runs."""
    s, acct = report["summary"], report.get("accounting") or {}
    if s["state"] in ("COMPLETED", "STOPPED") or s["state"] in _NOT_ENDED:
        return None
    task = report.get("task")
    failed = [t for t in report.get("tasks") or [] if t["state"] not in ("COMPLETED", *_NOT_ENDED)]
    state, code, signal = s["state"], s["exit_code"], acct.get("signal") or 0
    if task is None and failed:
        task, state, code, signal = failed[0]["task"], failed[0]["state"], failed[0]["exit_code"], 0
    log = stderr_file(run, task)  # the template's, the local backend's or an own script's -e/-o
    ranks = s["failed_ranks"] if task is None or task == report.get("task") else []
    return {
        "task": task if report.get("task") is None else None,
        "state": state,
        "rank": ranks[0] if ranks else None,
        "reason": _reason(acct.get("reason"), state, code, signal),
        "log": None if log is None else _shown(log, run.dir),
        "stderr_tail": [] if log is None else _tail(log),
    }


def _reason(reason: str | None, state: str, code: int | None, signal: int) -> str:
    """sacct's Reason, else what the state and the exit code or signal say."""
    if reason is not None:
        return reason
    how = f", killed by signal {signal}" if signal else f", exit code {code}" if code is not None else ""
    return f"none given ({state}{how})"


def _tail(log: Path) -> list[str]:
    """The log's last non-blank lines, each cut to a readable length."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return [ln[:STDERR_LINE_CHARS] for ln in lines[-STDERR_TAIL_LINES:]]


def _shown(path: Path, run_dir: Path) -> str:
    """A log's path relative to the run directory when it is inside it, else as it is."""
    try:
        return path.resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return str(path)
