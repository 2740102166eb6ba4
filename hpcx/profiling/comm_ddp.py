"""DistributedDataParallel's own gradient communication (:mod:`hpcx.profiling.comm` installs it).

DDP all-reduces its gradient buckets from C++ (its Reducer), not through the ``torch.distributed`` calls that
:mod:`hpcx.profiling.comm_torch` wraps, so a DDP job would look as if it hardly communicated. This module makes
each DDP model's bucket communication visible without a change to the user's script:

- a model whose program registers no communication hook of its own gets, at its first forward (DDP takes a
  hook until the first backward), torch's own default all-reduce hook (``default_hooks.allreduce_hook``: divide
  by the group size, all-reduce with sum; what the Reducer does without a hook) wrapped in a timer;
- a model whose program registers its own hook (``register_comm_hook``) has that hook wrapped in the timer
  instead, so its numerics stay the program's;
- a built-in C++ hook (``_register_builtin_comm_hook``) cannot be wrapped: it is recorded as not covered;
- under ``join(divide_by_initial_world_size=False)`` (uneven inputs) the default hook divides by the ranks still
  training, as the Reducer does without a hook; a joined rank's shadow passes go through the hook and count.

The torch.distributed calls a hook makes, in the hook or in its future's callbacks after it returned (PowerSGD's
P and Q all-reduces), are its bucket's: they are not counted a second time.

Each bucket's communication is timed from the hook's call until its future completes (on NCCL with CUDA events
on the stream, as :mod:`hpcx.profiling.comm_torch` does), counted as the call ``ddp_bucket_allreduce`` with the
bucket's bytes, and the torch.distributed calls the hook makes inside are not counted a second time. Per bucket
index its bytes and time are kept, and per backward pass (the buckets from the first to the one marked last) how
much of the communication ran before the last bucket was ready (hidden behind the backward computation) and how
much after (exposed): what a user tuning ``bucket_cap_mb`` needs. The overlap is taken from host times; on
NCCL the host sees a bucket complete when its callback runs, so there it is labelled as host-observed.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hpcx.profiling.comm import _count_torch, _pend, _perf
from hpcx.profiling.comm_cost import calibrate_ddp, tried

CALL = "ddp_bucket_allreduce"
NCCL_TIMING = (
    "unavailable on NCCL: the host sees a bucket's future complete when its work is queued; the GPU time is in "
    "the ddp_bucket_allreduce call's seconds (CUDA events)"
)
inside_hook = threading.local()  # set while a timed hook runs: comm_torch does not count its calls again

_lock = threading.Lock()
# bucket index -> [calls, bytes, seconds]
_buckets: dict[int, list[Any]] = {}
# what the models' hooks were: "hpcx default allreduce", "user: NAME", "builtin: NAME (not covered)"
_hooks: dict[str, int] = {}
_overlap: dict[str, Any] = {"steps": 0, "hidden_s": 0.0, "exposed_s": 0.0, "timing": "host"}
_pass: dict[int, dict[str, Any]] = {}  # per model (id): the backward pass in progress
# per model (id): buckets whose hook was called and whose future has not completed. While any is in flight the
# program's thread is inside backward(), so a torch.distributed call then is a hook's own, made from a callback
# after the hook returned (PowerSGD's P and Q): part of its bucket's time, not counted again
_flying: dict[int, int] = {}
_flying_total = [0]


def in_hook() -> bool:
    """Whether a torch.distributed call now belongs to a timed DDP hook (comm_torch then does not count it)."""
    return _flying_total[0] > 0 or getattr(inside_hook, "active", False)


def _fly(model: int, change: int) -> None:
    with _lock:
        now = max(0, _flying.get(model, 0) + change)
        _flying_total[0] += now - _flying.get(model, 0)
        _flying[model] = now


def _landed(model: int) -> None:
    """A new forward: every bucket of the model's last backward has completed, whatever a hook did."""
    if _flying.get(model):
        _fly(model, -_flying[model])


def snapshot() -> tuple[Any, ...]:
    """This module's counts as they are (the calibration of its cost puts them back afterwards)."""
    with _lock:
        return (
            {k: list(v) for k, v in _buckets.items()},
            dict(_hooks),
            dict(_overlap),
            {k: {**v, "intervals": list(v["intervals"])} for k, v in _pass.items()},
        )


def restore(saved: tuple[Any, ...]) -> None:
    with _lock:
        lives: tuple[dict[Any, Any], ...] = (_buckets, _hooks, _overlap, _pass)
        for live, old in zip(lives, saved):
            live.clear()
            live.update(old)


def summary() -> dict[str, Any] | None:
    """The DDP part of a comm record; None when no DDP model was seen."""
    with _lock:
        if not _hooks:
            return None
        return {
            "hooks": dict(_hooks),
            "buckets": [
                {"index": i, "calls": c, "bytes": b, "seconds": s}
                for i, (c, b, s) in sorted(_buckets.items())
            ],
            **_overlap,
        }


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def split_overlap(intervals: list[tuple[float, float]], backward_end: float) -> tuple[float, float]:
    """Seconds of the buckets' communication (their union) before ``backward_end`` (hidden behind the backward
    computation) and after it (exposed: the step waits for it)."""
    hidden = exposed = 0.0
    for a, b in _union(intervals):
        hidden += max(0.0, min(b, backward_end) - a)
        exposed += max(0.0, b - max(a, backward_end))
    return hidden, exposed


