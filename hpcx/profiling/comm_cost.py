"""What tracing costs a call, measured on the job's own node when tracing starts (not assumed).

When a library is patched (:func:`hpcx.profiling.comm.install`), the wrapper of each kind of call is timed against
the call it wraps, in alternating blocks (direct, traced, direct, ...) so that a disturbance hits both alike;
the cost per call is the median block difference over the calls in a block, never below 0:

- ``mpi``: ``Allreduce`` of 8 bytes on ``COMM_SELF`` (a real MPI call that stays in the process), through the
  traced communicator class and directly;
- ``torch``: the torch.distributed wrapper around a call that returns at once, with a real 4-byte CPU tensor
  (the wrapper's own work: finding the group, sizing the tensor, counting);
- ``ddp``: the DDP hook timer around a hook whose future is already complete, with a real bucket-sized tensor.

Calibration calls are counted in tables of their own that are dropped afterwards, so the program's totals
hold only its own calls. It takes a few milliseconds per kind; a kind that cannot be calibrated (mpi4py not
initialised, an error) is left out, and the report says its cost is not measured.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from hpcx.profiling import comm

BLOCK = 200  # calls per block
BLOCKS = 7  # blocks per side
costs_us: dict[str, float] = {}  # kind -> measured microseconds added per traced call
tried: set[str] = (
    set()
)  # kinds whose calibration began: never again (nor from inside itself, nor after a failure)


def _block(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    for _ in range(BLOCK):
        fn()
    return time.perf_counter() - t0


def measure(direct: Callable[[], Any], traced: Callable[[], Any]) -> float:
    """Microseconds ``traced`` adds to ``direct`` per call: the median of alternating block differences."""
    direct(), traced()  # first calls pay for caches and lazy imports: not the steady cost
    diffs = []
    for _ in range(BLOCKS):
        diffs.append(_block(traced) - _block(direct))
    return max(0.0, statistics.median(diffs) / BLOCK * 1e6)


def _without_counting(keys: list[tuple[str, str]], fn: Callable[[], float]) -> float:
    """Run ``fn``, then put the comm tables at ``keys`` back as they were (a wrapper keeps its table object,
    so the entries are restored in place)."""
    saved = {key: {k: list(v) for k, v in comm._tables.get(key, {}).items()} for key in keys}
    try:
        return fn()
    finally:
        for key, entries in saved.items():
            table = comm._tables.get(key)
            if table is not None:
                table.clear()
                table.update(entries)


def calibrate(kind: str, fn: Callable[[], float], keys: list[tuple[str, str]]) -> None:
    """Measure ``kind``'s cost with ``fn`` (tables at ``keys`` untouched), once; a failure leaves it unmeasured."""
    if kind in tried:
        return
    tried.add(kind)  # first: the traced wrapper being measured must not start another calibration
    try:
        costs_us[kind] = round(_without_counting(keys, fn), 3)
    except Exception:  # calibration must never break the job: the kind's cost is then not measured
        costs_us.pop(kind, None)


def calibrate_mpi(MPI: Any, traced_comm_class: type) -> None:
    def run() -> float:
        import array

        send, recv = array.array("d", [1.0]), array.array("d", [0.0])
        plain, traced = MPI.COMM_SELF, traced_comm_class(MPI.COMM_SELF)
        return measure(
            lambda: plain.Allreduce(send, recv, MPI.SUM), lambda: traced.Allreduce(send, recv, MPI.SUM)
        )

    calibrate("mpi", run, [("mpi", "Allreduce")])


class _Group:
    """The smallest stand-in for torch.distributed's namespace that the wrapper asks (a group of one)."""

    @staticmethod
    def get_world_size(group: Any = None) -> int:
        return 1

    @staticmethod
    def get_backend(group: Any = None) -> str:
        return "gloo"


def calibrate_torch(make_wrapper: Callable[[Any, str, Callable[..., Any]], Callable[..., Any]]) -> None:
    def run() -> float:
        torch = sys.modules["torch"]
        tensor = torch.zeros(1)

        def returns(*args: Any, **kwargs: Any) -> None:
            return None

        wrapped = make_wrapper(_Group, "all_reduce", returns)
        return measure(lambda: returns(tensor), lambda: wrapped(tensor))

    calibrate("torch", run, [("torch", "all_reduce")])


class _Bucket:
    def __init__(self, tensor: Any) -> None:
        self._tensor = tensor

    def buffer(self) -> Any:
        return self._tensor

    def index(self) -> int:
        return 0

    def is_last(self) -> bool:
        return True


def calibrate_ddp() -> None:
    from hpcx.profiling import comm_ddp

    def run() -> float:
        torch = sys.modules["torch"]
        bucket = _Bucket(torch.zeros(1024))

        def hook(state: Any, b: Any) -> Any:
            done = torch.futures.Future()
            done.set_result(b.buffer())
            return done

        timed = comm_ddp.timed(hook, object())
        return measure(lambda: hook(None, bucket).then(_value), lambda: timed(None, bucket))

    saved = comm_ddp.snapshot()
    try:
        calibrate("ddp", run, [("torch", comm_ddp.CALL)])
    finally:
        comm_ddp.restore(saved)


def _value(fut: Any) -> Any:
    return fut.value()
