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

Enabled in-process by :func:`install`, or for an unmodified child program by :func:`child_env` (a
``sitecustomize`` on ``PYTHONPATH`` that calls :func:`install` when ``HPCX_PROFILE_COMM=1``).
"""

from __future__ import annotations

import atexit
import collections
import functools
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

from hpcx.rundir.records import RecordWriter

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
    "allreduce": "allreduce", "iallreduce": "allreduce", "all_reduce": "allreduce",
    "allgather": "allgather", "iallgather": "allgather", "all_gather": "allgather",
    "all_gather_into_tensor": "allgather",
    "reduce_scatter": "reducescatter", "reduce_scatter_block": "reducescatter",
    "ireduce_scatter_block": "reducescatter", "reduce_scatter_tensor": "reducescatter",
    "alltoall": "alltoall", "ialltoall": "alltoall", "all_to_all": "alltoall",
    "all_to_all_single": "alltoall",
    "bcast": "bcast", "ibcast": "bcast", "broadcast": "bcast",
    "reduce": "reduce", "ireduce": "reduce",
    **{name: "p2p" for name in ("send", "recv", "isend", "irecv", "ssend", "issend", "bsend", "ibsend",
                                "rsend", "irsend", "sendrecv", "sendrecv_replace")},
}  # fmt: skip

# (library, call) -> {communicator size << 6 | bucket exponent: [calls, bytes, seconds]}: an int key, and one
# table per call site, keep the per-call cost small (the budget is 1 us per MPI call).
_tables: dict[tuple[str, str], dict[int, list[Any]]] = {}
_torch_lock = threading.Lock()  # torch completions arrive on the backend's threads
# Bytes mpi4py has pickled and unpickled so far: a lower-case call's bytes are what it pickled (sent), or,
# for a call that only received, what it unpickled.
_pickled = [0, 0]
_state: dict[str, Any] = {"installed": False, "t0": 0.0, "writer": None, "failed": False, "written": None,
                          "flusher": None}  # fmt: skip
_flush_lock = threading.Lock()  # the flusher thread, a call's fallback flush and exit's flush
_next_flush = float("inf")  # perf_counter time of the next record; a plain global: every call reads it
_perf = time.perf_counter


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


# ---------------------------------------------------------------- records


def _rank() -> int:
    from hpcx.runtime.rankenv import detect

    return detect().rank


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
            entries.append({"lib": lib, "call": name, "bucket": (1 << (exp - 1)) if exp else 0,
                            "ranks": size, "calls": calls, "bytes": nbytes, "seconds": seconds,
                            "algbw_gbs": algbw, "busbw_gbs": busbw})  # fmt: skip
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
    global _next_flush
    if _state["flusher"] is None:
        _next_flush = now + FLUSH_EVERY_S  # no thread (it could not start): the calls flush themselves
    _resolve_quietly()  # NCCL calls completed since the last call count now, not at the next call
    if _state["failed"] or not any(_tables.values()):
        return
    with _flush_lock:
        signature = _signature()
        if if_changed and signature == _state["written"]:
            return
        try:
            if _state["writer"] is None:
                from hpcx.profiling.iometrics import (
                    profile_dir,  # the one rule for where in-process records go
                )

                directory = profile_dir()
                if directory is None:
                    return
                _state["writer"] = RecordWriter(directory / f"comm-rank-{_rank():05d}-p{os.getpid()}.jsonl")
            entries = totals()
            _state["writer"].write({
                "type": "comm", "format": FORMAT, "t": time.time(), "rank": _rank(), "pid": os.getpid(),
                "wall_s": now - _state["t0"], "seconds": sum(e["seconds"] for e in entries),
                "entries": entries,
            })  # fmt: skip
            _state["written"] = signature
        except OSError:
            _state["failed"] = True  # tracing must never break the job


def _flusher(stop: threading.Event) -> None:
    while not stop.wait(FLUSH_EVERY_S):
        try:
            flush(if_changed=True)
        except Exception:  # noqa: BLE001 - a tracing error must not end the thread silently mid-job
            _state["failed"] = True
            return


def _start_flusher() -> None:
    """The thread that writes a record every FLUSH_EVERY_S while the totals change; the calls' own check of
    ``_next_flush`` is switched off while it runs (it stays the fallback if the thread cannot start)."""
    global _next_flush
    stop = threading.Event()
    thread = threading.Thread(target=_flusher, args=(stop,), name="hpcx-comm-flush", daemon=True)
    try:
        thread.start()
    except RuntimeError:
        _state["flusher"] = None
        _next_flush = _perf() + FLUSH_EVERY_S
        return
    _state["flusher"] = stop
    _next_flush = float("inf")


def _stop_flusher() -> None:
    if _state["flusher"] is not None:
        _state["flusher"].set()


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader worker) counts its own calls into its own file, with its own flusher
    (threads do not survive a fork)."""
    global _flush_lock, _torch_lock
    for table in _tables.values():
        table.clear()
    _cuda_pending.clear()  # the parent's CUDA events mean nothing here
    _side_streams.clear()
    _torch_lock = threading.Lock()
    _pickled[:] = [0, 0]
    _flush_lock = threading.Lock()  # the parent's flusher may have held it at the fork
    _state.update(t0=_perf(), writer=None, failed=False, written=None, flusher=None)
    _start_flusher()


