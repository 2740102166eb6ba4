"""Communication tracing: mpi4py and torch.distributed calls per rank, by call and message-size bucket.

For every call this records the count, the bytes and the seconds spent in it, keyed by library (``mpi`` or
``torch``), call name as the program wrote it (``Allreduce``, ``allreduce``, ``Iallreduce``, ``all_reduce``),
message-size bucket (a power of two: a message of n bytes falls in the bucket ``2**floor(log2 n)``, 0 for
none) and the size of the communicator. Totals are cumulative and written as ``{"type": "comm", ...}``
records to ``<profile dir>/comm-rank-NNNNN-pPID.jsonl`` (the same file pattern as :mod:`hpcx.profiling.iometrics`:
one file per process, a record at most every :data:`FLUSH_EVERY_S` seconds and at exit, so a ``kill -9``
loses at most one interval). The record format is documented in docs/formats.md ("Communication records").

Why this shape: mpi4py's classes are C extension types whose methods cannot be replaced, so tracing swaps
``MPI.COMM_WORLD`` for an object of a traced subclass of ``MPI.Intracomm`` that shares its handle (mpi4py
copies the handle and never frees it on collection), and ``MPI.Request`` for a traced subclass whose
``isinstance`` still accepts every request. Communicators made from a traced one (Dup, Split, Create, ...)
are traced too. Nothing is patched, and neither mpi4py nor torch is imported, until :func:`install` is
called; even then each library is patched only when the program imports it (a post-import hook), so a
program that sets ``mpi4py.rc`` before importing ``mpi4py.MPI`` keeps working.

Byte counts follow nccl-tests' message size S, so bus bandwidth uses its formulas: Allreduce, Reduce, Bcast:
the buffer; Allgather/Gather: one rank's contribution times the communicator size (the receive buffer when
in place); Scatter: the receive buffer times the size; Alltoall, Reduce_scatter: the send buffer. Sends count
the send buffer, receives the receive buffer given. Pickle-based lower-case calls count the bytes they
pickled (all they sent), or unpickled when they only received. Nonblocking calls count their bytes and the
time to post them; the time waiting for them is counted under Wait/Waitall/Test/... (as mpiP does).
torch.distributed calls with ``async_op=True`` are timed from the call until the work completes (a callback
on the work's future), not until they return. On the NCCL backend (CUDA tensors) the host returns before the
GPU has done the work, so a call is timed on the GPU instead: a CUDA timing event recorded on the current
stream before the call and one after it (for ``async_op=True`` on a side stream made to wait for the work,
so the event completes with the collective); the pair is resolved lazily, by ``Event.query()`` at later
calls and at each flush, never by synchronising a stream in the call (only exit waits for the last ones).

This module holds the tables, the records and the installing; the wrappers are in
:mod:`hpcx.profiling.comm_mpi` and :mod:`hpcx.profiling.comm_torch`, imported by :func:`install`.

Enabled in-process by :func:`install`, or for an unmodified child program by :func:`child_env` (a
``sitecustomize`` on ``PYTHONPATH`` that calls :func:`install` when ``HPCX_PROFILE_COMM=1``).
"""

from __future__ import annotations

import atexit
import collections
import importlib.abc
import importlib.machinery
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from hpcx.rundir.layout import COMM_RECORDS
from hpcx.rundir.process import ProcessRecords, profile_file

FORMAT = "hpcx.comm/1"


def _flush_every_s() -> float:
    """HPCX_COMM_FLUSH_S (a shorter interval for tests), at least 0.05 s; 5 s when unset or not a number."""
    try:
        return max(0.05, float(os.environ.get("HPCX_COMM_FLUSH_S") or 5.0))
    except ValueError:
        return 5.0


FLUSH_EVERY_S = _flush_every_s()
HOOK_DIR = Path(__file__).resolve().parent / "_hook"

# nccl-tests' bus-bandwidth factor for a communicator of n ranks (doc/PERFORMANCE.md); p2p moves S once.
_FACTORS: dict[str, Callable[[int], float]] = {
    "allreduce": lambda n: 2 * (n - 1) / n,
    "allgather": lambda n: (n - 1) / n,
    "reducescatter": lambda n: (n - 1) / n,
    "alltoall": lambda n: (n - 1) / n,
    "bcast": lambda n: 1.0,
    "reduce": lambda n: 1.0,
    "p2p": lambda n: 1.0,
}
_FAMILY = {
    "allreduce": "allreduce",
    "iallreduce": "allreduce",
    "all_reduce": "allreduce",
    "ddp_bucket_allreduce": "allreduce",
    "allgather": "allgather",
    "iallgather": "allgather",
    "all_gather": "allgather",
    "all_gather_into_tensor": "allgather",
    "reduce_scatter": "reducescatter",
    "reduce_scatter_block": "reducescatter",
    "ireduce_scatter_block": "reducescatter",
    "reduce_scatter_tensor": "reducescatter",
    "alltoall": "alltoall",
    "ialltoall": "alltoall",
    "all_to_all": "alltoall",
    "all_to_all_single": "alltoall",
    "bcast": "bcast",
    "ibcast": "bcast",
    "broadcast": "bcast",
    "reduce": "reduce",
    "ireduce": "reduce",
    **{
        name: "p2p"
        for name in (
            "send",
            "recv",
            "isend",
            "irecv",
            "ssend",
            "issend",
            "bsend",
            "ibsend",
            "rsend",
            "irsend",
            "sendrecv",
            "sendrecv_replace",
        )
    },
}

