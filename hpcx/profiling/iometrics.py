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
import threading
import time
from pathlib import Path
from typing import Any

from hpcx.rundir.records import RecordWriter

FLUSH_EVERY_S = 5.0
OPS = ("read", "write")

_lock = threading.Lock()
_totals: dict[str, dict[str, float]] = {}
_pid = -1
_writer: RecordWriter | None = None
_writer_failed = False
_last_flush = 0.0


def _fresh() -> dict[str, dict[str, float]]:
    return {op: {"bytes": 0, "seconds": 0.0, "calls": 0} for op in OPS}


def _check_fork() -> None:
    """A forked child (a DataLoader worker) starts its own totals and its own file."""
    global _pid, _totals, _writer, _writer_failed, _last_flush
    if _pid != os.getpid():
        _pid, _totals, _writer, _writer_failed, _last_flush = (
            os.getpid(),
            _fresh(),
            None,
            False,
            time.monotonic(),
        )


def profile_dir() -> Path | None:
    explicit = os.environ.get("HPCX_PROFILE_DIR")
    if explicit:
        return Path(explicit)
    if os.environ.get("HPCX_PROFILE") == "0":  # `hpcx submit --no-profile`: no profile records at all
        return None
    run_dir = os.environ.get("HPCX_RUN_DIR")
    return Path(run_dir) / "profile" if run_dir else None


def _rank() -> int:
    from hpcx.runtime.rankenv import detect

    return detect().rank


def add(op: str, nbytes: int, seconds: float) -> None:
    """Count one I/O call of ``nbytes`` taking ``seconds`` (``op`` is "read" or "write")."""
    if op not in OPS:
        raise ValueError(f"I/O op {op!r} is not one of {OPS}")
    with _lock:
        _check_fork()
        entry = _totals[op]
        entry["bytes"] += int(nbytes)
        entry["seconds"] += float(seconds)
        entry["calls"] += 1
        due = time.monotonic() - _last_flush >= FLUSH_EVERY_S
    if due:
        flush()


def totals() -> dict[str, Any]:
    """This process's cumulative totals: ``{"read": {"bytes", "seconds", "calls"}, "write": {...}}``."""
    with _lock:
        _check_fork()
        return {k: dict(v) for k, v in _totals.items()}


def flush() -> None:
    """Write the current totals as one record (a no-op outside a run or when nothing was counted)."""
    global _writer, _writer_failed, _last_flush
    with _lock:
        _check_fork()
        _last_flush = time.monotonic()
        if _writer_failed or not any(_totals[op]["calls"] for op in OPS):
            return
        if _writer is None and not _open_writer():
            return
        assert _writer is not None
        record = {"type": "io", "t": time.time(), "rank": _rank(), "pid": os.getpid(),
                  **{k: dict(v) for k, v in _totals.items()}}  # fmt: skip
        try:
            _writer.write(record)
        except OSError:
            _writer_failed = True


def event(kind: str, **fields: Any) -> None:
    """Record a one-off fact about this process's I/O now (e.g. the HDF5 layout chosen and why)."""
    global _writer, _writer_failed
    with _lock:
        _check_fork()
        if _writer_failed:
            return
        if _writer is None and not _open_writer():
            return
        assert _writer is not None
        try:
            _writer.write({"type": kind, "t": time.time(), "rank": _rank(), "pid": os.getpid(), **fields})
        except OSError:
            _writer_failed = True


def _open_writer() -> bool:
    """Open this process's record file (the lock is held); False outside a run or when it cannot be made."""
    global _writer, _writer_failed
    directory = profile_dir()
    if directory is None:
        return False
    try:
        _writer = RecordWriter(directory / f"io-rank-{_rank():05d}-p{os.getpid()}.jsonl")
    except OSError:
        _writer_failed = True  # accounting must never break the job's I/O
        return False
    return True


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
