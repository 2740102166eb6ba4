"""Copying the state of a background checkpoint save to host memory, so the training loop may change its own at
once. torch is imported inside the methods."""

from __future__ import annotations

import copy
from typing import Any


class Stager:
    """Copies the state of a background save to host memory, into buffers kept from one save to the next.

    Writing into memory that is already mapped is about three times faster than allocating a fresh copy (no page
    faults), and GPU tensors go to pinned buffers with one synchronisation at the end. The price is a host copy
    of the saved state kept between background saves. Storages are copied whole, with each tensor's offset and
    strides, so views and shared storages stay shared and torch.save writes the same bytes as for the original.
    """

    def __init__(self) -> None:
        self._buffers: list[Any] = []  # untyped storages, in the order the last copy used them
        self._used = 0
        self._memo: dict[Any, Any] = {}
        self._from_cuda = False

    def copy(self, obj: Any) -> Any:
        """A copy of ``obj`` the training loop cannot change any more: tensors copied to the CPU, containers
        rebuilt (keeping their type and attributes, such as ``state_dict()._metadata``), the rest deep-copied.
        Only call it once the previous copy has been written: it reuses that copy's buffers."""
        import torch

        self._used, self._memo, self._from_cuda = 0, {}, False
        out = self._copy(obj)
        if self._from_cuda:
            torch.cuda.synchronize()
        del self._buffers[self._used :]
        self._memo = {}
        return out

    def _copy(self, obj: Any) -> Any:
        import torch

        if isinstance(obj, torch.Tensor):
            return self._copy_tensor(obj)
        if isinstance(obj, dict):
            out = copy.copy(obj)
            for key, value in obj.items():
                out[key] = self._copy(value)
            return out
        if type(obj) in (list, tuple):
            return type(obj)(self._copy(v) for v in obj)
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*(self._copy(v) for v in obj))
        return copy.deepcopy(obj)

    def _copy_tensor(self, t: Any) -> Any:
        import torch

        t = t.detach()
        if t.layout != torch.strided or t.is_quantized or type(t) is not torch.Tensor:
            return t.to("cpu", copy=True)
        storage = t.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes(), str(storage.device))
        staged = self._memo.get(key)
        if staged is None:
            on_gpu = storage.device.type == "cuda"
            staged = self._memo[key] = self._buffer(storage.nbytes(), pinned=on_gpu)
            as_bytes = torch.empty(0, dtype=torch.uint8)
            source = torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage)
            as_bytes.set_(staged).copy_(source, non_blocking=on_gpu)
            self._from_cuda = self._from_cuda or on_gpu
        out = torch.empty(0, dtype=t.dtype)
        out.set_(staged, t.storage_offset(), t.size(), t.stride())
        return out

    def _buffer(self, nbytes: int, *, pinned: bool) -> Any:
        import torch

        i, self._used = self._used, self._used + 1
        if (
            i < len(self._buffers)
            and self._buffers[i].nbytes() == nbytes
            and self._buffers[i].is_pinned() == pinned
        ):
            return self._buffers[i]
        buffer = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned).untyped_storage()
        if i < len(self._buffers):
            self._buffers[i] = buffer
        else:
            self._buffers.append(buffer)
        return buffer