def _done(model: int, index: int, nbytes: int, t0: float) -> None:
    """A bucket's communication completed (host time now): count it and, once the pass's buckets are all
    done, its overlap."""
    t1 = _perf()
    with _lock:
        entry = _buckets.setdefault(index, [0, 0, 0.0])
        entry[0] += 1
        entry[1] += nbytes
        entry[2] += t1 - t0
        current = _pass.setdefault(model, {"intervals": [], "backward_end": None, "open": 0})
        current["intervals"].append((t0, t1))
        current["open"] -= 1
        if current["backward_end"] is not None and current["open"] == 0:
            hidden, exposed = split_overlap(current["intervals"], current["backward_end"])
            _overlap["steps"] += 1
            _overlap["hidden_s"] += hidden
            _overlap["exposed_s"] += exposed
            del _pass[model]


def _called(model: int, t0: float, last: bool) -> None:
    with _lock:
        current = _pass.setdefault(model, {"intervals": [], "backward_end": None, "open": 0})
        current["open"] += 1
        if last:
            current["backward_end"] = t0  # the last bucket is ready when the backward pass has finished


def timed(hook: Callable[[Any, Any], Any], model: Any) -> Callable[[Any, Any], Any]:
    """``hook`` (a DDP communication hook) timed per bucket; its result, and so the numerics, unchanged. Timing
    never reaches DDP: where it fails, the bucket goes through ``hook`` untimed."""
    key = id(model)

    def timed_hook(state: Any, bucket: Any) -> Any:
        try:
            buffer = bucket.buffer()
            nbytes, index, last = buffer.numel() * buffer.element_size(), bucket.index(), bucket.is_last()
            cuda = _cuda_start(buffer)
            t0 = _perf()
            if cuda is None:
                _called(key, t0, last)
        except Exception:  # tracing must never break the job
            return hook(state, bucket)
        inside_hook.active = True
        _fly(key, 1)
        try:
            future = hook(state, bucket)
        except BaseException:
            _fly(key, -1)
            raise
        finally:
            inside_hook.active = False
        size = _group_size(state)

        def finished(fut: Any) -> Any:
            try:
                _fly(key, -1)
                _bucket_done(key, index, nbytes, t0, cuda, size, buffer)
            except Exception:  # a failing timer must not fail the bucket's future
                pass
            return fut.value()

        return future.then(finished)

    return functools.wraps(hook)(timed_hook)


def _bucket_done(key: int, index: int, nbytes: int, t0: float, cuda: Any, size: int, buffer: Any) -> None:
    """Count a bucket whose future completed. On NCCL the future completes when the work is queued, so the
    bucket's seconds come from CUDA events (the call's entry) and no overlap can be told from the host."""
    if cuda is None:
        _done(key, index, nbytes, t0)
        _count_torch(CALL, nbytes, _perf() - t0, size)
        return
    with _lock:
        entry = _buckets.setdefault(index, [0, 0, 0.0])
        entry[0] += 1
        entry[1] += nbytes
        _overlap["timing"] = NCCL_TIMING
    _cuda_end(cuda, nbytes, size, buffer)


def _group_size(state: Any) -> int:
    try:
        if state is not None and hasattr(state, "size"):
            return int(state.size())
        return int(sys.modules["torch.distributed"].get_world_size())
    except Exception:  # a state of the user's own kind: the size is unknown, the bytes and time are not
        return 0


def _cuda_start(buffer: Any) -> Any:
    if not getattr(buffer, "is_cuda", False):
        return None
    torch = sys.modules["torch"]
    start = torch.cuda.Event(enable_timing=True)
    start.record(torch.cuda.current_stream(buffer.device))
    return start


def _cuda_end(start: Any, nbytes: int, size: int, buffer: Any) -> None:
    """The end event, recorded where the future's callback runs: its stream waits for the bucket's work."""
    torch = sys.modules["torch"]
    end = torch.cuda.Event(enable_timing=True)
    end.record(torch.cuda.current_stream(buffer.device))
    _pend([start, end, CALL, nbytes, size, buffer])


def _note(kind: str) -> None:
    with _lock:
        _hooks[kind] = _hooks.get(kind, 0) + 1