def _at_exit() -> None:
    _stop_flusher()
    if _cuda_pending:
        try:
            _resolve_cuda(wait=True)  # the last NCCL calls: exit may wait for the GPU, a call never does
        except Exception:  # noqa: BLE001 - CUDA torn down, or an error on the device: tracing never breaks the exit
            pass
    flush()


# ---------------------------------------------------------------- installing


def install() -> None:
    """Trace mpi4py and torch.distributed in this process from now on (idempotent).

    A library already imported is patched now; one imported later is patched as its import completes.
    """
    if _state["installed"]:
        return
    _state.update(installed=True, t0=_perf())
    _start_flusher()
    patches = {"mpi4py.MPI": _patch_mpi, "torch.distributed": _patch_torch}
    for name, patch in patches.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _PostImport({n: p for n, p in patches.items() if n not in sys.modules}))
    os.register_at_fork(after_in_child=_after_fork_in_child)
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


# ---------------------------------------------------------------- mpi4py


def _buf_bytes(buf: Any, datatype: type) -> int:
    """Bytes described by an mpi4py buffer argument: an array, ``[data, type]``, ``[data, count, type]``,
    ``[data, (count, displ), type]`` or a v-spec ``[data, counts, displs, type]``."""
    nbytes = getattr(buf, "nbytes", None)
    if nbytes is not None:
        return nbytes
    if isinstance(buf, (list, tuple)) and buf:
        rest = buf[1:]
        if not rest or isinstance(rest[0], datatype):
            return _buf_bytes(buf[0], datatype)
        count = rest[0][0] if isinstance(rest[0], tuple) and len(rest) < 3 else rest[0]
        count = count if isinstance(count, int) else sum(count)
        if isinstance(rest[-1], datatype):
            return count * rest[-1].Get_size()
        return count * memoryview(buf[0]).itemsize
    if buf is None:
        return 0
    return memoryview(buf).nbytes


def _two_buffer_sizers(in_place: Any) -> dict[str, Callable[[Any, Any, int], int] | None]:
    """Bytes (nccl-tests' S) of a collective from its send and receive buffers and the communicator size;
    None: the send buffer's (the receive buffer's in place), found by the wrapper itself."""

    def times_n(sendbuf: Any, recvbuf: Any, n: int) -> int:
        return _safe_bytes(recvbuf) if sendbuf is in_place else _safe_bytes(sendbuf) * n

    def scatter(sendbuf: Any, recvbuf: Any, n: int) -> int:
        return _safe_bytes(sendbuf) if recvbuf is in_place else _safe_bytes(recvbuf) * n

    return {"send_or_recv": None, "times_n": times_n, "scatter": scatter}


