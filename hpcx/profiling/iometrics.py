"""Per-rank I/O accounting: bytes and seconds, read and write, into the run's profile records.

Every hpcx I/O path (the HDF5 writer, the training reader) calls :func:`add`. Totals are cumulative and
written as ``{"type": "io", ...}`` records to ``<profile dir>/io-rank-NNNNN-pPID.jsonl``: one file per
process, because DataLoader workers read too and two processes must never append to one file on NFS or
Lustre. A record is written at most every :data:`FLUSH_EVERY_S` seconds and at exit, so a ``kill -9`` loses
at most one interval; readers take each file's last record (:func:`hpcx.rundir.records.read_io_totals`).

The profile directory is ``$HPCX_PROFILE_DIR`` (set by ``python -m hpcx.run``), else ``$HPCX_RUN_DIR/profile``;
outside a run nothing is written and :func:`totals` still answers.
"""

from __future__ import annotations

import atexit
import os
import time
from typing import Any

from hpcx.rundir.layout import IO_RECORDS
from hpcx.rundir.process import ProcessRecords, profile_dir_from_env, profile_file

FLUSH_EVERY_S = 5.0
OPS = ("read", "write")


def _rank() -> int:
    from hpcx.runtime.metrics import process_rank  # the compute side's package loads only when records do

    return process_rank()


class _Counts:
    """This process's cumulative totals, and when a record was last due (None until the process first
    counts: its first call starts the clock)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Nothing counted yet: a forked child (a DataLoader worker) starts its own totals (and file)."""
        self.totals = {op: {"bytes": 0, "seconds": 0.0, "calls": 0} for op in OPS}
        self.last_flush: float | None = None

    def since_flush(self) -> float:
        if self.last_flush is None:
            self.last_flush = time.monotonic()
        return self.last_flush

    def copy(self) -> dict[str, dict[str, float]]:
        return {k: dict(v) for k, v in self.totals.items()}


_counts = _Counts()
_records = ProcessRecords(profile_file(IO_RECORDS, _rank), after_fork=_counts.reset)
profile_dir = profile_dir_from_env  # where in-process records go (hpcx.io.metrics and others ask)


def add(op: str, nbytes: int, seconds: float) -> None:
    """Count one I/O call of ``nbytes`` taking ``seconds`` (``op`` is "read" or "write")."""
    if op not in OPS:
        raise ValueError(f"I/O op {op!r} is not one of {OPS}")
    with _records.lock:
        entry = _counts.totals[op]
        entry["bytes"] += int(nbytes)
        entry["seconds"] += float(seconds)
        entry["calls"] += 1
        due = time.monotonic() - _counts.since_flush() >= FLUSH_EVERY_S
    if due:
        flush()


def totals() -> dict[str, Any]:
    """This process's cumulative totals: ``{"read": {"bytes", "seconds", "calls"}, "write": {...}}``."""
    with _records.lock:
        _counts.since_flush()
        return _counts.copy()


def flush() -> None:
    """Write the current totals as one record (a no-op outside a run or when nothing was counted)."""
    with _records.lock:
        _counts.last_flush = time.monotonic()
        if any(_counts.totals[op]["calls"] for op in OPS):
            _records.write(_record("io", **_counts.copy()))


def event(kind: str, **fields: Any) -> None:
    """Record a one-off fact about this process's I/O now (e.g. the HDF5 layout chosen and why)."""
    with _records.lock:
        _counts.since_flush()
        _records.write(_record(kind, **fields))


def _record(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "t": time.time(), "rank": _rank(), "pid": os.getpid(), **fields}


class timed:
    """``with timed("write", nbytes):`` counts the block's wall time against ``nbytes`` (not when it raises)."""

    def __init__(self, op: str, nbytes: int) -> None:
        self.op, self.nbytes = op, nbytes

    def __enter__(self) -> timed:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            add(self.op, self.nbytes, time.perf_counter() - self._t0)


atexit.register(flush)