def patch_ddp(module: ModuleType) -> None:
    """Wrap DDP's hook registration and give a model without a hook of its own the timed default hook."""
    ddp = getattr(module, "DistributedDataParallel", None)
    if ddp is None or getattr(ddp, "_hpcx_patched", False):
        return
    register, builtin, forward = ddp.register_comm_hook, ddp._register_builtin_comm_hook, ddp.forward

    def register_comm_hook(self: Any, state: Any, hook: Callable[[Any, Any], Any]) -> Any:
        name = f"user: {getattr(hook, '__qualname__', type(hook).__name__)}"
        if getattr(self, "_hpcx_hook", None) == "hpcx":  # after a forward: hpcx's hook hands the buckets on
            return _delegate(self, state, hook, name)
        self._hpcx_hook = "user"
        result = register(self, state, timed(hook, self))
        _note(name)
        return result

    def register_builtin(self: Any, comm_hook_type: Any) -> Any:
        if getattr(self, "_hpcx_hook", None) == "hpcx":
            equivalent = _python_equivalent(comm_hook_type)
            if equivalent is not None:
                return _delegate(
                    self, self.process_group, equivalent, f"builtin: {comm_hook_type} (as Python)"
                )
        self._hpcx_hook = "builtin"
        _note(f"builtin: {comm_hook_type} (not covered)")
        return builtin(self, comm_hook_type)

    def first_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        _landed(id(self))
        if getattr(self, "_hpcx_hook", None) is None:  # a hook registered later is the program's own then
            self._hpcx_hook = "hpcx" if _install_default(self, register) else "failed"
        if "ddp" not in tried:  # once, on the first forward: torch is fully imported by now
            calibrate_ddp()
        return forward(self, *args, **kwargs)

    ddp.register_comm_hook = functools.wraps(register)(register_comm_hook)
    ddp._register_builtin_comm_hook = functools.wraps(builtin)(register_builtin)
    ddp.forward = functools.wraps(forward)(first_forward)
    ddp._hpcx_patched = True
    patch_join(module)


def _delegate(model: Any, state: Any, hook: Callable[[Any, Any], Any], name: str) -> None:
    """A hook the program registers after hpcx's default went in (DDP takes one hook per model, and a forward
    came first): hpcx's registered hook hands every bucket to it from now on, timed as before."""
    model._hpcx_delegate = (state, hook)
    with _lock:
        if _hooks.get("hpcx default allreduce"):
            _hooks["hpcx default allreduce"] -= 1
            if not _hooks["hpcx default allreduce"]:
                del _hooks["hpcx default allreduce"]
    _note(name)


def _python_equivalent(comm_hook_type: Any) -> Callable[[Any, Any], Any] | None:
    """The Python hook that does what a built-in C++ hook does (torch ships both), or None."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    return {"ALLREDUCE": default_hooks.allreduce_hook, "FP16_COMPRESS": default_hooks.fp16_compress_hook}.get(
        getattr(comm_hook_type, "name", str(comm_hook_type).rsplit(".", 1)[-1])
    )


def _install_default(model: Any, register: Callable[..., Any]) -> bool:
    """The timed default all-reduce hook on ``model`` (handing buckets to a hook the program registers later);
    a model DDP will not give a hook to is not covered."""
    try:
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        @functools.wraps(default_hooks.allreduce_hook)  # DDP checks a hook's annotations
        def default_or_delegate(state: Any, bucket: Any) -> Any:
            delegate = getattr(model, "_hpcx_delegate", None)
            if delegate is not None:
                return delegate[1](delegate[0], bucket)
            training = _ranks_training(model)
            if training:
                return _allreduce_mean(state, bucket, training)
            return default_hooks.allreduce_hook(state, bucket)

        register(model, model.process_group, timed(default_or_delegate, model))
    except Exception as exc:  # tracing must never break the job: say what is not covered instead
        _note(f"none: {type(exc).__name__} (not covered)")
        return False
    _note("hpcx default allreduce")
    return True


def _ranks_training(model: Any) -> int:
    """Under ``join(divide_by_initial_world_size=False)`` the Reducer divides the gradients by the ranks still
    training (the count the join context all-reduced at this forward), and a hook must do so itself; 0 otherwise."""
    if getattr(model, "_divide_by_initial_world_size", True):
        return 0
    work = getattr(model, "_hpcx_join_work", None)
    if work is None:
        return 0
    work.wait()
    return int(work.result()[0].item())


def _allreduce_mean(group: Any, bucket: Any, divisor: int) -> Any:
    """torch's default all-reduce hook with the Reducer's divisor instead of the group's size."""
    dist = sys.modules["torch.distributed"]
    buffer = bucket.buffer()
    buffer.div_(divisor)
    future = dist.all_reduce(buffer, group=group or dist.group.WORLD, async_op=True).get_future()
    return future.then(lambda fut: fut.value()[0])


def patch_join(module: ModuleType) -> None:
    """On ``module``'s ``Join`` (DDP's module imports torch's class): keep the work of the join context's per-forward count of the ranks still training on the model that
    started it (DDP hands it to its Reducer, which a hook cannot ask)."""
    join = getattr(module, "Join", None)
    if join is None or getattr(join, "_hpcx_patched", False):
        return
    notify = join.notify_join_context

    def notify_join_context(joinable: Any) -> Any:
        work = notify(joinable)
        try:
            joinable._hpcx_join_work = work
        except Exception:  # a joinable that takes no attribute: its divisor stays the group's size
            pass
        return work

    join.notify_join_context = staticmethod(functools.wraps(notify)(notify_join_context))
    join._hpcx_patched = True