def _sendrecv_bytes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Sendrecv(self, sendbuf, dest, sendtag, recvbuf, ...): bytes sent plus the receive buffer."""
    recvbuf = args[4] if len(args) > 4 else kwargs.get("recvbuf")
    return _safe_bytes(args[1]) + _safe_bytes(recvbuf)


def _replace_bytes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Sendrecv_replace(self, buf, ...): the buffer goes out and comes back."""
    return 2 * _safe_bytes(args[1])


def _no_bytes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return 0


# Upper-case (buffer) calls; I-prefixed ones return a request. Sendrecv, Barrier and the pickle-based
# lower-case calls go through _other.
_MPI_ONE_BUFFER = ("Send", "Ssend", "Bsend", "Rsend", "Recv", "Isend", "Issend", "Ibsend", "Irsend", "Irecv",
                   "Bcast", "Ibcast")  # fmt: skip
# (sendbuf, recvbuf, op=SUM), the most frequent calls: an exact signature (see _reduction)
_MPI_REDUCTIONS = ("Allreduce", "Scan", "Exscan", "Reduce_scatter_block", "Iallreduce", "Iscan", "Iexscan",
                   "Ireduce_scatter_block")  # fmt: skip
_MPI_TWO_BUFFERS = {
    "send_or_recv": ("Reduce", "Alltoall", "Alltoallv", "Reduce_scatter", "Ireduce", "Ialltoall",
                     "Ialltoallv", "Ireduce_scatter"),
    "times_n": ("Gather", "Gatherv", "Allgather", "Allgatherv", "Igather", "Igatherv", "Iallgather",
                "Iallgatherv"),
    "scatter": ("Scatter", "Scatterv", "Iscatter", "Iscatterv"),
}  # fmt: skip
_MPI_OTHER = {"Sendrecv": _sendrecv_bytes, "Sendrecv_replace": _replace_bytes, "Barrier": _no_bytes,
              "Ibarrier": _no_bytes}  # fmt: skip
_MPI_PICKLE_CALLS = ("send", "ssend", "bsend", "recv", "isend", "issend", "ibsend", "irecv", "sendrecv",
                     "bcast", "reduce", "allreduce", "gather", "allgather", "scatter", "alltoall", "scan",
                     "exscan", "barrier")  # fmt: skip
_MPI_DERIVING = ("Dup", "Clone", "Split", "Split_type", "Create", "Create_group", "Dup_with_info")
_MPI_WAITS = ("Wait", "Test", "wait", "test")
_MPI_MULTI_WAITS = ("Waitall", "Waitany", "Waitsome", "Testall", "Testany", "Testsome",
                    "waitall", "waitany", "waitsome", "testall", "testany", "testsome")  # fmt: skip


def _size(comm: Any) -> int:
    try:
        return comm._n
    except AttributeError:  # asked on first use: MPI may not be initialised when the object is made
        comm._n = comm.Get_size()
        return comm._n


def _entry(table: dict[int, list[Any]], key: int) -> list[Any]:
    entry = table[key] = [0, 0, 0.0]
    return entry


# The two wrappers below are the hot path (about 1 us of budget per call): counting is written out in them,
# and keywords are forwarded only when given, because a call with **kwargs costs a fifth of the budget.