# (library, call) -> {communicator size << 6 | bucket exponent: [calls, bytes, seconds]}: an int key, and one
# table per call site, keep the per-call cost small (the budget is 1 us per MPI call).
_tables: dict[tuple[str, str], dict[int, list[Any]]] = {}
# Bytes mpi4py has pickled and unpickled so far: a lower-case call's bytes are what it pickled (sent), or,
# for a call that only received, what it unpickled.
_pickled = [0, 0]
# torch_lock: torch completions arrive on the backend's threads (a new lock in a forked child)
_state: dict[str, Any] = {
    "installed": False,
    "t0": 0.0,
    "written": None,
    "flusher": None,
    "torch_lock": threading.Lock(),
}
_perf = time.perf_counter


class _Due:
    """When the calls next write a record themselves (perf_counter time; never while the flusher thread
    runs). Every traced call reads it: one slot, found without a dict."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = float("inf")


_due = _Due()


def _table(lib: str, name: str) -> dict[int, list[Any]]:
    return _tables.setdefault((lib, name), {})


def _count(table: dict[int, list[Any]], size: int, nbytes: int, seconds: float) -> None:
    key = size << 6 | nbytes.bit_length()
    entry = table.get(key)
    if entry is None:
        entry = table[key] = [0, 0, 0.0]
    entry[0] += 1
    entry[1] += nbytes
    entry[2] += seconds


def _count_torch(name: str, nbytes: int, seconds: float, size: int) -> None:
    with _state["torch_lock"]:
        _count(_table("torch", name), size, nbytes, seconds)


# ---------------------------------------------------------------- records


def _rank() -> int:
    from hpcx.runtime.metrics import process_rank  # the compute side's package loads only when records do

    return process_rank()


def _bandwidths(name: str, size: int, nbytes: float, seconds: float) -> tuple[float | None, float | None]:
    """Algorithm and bus bandwidth in GB/s (10^9 B/s, as nccl-tests prints them); None without bytes."""
    if not nbytes or seconds <= 0:
        return None, None
    algbw = nbytes / seconds / 1e9
    family = _FAMILY.get(name.lower())
    factor = _FACTORS[family](max(size, 1)) if family else None
    return algbw, (algbw * factor if factor is not None else None)


def totals() -> list[dict[str, Any]]:
    """This process's cumulative entries, one per (lib, call, bucket, ranks), as they appear in records
    (NCCL calls whose GPU work has completed included; those still running count once they complete)."""
    _resolve_quietly()
    entries = []
    for (lib, name), table in sorted(_tables.copy().items()):
        for key, (calls, nbytes, seconds) in sorted(table.copy().items()):
            size, exp = key >> 6, key & 63
            algbw, busbw = _bandwidths(name, size, nbytes, seconds)
            entries.append(
                {
                    "lib": lib,
                    "call": name,
                    "bucket": (1 << (exp - 1)) if exp else 0,
                    "ranks": size,
                    "calls": calls,
                    "bytes": nbytes,
                    "seconds": seconds,
                    "algbw_gbs": algbw,
                    "busbw_gbs": busbw,
                }
            )
    return entries


def _signature() -> tuple[int, float]:
    """Calls and seconds so far: what changes when any call is counted."""
    calls, seconds = 0, 0.0
    for table in list(_tables.values()):
        for entry in list(table.values()):
            calls += entry[0]
            seconds += entry[2]
    return calls, seconds


def flush(if_changed: bool = False) -> None:
    """Write the current totals as one record (nothing outside a run, before any call, after a failure, or
    with ``if_changed`` when nothing was counted since the last record)."""
    now = _perf()
    if _state["flusher"] is None:
        _due.at = now + FLUSH_EVERY_S  # no thread (it could not start): the calls flush themselves
    _resolve_quietly()  # NCCL calls completed since the last call count now, not at the next call
    if _records.failed or not any(_tables.values()):
        return
    with _records.lock:
        signature = _signature()
        if (if_changed and signature == _state["written"]) or _records.writer() is None:
            return
        if _records.write(_record(now)):
            _state["written"] = signature


def _record(now: float) -> dict[str, Any]:
    """The record of the current totals (``now``: perf_counter time)."""
    entries = totals()
    seconds = sum(e["seconds"] for e in entries)
    wall_s = now - _state["t0"]
    record = {
        "type": "comm",
        "format": FORMAT,
        "t": time.time(),
        "rank": _rank(),
        "pid": os.getpid(),
        "wall_s": wall_s,
        "seconds": seconds,
        "entries": entries,
    }
    cost = sys.modules.get("hpcx.profiling.comm_cost")
    if cost is not None and cost.costs_us:
        record["cost_us"] = dict(cost.costs_us)
    ddp = sys.modules.get("hpcx.profiling.comm_ddp")
    summary = ddp.summary() if ddp is not None else None
    if summary is not None:
        record["ddp"] = summary
    return record


def _flusher(stop: threading.Event) -> None:
    while not stop.wait(FLUSH_EVERY_S):
        try:
            flush(if_changed=True)
        except Exception:  # a tracing error must not end the thread silently mid-job
            _records.failed = True
            return


def _start_flusher() -> None:
    """The thread that writes a record every FLUSH_EVERY_S while the totals change; the calls' own check of
    ``_due`` is switched off while it runs (it stays the fallback if the thread cannot start)."""
    stop = threading.Event()
    thread = threading.Thread(target=_flusher, args=(stop,), name="hpcx-comm-flush", daemon=True)
    try:
        thread.start()
    except RuntimeError:
        _state["flusher"] = None
        _due.at = _perf() + FLUSH_EVERY_S
        return
    _state["flusher"] = stop
    _due.at = float("inf")


def _stop_flusher() -> None:
    if _state["flusher"] is not None:
        _state["flusher"].set()


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader worker) of a traced process counts its own calls into its own file (the
    records' writer and lock are new already), with its own flusher (threads do not survive a fork)."""
    if not _state["installed"]:
        return
    for table in _tables.values():
        table.clear()
    _cuda_pending.clear()  # the parent's CUDA events mean nothing here
    _side_streams.clear()
    _pickled[:] = [0, 0]
    _state.update(t0=_perf(), written=None, flusher=None, torch_lock=threading.Lock())
    _start_flusher()


