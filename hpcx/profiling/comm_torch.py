"""Communication tracing of torch.distributed (:mod:`hpcx.profiling.comm` installs it): the collectives and
p2p calls of the ``torch.distributed`` namespace replaced by wrappers that count each call into the tables of
:mod:`hpcx.profiling.comm`.

Calls with ``async_op=True`` are timed from the call until the work completes (a callback on the work's
future), not until they return. On the NCCL backend (CUDA tensors) the host returns before the GPU has done
the work, so a call is timed on the GPU instead: a CUDA timing event recorded on the current stream before the
call and one after it (for ``async_op=True`` on a side stream made to wait for the work, so the event completes
with the collective); the pair is resolved lazily (:func:`hpcx.profiling.comm._resolve_cuda`), never by
synchronising a stream in the call. Nothing here imports torch: the module is handed to :func:`patch_torch`.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hpcx.profiling.comm import _count_torch, _due, _pend, _perf, _resolve_quietly, _side_streams, flush
from hpcx.profiling.comm_cost import calibrate_torch, tried
from hpcx.profiling.comm_ddp import in_hook


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return value.numel() * value.element_size() if value is not None else 0


# name -> (position and keyword of the tensor argument whose size is S, position of async_op or -1)
_TORCH_CALLS = {
    "all_reduce": (0, "tensor", 3),
    "broadcast": (0, "tensor", 3),
    "reduce": (0, "tensor", 4),
    "all_gather": (0, "tensor_list", 3),
    "all_gather_into_tensor": (0, "output_tensor", 3),
    "reduce_scatter": (1, "input_list", 4),
    "reduce_scatter_tensor": (1, "input", 4),
    "all_to_all": (1, "input_tensor_list", 3),
    "all_to_all_single": (1, "input", 5),
    "barrier": (-1, "", 1),
    "send": (0, "tensor", -1),
    "recv": (0, "tensor", -1),
    "isend": (0, "tensor", -2),
    "irecv": (0, "tensor", -2),
}
_GROUP_POS = {
    "all_reduce": 2,
    "broadcast": 2,
    "reduce": 3,
    "all_gather": 2,
    "all_gather_into_tensor": 2,
    "reduce_scatter": 3,
    "reduce_scatter_tensor": 3,
    "all_to_all": 2,
    "all_to_all_single": 4,
    "barrier": 0,
    "send": 2,
    "recv": 2,
    "isend": 2,
    "irecv": 2,
}


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
    _pend([start, end, name, nbytes, size, value])


def _torch_wrapper(dist: ModuleType, name: str, orig: Callable[..., Any]) -> Callable[..., Any]:
    """Time ``orig`` to completion: a blocking call until it returns, async work until its future is done,
    and on NCCL the GPU work itself by CUDA events (:func:`_cuda_start`, :func:`_cuda_end`)."""
    pos, keyword, async_pos = _TORCH_CALLS[name]
    group_pos = _GROUP_POS[name]

    def traced(*args: Any, **kwargs: Any) -> Any:
        if in_hook():  # a DDP hook's own call, or its callbacks': counted as its bucket's
            return orig(*args, **kwargs)
        if "torch" not in tried:  # once, at the first call, on the caller's thread: a few ms
            calibrate_torch(_torch_wrapper)
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
            _count_torch(name, nbytes, t_return - t0, size)
        if t_return >= _due.at:
            flush()
        return work

    return functools.wraps(orig)(traced)


def _on_completion(work: Any, name: str, nbytes: int, size: int, t0: float) -> bool:
    """Record the call when ``work`` completes; False when its future cannot tell (then timed to return)."""
    try:
        future = work.get_future()
    except (RuntimeError, AttributeError):
        return False
    future.add_done_callback(lambda _f: _count_torch(name, nbytes, _perf() - t0, size))
    return True


def patch_torch(dist: ModuleType) -> None:
    """Replace the collectives and p2p calls in the torch.distributed namespace (what programs call)."""
    for name in _TORCH_CALLS:
        orig = getattr(dist, name, None)
        if orig is not None:
            setattr(dist, name, _torch_wrapper(dist, name, orig))