def _one_buffer(name: str, orig: Callable[..., Any], wrap: Callable[[Any], Any] | None) -> Callable[..., Any]:
    """Send, Recv, Bcast, ...: the bytes of ``buf``."""
    table = _table("mpi", name)

    def traced(self: Any, buf: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = _perf()
        result = orig(self, buf, *args, **kwargs) if kwargs else orig(self, buf, *args)
        t1 = _perf()
        try:
            nbytes = buf.nbytes
        except AttributeError:
            nbytes = _safe_bytes(buf)
        try:
            key = self._n << 6 | nbytes.bit_length()
        except AttributeError:
            key = _size(self) << 6 | nbytes.bit_length()
        entry = table.get(key) or _entry(table, key)
        entry[0] += 1
        entry[1] += nbytes
        entry[2] += t1 - t0
        if t1 >= _next_flush:
            flush()
        return result if wrap is None else wrap(result)

    return functools.wraps(orig)(traced)


def _two_buffers(name: str, orig: Callable[..., Any], sizer: Callable[[Any, Any, int], int] | None,
                 wrap: Callable[[Any], Any] | None) -> Callable[..., Any]:  # fmt: skip
    """Collectives with ``sendbuf`` and ``recvbuf``: bytes from ``sizer(sendbuf, recvbuf, size)``, or with no
    sizer those of ``sendbuf`` (of ``recvbuf`` in place)."""
    table = _table("mpi", name)

    def traced(self: Any, sendbuf: Any, recvbuf: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = _perf()
        result = (
            orig(self, sendbuf, recvbuf, *args, **kwargs) if kwargs else orig(self, sendbuf, recvbuf, *args)
        )
        t1 = _perf()
        try:
            n = self._n
        except AttributeError:
            n = _size(self)
        if sizer is None:
            try:
                nbytes = sendbuf.nbytes
            except AttributeError:  # a [data, count, type] spec, or MPI.IN_PLACE
                nbytes = _safe_bytes(recvbuf if sendbuf is _IN_PLACE[0] else sendbuf)
        else:
            nbytes = sizer(sendbuf, recvbuf, n)
        key = n << 6 | nbytes.bit_length()
        entry = table.get(key) or _entry(table, key)
        entry[0] += 1
        entry[1] += nbytes
        entry[2] += t1 - t0
        if t1 >= _next_flush:
            flush()
        return result if wrap is None else wrap(result)

    return functools.wraps(orig)(traced)


def _reduction(name: str, orig: Callable[..., Any], sum_op: Any,
               wrap: Callable[[Any], Any] | None) -> Callable[..., Any]:  # fmt: skip
    """Allreduce, Scan, Reduce_scatter_block, ... (sendbuf, recvbuf, op=SUM): the signature written out, which
    saves a fifth of the budget over packing *args and **kwargs; bytes as in :func:`_two_buffers`."""
    table = _table("mpi", name)

    def traced(self: Any, sendbuf: Any, recvbuf: Any, op: Any = sum_op) -> Any:
        t0 = _perf()
        result = orig(self, sendbuf, recvbuf, op)
        t1 = _perf()
        try:
            n = self._n
        except AttributeError:
            n = _size(self)
        try:
            nbytes = sendbuf.nbytes
        except AttributeError:  # a [data, count, type] spec, or MPI.IN_PLACE
            nbytes = _safe_bytes(recvbuf if sendbuf is _IN_PLACE[0] else sendbuf)
        key = n << 6 | nbytes.bit_length()
        entry = table.get(key) or _entry(table, key)
        entry[0] += 1
        entry[1] += nbytes
        entry[2] += t1 - t0
        if t1 >= _next_flush:
            flush()
        return result if wrap is None else wrap(result)

    return functools.wraps(orig)(traced)


def _other(name: str, orig: Callable[..., Any], sizer: Callable[..., int] | None, comm: bool,
           wrap: Callable[[Any], Any] | None) -> Callable[..., Any]:  # fmt: skip
    """Any other call: bytes from ``sizer(args, kwargs)``, else what it pickled (or unpickled); ``comm``:
    the first argument is a communicator (else a request method, counted with size 0)."""
    table = _table("mpi", name)

    def traced(*args: Any, **kwargs: Any) -> Any:
        dumped, loaded = _pickled
        t0 = _perf()
        result = orig(*args, **kwargs)
        t1 = _perf()
        if sizer is not None:
            nbytes = _safely(sizer, args, kwargs)
        else:
            nbytes = _pickled[0] - dumped or _pickled[1] - loaded
        _count(table, _size(args[0]) if comm else 0, nbytes, t1 - t0)
        if t1 >= _next_flush:
            flush()
        return result if wrap is None else wrap(result)

    return functools.wraps(orig)(traced)


def _safely(sizer: Callable[..., int], *args: Any) -> int:
    try:
        return sizer(*args)
    except (TypeError, ValueError, IndexError, AttributeError, KeyError):
        return 0  # an argument shape we do not know: the call and its time still count


def _safe_bytes(buf: Any) -> int:
    return _safely(_buf_bytes, buf, _DATATYPE[0])


_DATATYPE: list[type] = [type(None)]  # MPI.Datatype once mpi4py is patched
_IN_PLACE: list[Any] = [object()]  # MPI.IN_PLACE once mpi4py is patched


def _patch_mpi(MPI: ModuleType) -> None:
    """Replace MPI.COMM_WORLD and MPI.Request with traced subclasses' objects; count pickled bytes."""
    base_request, base_comm = MPI.Request, MPI.Intracomm
    _DATATYPE[0], _IN_PLACE[0] = MPI.Datatype, MPI.IN_PLACE

    class _RequestMeta(type):
        # Requests from untraced objects (COMM_SELF, windows, files) are still MPI.Request instances.
        def __instancecheck__(cls, obj: Any) -> bool:
            return isinstance(obj, base_request)

        def __subclasscheck__(cls, sub: type) -> bool:
            return issubclass(sub, base_request)

    traced_request = _RequestMeta("Request", (base_request,), {"__module__": MPI.__name__})
    for name in _MPI_WAITS:
        setattr(traced_request, name, _other(name, getattr(base_request, name), _no_bytes, False, None))
    for name in _MPI_MULTI_WAITS:  # classmethods: bound to the base class, called without an instance
        wrapper = _other(name, getattr(base_request, name), _no_bytes, False, None)
        setattr(traced_request, name, staticmethod(wrapper))
    # A slot for the size: found in the class, not after searching four classes and an instance dict.
    traced_comm = type("Intracomm", (base_comm,), {"__module__": MPI.__name__, "__slots__": ("_n",)})

    def as_traced_comm(comm: Any) -> Any:
        return traced_comm(comm) if type(comm) is base_comm and comm != MPI.COMM_NULL else comm

    for name in _MPI_ONE_BUFFER:
        wrap = traced_request if name.startswith("I") else None
        setattr(traced_comm, name, _one_buffer(name, getattr(base_comm, name), wrap))
    for name in _MPI_REDUCTIONS:
        wrap = traced_request if name.startswith("I") else None
        setattr(traced_comm, name, _reduction(name, getattr(base_comm, name), MPI.SUM, wrap))
    sizers = _two_buffer_sizers(MPI.IN_PLACE)
    for shape, names in _MPI_TWO_BUFFERS.items():
        for name in names:
            wrap = traced_request if name.startswith("I") else None
            setattr(traced_comm, name, _two_buffers(name, getattr(base_comm, name), sizers[shape], wrap))
    for name, sizer in _MPI_OTHER.items():
        wrap = traced_request if name.startswith("I") else None
        setattr(traced_comm, name, _other(name, getattr(base_comm, name), sizer, True, wrap))
    for name in _MPI_PICKLE_CALLS:
        wrap = traced_request if name.startswith("i") else None
        setattr(traced_comm, name, _other(name, getattr(base_comm, name), None, True, wrap))
    for name in _MPI_DERIVING:
        setattr(traced_comm, name, _deriving(getattr(base_comm, name), as_traced_comm))
    _count_pickled(MPI)
    MPI.Request = traced_request
    MPI.COMM_WORLD = traced_comm(MPI.COMM_WORLD)


def _deriving(orig: Callable[..., Any], convert: Callable[[Any], Any]) -> Callable[..., Any]:
    def derive(self: Any, *args: Any, **kwargs: Any) -> Any:
        return convert(orig(self, *args, **kwargs))

    return functools.wraps(orig)(derive)


def _count_pickled(MPI: ModuleType) -> None:
    """Route mpi4py's pickling through counting functions (same protocol), so lower-case calls have bytes."""
    import pickle

    def dumps(obj: Any, protocol: int | None = None) -> bytes:
        data = pickle.dumps(obj, protocol)
        _pickled[0] += len(data)
        return data

    def loads(data: Any) -> Any:
        _pickled[1] += memoryview(data).nbytes
        return pickle.loads(data)

    MPI.pickle.__init__(dumps, loads, MPI.pickle.PROTOCOL)


# ---------------------------------------------------------------- torch.distributed


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return value.numel() * value.element_size() if value is not None else 0


# name -> (position and keyword of the tensor argument whose size is S, position of async_op or -1)
_TORCH_CALLS = {
    "all_reduce": (0, "tensor", 3), "broadcast": (0, "tensor", 3), "reduce": (0, "tensor", 4),
    "all_gather": (0, "tensor_list", 3), "all_gather_into_tensor": (0, "output_tensor", 3),
    "reduce_scatter": (1, "input_list", 4), "reduce_scatter_tensor": (1, "input", 4),
    "all_to_all": (1, "input_tensor_list", 3), "all_to_all_single": (1, "input", 5),
    "barrier": (-1, "", 1), "send": (0, "tensor", -1), "recv": (0, "tensor", -1),
    "isend": (0, "tensor", -2), "irecv": (0, "tensor", -2),
}  # fmt: skip
_GROUP_POS = {"all_reduce": 2, "broadcast": 2, "reduce": 3, "all_gather": 2, "all_gather_into_tensor": 2,
              "reduce_scatter": 3, "reduce_scatter_tensor": 3, "all_to_all": 2, "all_to_all_single": 4,
              "barrier": 0, "send": 2, "recv": 2, "isend": 2, "irecv": 2}  # fmt: skip


def _torch_record(name: str, nbytes: int, seconds: float, size: int) -> None:
    with _torch_lock:
        _count(_table("torch", name), size, nbytes, seconds)


# NCCL calls timed by CUDA events and not yet resolved: [start, end, name, bytes, ranks], in call order.
_cuda_pending: collections.deque[list[Any]] = collections.deque()
_side_streams: dict[Any, Any] = {}  # device -> the stream an async call's end event is recorded on


def _resolve_quietly() -> None:
    """:func:`_resolve_cuda`, never raising: an error from the CUDA runtime drops the pending timings (and
    says so in the next record's totals by their absence) instead of reaching the caller's collective."""
    if not _cuda_pending:
        return
    try:
        _resolve_cuda()
    except Exception:  # noqa: BLE001 - tracing must never break the job
        with _torch_lock:
            _cuda_pending.clear()


def _resolve_cuda(wait: bool = False) -> None:
    """Count the pending NCCL calls whose end event has completed (``wait``: all, waiting for each). Each
    pending entry holds the call's tensors until then, so their memory is not reused while NCCL works."""
    with _torch_lock:
        while _cuda_pending:
            start, end, name, nbytes, size, _tensors = _cuda_pending[0]
            if wait:
                end.synchronize()
            elif not end.query():
                break  # later calls are resolved at a later call or flush
            _cuda_pending.popleft()
            _count(_table("torch", name), size, nbytes, start.elapsed_time(end) / 1000)


def _first_tensor(value: Any) -> Any:
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return value


def _cuda_start(dist: ModuleType, value: Any, group: Any) -> Any:
    """A timing event recorded on the current stream when this call runs on NCCL with CUDA tensors; None
    otherwise (gloo, CPU tensors, no tensor: timed on the host as before)."""
    tensor = _first_tensor(value)
    if not getattr(tensor, "is_cuda", False) or dist.get_backend(group) != "nccl":
        return None
    torch = sys.modules["torch"]
    if torch.cuda.is_current_stream_capturing():
        return None  # inside a CUDA graph capture an event record would change the graph: host timing
    start = torch.cuda.Event(enable_timing=True)
    start.record(torch.cuda.current_stream(tensor.device))  # the tensor's device, not the current one
    return start


def _cuda_end(start: Any, work: Any, value: Any, name: str, nbytes: int, size: int) -> None:
    """The end event of an NCCL call: on the current stream after a blocking call (ProcessGroupNCCL has made
    it wait for the collective); for async work on a side stream made to wait for it (``work.wait()`` only
    orders the stream: the host does not block), so the event completes when the collective does."""
    torch = sys.modules["torch"]
    end = torch.cuda.Event(enable_timing=True)
    if work is None:
        end.record(torch.cuda.current_stream(_first_tensor(value).device))
    else:
        device = _first_tensor(value).device
        stream = _side_streams.get(device)
        if stream is None:
            stream = _side_streams[device] = torch.cuda.Stream(device=device)
        with torch.cuda.stream(stream):
            work.wait()
            end.record()
    with _torch_lock:
        _cuda_pending.append([start, end, name, nbytes, size, value])


def _torch_wrapper(dist: ModuleType, name: str, orig: Callable[..., Any]) -> Callable[..., Any]:
    """Time ``orig`` to completion: a blocking call until it returns, async work until its future is done,
    and on NCCL the GPU work itself by CUDA events (:func:`_cuda_start`, :func:`_cuda_end`)."""
    pos, keyword, async_pos = _TORCH_CALLS[name]
    group_pos = _GROUP_POS[name]

    def traced(*args: Any, **kwargs: Any) -> Any:
        _resolve_quietly()
        group = args[group_pos] if len(args) > group_pos else kwargs.get("group")
        value = args[pos] if len(args) > pos >= 0 else kwargs.get(keyword)
        try:
            start = _cuda_start(dist, value, group) if pos >= 0 else None
        except (TypeError, ValueError, RuntimeError, AttributeError):
            start = None
        t0 = _perf()
        work = orig(*args, **kwargs)
        t_return = _perf()
        try:
            size = dist.get_world_size(group)
            nbytes = _tensor_bytes(value) if pos >= 0 else 0
        except (TypeError, ValueError, RuntimeError, AttributeError):
            size, nbytes = 0, 0
        is_async = async_pos == -2 or (
            async_pos >= 0 and (args[async_pos] if len(args) > async_pos else kwargs.get("async_op", False))
        )
        if start is not None:
            _cuda_end(start, work if is_async else None, value, name, nbytes, size)
        elif not (is_async and work is not None and _on_completion(work, name, nbytes, size, t0)):
            _torch_record(name, nbytes, t_return - t0, size)
        if t_return >= _next_flush:
            flush()
        return work

    return functools.wraps(orig)(traced)


def _on_completion(work: Any, name: str, nbytes: int, size: int, t0: float) -> bool:
    """Record the call when ``work`` completes; False when its future cannot tell (then timed to return)."""
    try:
        future = work.get_future()
    except (RuntimeError, AttributeError):
        return False
    future.add_done_callback(lambda _f: _torch_record(name, nbytes, _perf() - t0, size))
    return True


def _patch_torch(dist: ModuleType) -> None:
    """Replace the collectives and p2p calls in the torch.distributed namespace (what programs call)."""
    for name in _TORCH_CALLS:
        orig = getattr(dist, name, None)
        if orig is not None:
            setattr(dist, name, _torch_wrapper(dist, name, orig))