# One file per process; tracing must never break the job (an unwritable file ends the records, not the job).
_records = ProcessRecords(profile_file(COMM_RECORDS, _rank), after_fork=_after_fork_in_child)


def _at_exit() -> None:
    _stop_flusher()
    if _cuda_pending:
        try:
            _resolve_cuda(wait=True)  # the last NCCL calls: exit may wait for the GPU, a call never does
        except Exception:  # CUDA torn down, or an error on the device: tracing never breaks the exit
            pass
    flush()


# NCCL calls timed by CUDA events and not yet resolved: [start, end, name, bytes, ranks, tensors], in call
# order (hpcx.profiling.comm_torch adds them).
_cuda_pending: collections.deque[list[Any]] = collections.deque()
_side_streams: dict[Any, Any] = {}  # device -> the stream an async call's end event is recorded on


def _pend(entry: list[Any]) -> None:
    with _state["torch_lock"]:
        _cuda_pending.append(entry)


def _resolve_quietly() -> None:
    """:func:`_resolve_cuda`, never raising: an error from the CUDA runtime drops the pending timings (and
    says so in the next record's totals by their absence) instead of reaching the caller's collective."""
    if not _cuda_pending:
        return
    try:
        _resolve_cuda()
    except Exception:  # tracing must never break the job
        with _state["torch_lock"]:
            _cuda_pending.clear()


def _resolve_cuda(wait: bool = False) -> None:
    """Count the pending NCCL calls whose end event has completed (``wait``: all, waiting for each). Each
    pending entry holds the call's tensors until then, so their memory is not reused while NCCL works."""
    with _state["torch_lock"]:
        while _cuda_pending:
            start, end, name, nbytes, size, _tensors = _cuda_pending[0]
            if wait:
                end.synchronize()
            elif not end.query():
                break  # later calls are resolved at a later call or flush
            _cuda_pending.popleft()
            _count(_table("torch", name), size, nbytes, start.elapsed_time(end) / 1000)


# ---------------------------------------------------------------- installing


def install() -> None:
    """Trace mpi4py and torch.distributed in this process from now on (idempotent).

    A library already imported is patched now; one imported later is patched as its import completes.
    """
    if _state["installed"]:
        return
    from hpcx.profiling.comm_ddp import patch_ddp
    from hpcx.profiling.comm_mpi import patch_mpi  # they import this module's tables
    from hpcx.profiling.comm_torch import patch_torch

    _state.update(installed=True, t0=_perf())
    _start_flusher()
    patches = {
        "mpi4py.MPI": patch_mpi,
        "torch.distributed": patch_torch,
        "torch.nn.parallel.distributed": patch_ddp,
    }
    for name, patch in patches.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _PostImport({n: p for n, p in patches.items() if n not in sys.modules}))
    atexit.register(_at_exit)


def child_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with tracing switched on for a child Python process: HPCX_PROFILE_COMM=1 and the hook
    directory first on PYTHONPATH (its sitecustomize chains to any other sitecustomize)."""
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(HOOK_DIR)]
    return {**env, "HPCX_PROFILE_COMM": "1", "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), *paths])}


class _PostImport(importlib.abc.MetaPathFinder):
    """Finds a watched module with the other finders and patches it once its code has run."""

    def __init__(self, patches: dict[str, Callable[[ModuleType], None]]) -> None:
        self._patches = patches

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        patch = self._patches.pop(fullname, None)
        if patch is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if finder is not self and find else None
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, patch: Callable[[ModuleType], None]) -> None:
        self._loader, self._patch = loader, patch

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
