"""Communication tracing of mpi4py (:mod:`hpcx.profiling.comm` installs it): traced subclasses of
``MPI.Intracomm`` and ``MPI.Request`` whose methods count each call into the tables of :mod:`hpcx.profiling.comm`.

mpi4py's classes are C extension types whose methods cannot be replaced, so tracing swaps ``MPI.COMM_WORLD``
for an object of a traced subclass of ``MPI.Intracomm`` that shares its handle (mpi4py copies the handle and
never frees it on collection), and ``MPI.Request`` for a traced subclass whose ``isinstance`` still accepts
every request. Communicators made from a traced one (Dup, Split, Create, ...) are traced too. Byte counts
follow nccl-tests' message size S (see :mod:`hpcx.profiling.comm`). Nothing here imports mpi4py: the module
is handed to :func:`patch_mpi`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hpcx.profiling.comm import _count, _due, _perf, _pickled, _table, flush


def _buf_bytes(buf: Any, datatype: Any) -> int:
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
_MPI_ONE_BUFFER = (
    "Send",
    "Ssend",
    "Bsend",
    "Rsend",
    "Recv",
    "Isend",
    "Issend",
    "Ibsend",
    "Irsend",
    "Irecv",
    "Bcast",
    "Ibcast",
)
# (sendbuf, recvbuf, op=SUM), the most frequent calls: an exact signature (see _reduction)
_MPI_REDUCTIONS = (
    "Allreduce",
    "Scan",
    "Exscan",
    "Reduce_scatter_block",
    "Iallreduce",
    "Iscan",
    "Iexscan",
    "Ireduce_scatter_block",
)
_MPI_TWO_BUFFERS = {
    "send_or_recv": (
        "Reduce",
        "Alltoall",
        "Alltoallv",
        "Reduce_scatter",
        "Ireduce",
        "Ialltoall",
        "Ialltoallv",
        "Ireduce_scatter",
    ),
    "times_n": (
        "Gather",
        "Gatherv",
        "Allgather",
        "Allgatherv",
        "Igather",
        "Igatherv",
        "Iallgather",
        "Iallgatherv",
    ),
    "scatter": ("Scatter", "Scatterv", "Iscatter", "Iscatterv"),
}
_MPI_OTHER = {
    "Sendrecv": _sendrecv_bytes,
    "Sendrecv_replace": _replace_bytes,
    "Barrier": _no_bytes,
    "Ibarrier": _no_bytes,
}
_MPI_PICKLE_CALLS = (
    "send",
    "ssend",
    "bsend",
    "recv",
    "isend",
    "issend",
    "ibsend",
    "irecv",
    "sendrecv",
    "bcast",
    "reduce",
    "allreduce",
    "gather",
    "allgather",
    "scatter",
    "alltoall",
    "scan",
    "exscan",
    "barrier",
)
_MPI_DERIVING = ("Dup", "Clone", "Split", "Split_type", "Create", "Create_group", "Dup_with_info")
_MPI_WAITS = ("Wait", "Test", "wait", "test")
_MPI_MULTI_WAITS = (
    "Waitall",
    "Waitany",
    "Waitsome",
    "Testall",
    "Testany",
    "Testsome",
    "waitall",
    "waitany",
    "waitsome",
    "testall",
    "testany",
    "testsome",
)


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
        if t1 >= _due.at:
            flush()
        return result if wrap is None else wrap(result)

    return functools.wraps(orig)(traced)


def _two_buffers(
    name: str,
    orig: Callable[..., Any],
    sizer: Callable[[Any, Any, int], int] | None,
    wrap: Callable[[Any], Any] | None,
) -> Callable[..., Any]:
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
        if t1 >= _due.at:
            flush()
        return result if wrap is None else wrap(result)

    return functools.wraps(orig)(traced)


def _reduction(
    name: str, orig: Callable[..., Any], sum_op: Any, wrap: Callable[[Any], Any] | None
) -> Callable[..., Any]:
    """Allreduce, Scan, Reduce_scatter_block, ... (sendbuf, recvbuf, op=SUM): the signature written out, which
    saves a fifth of the budget over packing *args and **kwargs; bytes as in :func:`_two_buffers`.
    The body repeats _two_buffers' on purpose: a shared helper would cost a call on every traced MPI call, the
    budget benchmarks/mpi_call_added_us.py holds to."""
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
        if t1 >= _due.at:
            flush()
        return result if wrap is None else wrap(result)

    return functools.wraps(orig)(traced)


def _other(
    name: str,
    orig: Callable[..., Any],
    sizer: Callable[..., int] | None,
    comm: bool,
    wrap: Callable[[Any], Any] | None,
) -> Callable[..., Any]:
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
        if t1 >= _due.at:
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


def patch_mpi(MPI: Any) -> None:
    """Replace MPI.COMM_WORLD and MPI.Request with traced subclasses' objects; count pickled bytes."""
    _DATATYPE[0], _IN_PLACE[0] = MPI.Datatype, MPI.IN_PLACE
    traced_request = _traced_request_class(MPI)
    traced_comm = _traced_comm_class(MPI, traced_request)
    _count_pickled(MPI)
    MPI.Request = traced_request
    MPI.COMM_WORLD = traced_comm(MPI.COMM_WORLD)
    if MPI.Is_initialized() and not MPI.Is_finalized():  # on the importing thread, where MPI may be called
        from hpcx.profiling.comm_cost import calibrate_mpi

        calibrate_mpi(MPI, traced_comm)


def _traced_request_class(MPI: Any) -> type:
    """A subclass of MPI.Request whose waits and tests are counted."""
    base_request = MPI.Request

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
    return traced_request


def _traced_comm_class(MPI: Any, traced_request: type) -> type:
    """A subclass of MPI.Intracomm whose calls are counted, as are the communicators it makes (Dup, ...)."""
    base_comm = MPI.Intracomm
    # A slot for the size: found in the class, not after searching four classes and an instance dict.
    traced_comm = type("Intracomm", (base_comm,), {"__module__": MPI.__name__, "__slots__": ("_n",)})

    def as_traced_comm(comm: Any) -> Any:
        return traced_comm(comm) if type(comm) is base_comm and comm != MPI.COMM_NULL else comm

    def wrap(name: str) -> type | None:
        """The request class a nonblocking call's request becomes (Isend, Iallreduce, isend, ...)."""
        return traced_request if name.startswith(("I", "i")) else None

    for name in _MPI_ONE_BUFFER:
        setattr(traced_comm, name, _one_buffer(name, getattr(base_comm, name), wrap(name)))
    for name in _MPI_REDUCTIONS:
        setattr(traced_comm, name, _reduction(name, getattr(base_comm, name), MPI.SUM, wrap(name)))
    sizers = _two_buffer_sizers(MPI.IN_PLACE)
    for shape, names in _MPI_TWO_BUFFERS.items():
        for name in names:
            setattr(
                traced_comm, name, _two_buffers(name, getattr(base_comm, name), sizers[shape], wrap(name))
            )
    for name, sizer in _MPI_OTHER.items():
        setattr(traced_comm, name, _other(name, getattr(base_comm, name), sizer, True, wrap(name)))
    for name in _MPI_PICKLE_CALLS:
        setattr(traced_comm, name, _other(name, getattr(base_comm, name), None, True, wrap(name)))
    for name in _MPI_DERIVING:
        setattr(traced_comm, name, _deriving(getattr(base_comm, name), as_traced_comm))
    return traced_comm


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
