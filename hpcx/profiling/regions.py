"""Regions: ``with region("forward"):`` or ``@region("step")`` marks a named span of the rank's time.

Only timestamps are taken (``time.perf_counter_ns`` at both edges); the report slices the sampled series
(memory, power, energy counters) against them afterwards, as perun's and Zeus's windows do, so a region costs
a few microseconds and no sensor is read inside the job's loop. Spans are kept in memory and appended to
``<profile dir>/regions-rank-NNNNN-pPID.jsonl`` when one ends at least :data:`FLUSH_EVERY_S` after the last
write, and at exit: a ``kill -9`` loses at most that interval. Each file begins with an ``anchor`` record
pairing one wall-clock time with the perf counter, so spans map to Unix time. One file per process: DataLoader
workers and forked children write their own. Outside a run (no profile directory) spans are dropped.

``sync=True`` calls ``torch.cuda.synchronize()`` at both edges when CUDA is in use, so the span covers the GPU
work queued inside it rather than only its launch.
"""

from __future__ import annotations

import atexit
import collections
import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from hpcx.rundir.layout import REGION_RECORDS
from hpcx.rundir.process import ProcessRecords, profile_file
from hpcx.rundir.records import RecordWriter

FLUSH_EVERY_S = 5.0
F = TypeVar("F", bound=Callable[..., Any])

_perf_ns = time.perf_counter_ns
_spans: collections.deque[tuple[str, int, int, int]] = collections.deque()  # append/popleft are thread-safe
_depth = threading.local()
# perf_counter_ns of the file's anchor record, and when spans are next written (a region's end checks it)
_clock = {"anchor_ns": 0, "next_flush_ns": _perf_ns() + int(FLUSH_EVERY_S * 1e9)}


def _cuda_sync() -> None:
    torch = sys.modules.get("torch")  # never import torch here: a CPU job must not pay for it
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _begin(sync: bool) -> tuple[int, int]:
    if sync:
        _cuda_sync()
    depth = getattr(_depth, "n", 0)
    _depth.n = depth + 1
    return _perf_ns(), depth


def _end(name: str, t0: int, depth: int, sync: bool) -> None:
    if sync:
        _cuda_sync()
    t1 = _perf_ns()
    _depth.n = depth
    _spans.append((name, t0, t1, depth))
    if t1 >= _clock["next_flush_ns"]:
        _clock["next_flush_ns"] = t1 + int(FLUSH_EVERY_S * 1e9)
        flush()


class region:
    """A named span: a context manager, or a decorator timing every call of the function.

    Regions nest (each span records its depth in its thread). ``sync=True`` synchronises CUDA at the edges.
    """

    __slots__ = ("name", "sync", "_open")

    def __init__(self, name: str, sync: bool = False) -> None:
        self.name, self.sync = name, sync
        self._open: list[tuple[int, int]] = []  # a stack, so one region object may be re-entered

    def __enter__(self) -> region:
        self._open.append(_begin(self.sync))
        return self

    def __exit__(self, *_: Any) -> None:
        t0, depth = self._open.pop()
        _end(self.name, t0, depth, self.sync)

    def __call__(self, fn: F) -> F:
        name, sync = self.name, self.sync

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0, depth = _begin(sync)
            try:
                return fn(*args, **kwargs)
            finally:
                _end(name, t0, depth, sync)

        return timed  # type: ignore[return-value]


def _rank() -> int:
    from hpcx.runtime.metrics import process_rank  # the compute side's package loads only when records do

    return process_rank()


def _anchor(writer: RecordWriter) -> None:
    """A new file's first record: one wall-clock time paired with the perf counter, so spans map to Unix
    time."""
    _clock["anchor_ns"], wall = _perf_ns(), time.time()
    writer.write(
        {"type": "anchor", "t": wall, "rank": _rank(), "pid": os.getpid(), "perf_ns": _clock["anchor_ns"]}
    )


def _forget() -> None:
    """A forked child keeps none of its parent's spans (and opens its own file)."""
    _spans.clear()


# Outside a run (no profile directory) or after a failure, spans are dropped: profiling never breaks the job.
_records = ProcessRecords(profile_file(REGION_RECORDS, _rank), opened=_anchor, after_fork=_forget)


def _cuda_memory() -> dict[str, Any] | None:
    """torch's CUDA allocator peaks (allocated and reserved) when this process already uses CUDA: two C
    calls, cheap enough for every flush. NVML's "used" (node file) counts every process on the device."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return {
        "type": "cuda_memory",
        "t": time.time(),
        "device": torch.cuda.current_device(),
        "allocated_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
        "reserved_peak_mb": round(torch.cuda.max_memory_reserved() / 2**20, 1),
    }


def flush() -> None:
    """Append the spans kept so far (and the CUDA allocator peaks, if any) to this process's file."""
    with _records.lock:
        spans = []
        while _spans:
            spans.append(_spans.popleft())
        if not spans:
            return  # a process that never entered a region leaves no file (hpcx.run itself, workers)
        writer = _records.writer()
        if writer is None:
            return
        rows = [[name, t0 - _clock["anchor_ns"], t1 - t0, depth] for name, t0, t1, depth in spans]
        try:
            writer.write({"type": "regions", "t": time.time(), "pid": os.getpid(), "spans": rows})
            cuda = _cuda_memory()
            if cuda is not None:
                writer.write(cuda)
        except OSError:
            pass  # a full or vanished filesystem loses these spans, not the job


atexit.register(flush)
