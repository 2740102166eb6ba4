"""Stop requests seen from inside the job: `hpcx stop` writes ``control/stop.json`` (the whole run) or
``control/task-NNNNN/stop.json`` (one task of a sweep or array) into the run directory; the ranks look for it at
their ``preempt.should_stop()`` boundary, agree, save and end without requeueing, and rank 0 acknowledges in
``stopped.json`` beside the request (which request, at which step, when).

Looking is one ``stat`` per request file, at most once per ``$HPCX_CONTROL_INTERVAL_S`` (default 1 s) however
often ``should_stop`` is called, so a fast loop does not load a parallel file system's metadata server. A
request that this run has already acknowledged (a job requeued by hand after it stopped) is passed over.
Stdlib only; never imports the login side.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcx.fsutil import atomic_write_json
from hpcx.rundir.layout import stop_request_file, stopped_file

DEFAULT_INTERVAL_S = 1.0
ACK_VERSION = 1


@dataclass
class StopWatch:
    """Where this job's stop requests can appear (its task's file first, then the whole run's), where rank 0
    acknowledges one, and how often to look."""

    files: tuple[Path, ...]
    ack: Path
    interval_s: float = DEFAULT_INTERVAL_S
    task: int | None = None
    _next_look: float = 0.0
    _served: set[tuple[str, int, int, int]] = field(default_factory=set)

    def request(self) -> dict[str, Any] | None:
        """The stop request waiting for this job, or None; the files are looked at no more often than once per
        ``interval_s`` (None in between)."""
        now = time.monotonic()
        if now < self._next_look:
            return None
        self._next_look = now + self.interval_s
        for path in self.files:
            try:
                st = os.stat(path)
            except OSError:
                continue
            seen = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
            if seen in self._served:
                continue
            found = read_request(path)
            if _acknowledged(found, self.ack):
                self._served.add(seen)  # read it once, not once a second
                continue
            return found
        return None


def watch_from_env(env: Mapping[str, str] | None = None, interval_s: float | None = None) -> StopWatch | None:
    """The stop watch of the run this process belongs to ($HPCX_RUN_DIR, and $HPCX_TASK_ID for a task of a sweep
    or array); None outside a run."""
    env = os.environ if env is None else env
    run_dir = env.get("HPCX_RUN_DIR")
    if not run_dir:
        return None
    task = task_from_env(env)
    files: tuple[Path, ...] = (stop_request_file(run_dir),)
    if task is not None:
        files = (stop_request_file(run_dir, task), *files)
    every = (
        interval_s
        if interval_s is not None
        else float(env.get("HPCX_CONTROL_INTERVAL_S") or DEFAULT_INTERVAL_S)
    )
    return StopWatch(files, stopped_file(run_dir, task), every, task)


def task_from_env(env: Mapping[str, str]) -> int | None:
    """This job's task of its sweep or array: $HPCX_TASK_ID (set by ``python -m hpcx.run``), else the array
    index plus a sweep chunk's $HPCX_TASK_OFFSET; None for a job that is no task."""
    named = env.get("HPCX_TASK_ID", "")
    if named.isdigit():
        return int(named)
    index, offset = env.get("SLURM_ARRAY_TASK_ID", ""), env.get("HPCX_TASK_OFFSET", "0")
    if index.isdigit():
        return int(index) + (int(offset) if offset.isdigit() else 0)
    return None


def read_request(path: Path) -> dict[str, Any]:
    """A request file's fields (id, by, at, grace_s); a file that does not parse still asks to stop, with its
    fields unknown (``unreadable``: its writer was not `hpcx stop`, which writes atomically)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"id": None, "by": None, "at": None, "unreadable": True}
    return doc if isinstance(doc, dict) else {"id": None, "by": None, "at": None, "unreadable": True}


def _acknowledged(request: dict[str, Any], ack: Path) -> bool:
    """Whether this run already stopped for ``request`` (its id is in the acknowledgement)."""
    if request.get("id") is None:
        return False
    try:
        done = json.loads(ack.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(done, dict) and done.get("request_id") == request.get("id")


def acknowledge(watch: StopWatch, request: dict[str, Any], step: int | None, ranks: int) -> Path:
    """Rank 0's acknowledgement, written atomically: which request (and whose), the step the ranks agreed to
    stop at (the checkpoint's), when, and which job."""
    doc = {
        "version": ACK_VERSION,
        "request_id": request.get("id"),
        "requested_by": request.get("by"),
        "requested_at": request.get("at"),
        "step": step,
        "stopped_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "task": watch.task,
        "ranks": ranks,
        "job_id": _job_id(),
        "restart": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0),
    }
    watch.ack.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(watch.ack, doc)


def _job_id() -> str | None:
    """This job as Slurm's commands name it: JOBID, or ARRAYJOBID_INDEX for an array task (as `hpcx status`
    shows a task)."""
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{index}" if array and index else os.environ.get("SLURM_JOB_ID")
