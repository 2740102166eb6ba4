"""Reading the blocks of an epoch in the process that uses them: through the file's memory map where a dataset's
bytes lie raw (contiguous, or chunked without filters), through HDF5 otherwise, and each batch cut from the
blocks it covers. Files are opened when reading starts and closed when it stops."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Union

import h5py
import numpy as np
import torch

from hpcx.errors import RuntimeFailure
from hpcx.io.reader_files import Column, MapInfo, identity, mapped, will_need
from hpcx.io.reader_plan import EpochPlan, block_permutation
from hpcx.profiling import iometrics as metrics

if TYPE_CHECKING:
    from hpcx.io.reader import HDF5Reader

Batch = Union[torch.Tensor, tuple[torch.Tensor, ...]]
Rows = Callable[[int, int], np.ndarray]  # rows a:b of one dataset's block


class BlockCache:
    """Reads blocks in the process that uses them and keeps those of the last batch it built.

    Consecutive batches share at most their boundary blocks, and a worker's next batch starts no earlier than
    its last one ended, so keeping the last batch's blocks reads every block once per process. Reads are
    counted in hpcx.profiling.iometrics once per block: a mapped block's batch copies are summed until the next block.
    """

    def __init__(self, reader: HDF5Reader, plan: EpochPlan, epoch: int) -> None:
        self.reader, self.plan, self.epoch = reader, plan, epoch
        self.opened: list[h5py.File] = []
        self.columns: dict[int, list[Callable[[int, int, np.ndarray | None], Rows]]] = {}
        self.blocks: dict[int, list[Rows]] = {}
        self.read_bytes, self.read_s = 0, 0.0

    def batch(self, i: int) -> Batch:
        pieces = self.plan.pieces(i)
        if len(pieces) == 1:  # the common case: no copy beyond the read
            j, lo, hi = pieces[0]
            block = self.blocks.get(j)
            if block is None:
                block = self._load(j)
                self.blocks = {j: block}
            columns = [torch.from_numpy(rows(lo, hi)) for rows in block]
        else:
            self.blocks = {j: self.blocks.get(j) or self._load(j) for j, _, _ in pieces}
            columns = [
                torch.from_numpy(np.concatenate([self.blocks[j][c](lo, hi) for j, lo, hi in pieces]))
                for c in range(len(self.reader.columns))
            ]
        return columns[0] if self.reader.single else tuple(columns)

    def _load(self, j: int) -> list[Rows]:
        self._count()
        block = self.plan.order[j]
        file_index, lo, hi = self.reader.blocks[block]
        perm = None
        if self.reader.shuffle:
            perm = block_permutation(self.reader.seed, self.epoch, block, hi - lo)
        path = self.reader.files[file_index].path
        try:
            return [column(lo, hi, perm) for column in self._columns(file_index)]
        except (OSError, KeyError, ValueError) as exc:
            raise RuntimeFailure(
                f"reading rows {lo}:{hi} of {path} failed: {exc}",
                hint="the reader's files must not change while it reads them",
            ) from exc

    def _columns(self, file_index: int) -> list[Callable[[int, int, np.ndarray | None], Rows]]:
        """How to read each dataset of a file in this process: mapped, or through HDF5 (opened once here)."""
        if file_index in self.columns:
            return self.columns[file_index]
        file = self.reader.files[file_index]
        if identity(file.path) != file.identity:
            raise RuntimeFailure(
                f"{file.path} changed since the reader was made", hint="make a new reader for the new data"
            )
        found: list[Callable[[int, int, np.ndarray | None], Rows]] = []
        f = None
        for column, mapping in zip(self.reader.columns, file.maps):
            if mapping is not None and mapping.offset is not None:
                rows = mapped(file, mapping.offset, mapping.dtype, (file.rows, *column.shape))
                found.append(MappedColumn(rows, column, self._add).block)
                continue
            if f is None:
                f = h5py.File(file.path, "r")
                self.opened.append(f)
            hdf5 = HDF5Column(f[column.name], column, self._add)
            if mapping is None:
                found.append(hdf5.block)
            else:
                whole = mapped(file, 0, "u1", (file.identity[3],))
                found.append(ChunkMappedColumn(whole, mapping, hdf5, column, self._add).block)
        self.columns[file_index] = found
        return found

    def _add(self, nbytes: int, seconds: float) -> None:
        self.read_bytes += nbytes
        self.read_s += seconds

    def _count(self) -> None:
        if self.read_bytes:
            metrics.add("read", self.read_bytes, self.read_s)
            self.read_bytes, self.read_s = 0, 0.0

    def close(self) -> None:
        self._count()
        for f in self.opened:
            f.close()
        self.opened.clear()
        self.columns.clear()


class MappedColumn:
    """A dataset read through a memory map: a block is a view, and each batch copies its rows out (the read
    itself), which costs what the same loop over ``np.memmap`` costs."""

    def __init__(self, rows: np.ndarray, column: Column, count: Callable[[int, float], None]) -> None:
        self.rows, self.dtype, self.count = rows, column.dtype, count

    def block(self, lo: int, hi: int, perm: np.ndarray | None) -> Rows:
        return self._rows(self.rows[lo:hi], perm)

    def _rows(self, rows: np.ndarray, perm: np.ndarray | None) -> Rows:
        if perm is not None:
            will_need(self.rows, rows)
        return lambda a, b: self._copy(rows, a, b, perm)

    def _copy(self, rows: np.ndarray, a: int, b: int, perm: np.ndarray | None) -> np.ndarray:
        t0 = time.perf_counter()
        if perm is None:
            out = np.array(rows[a:b], dtype=self.dtype)  # the byte order made native, as torch needs
        else:
            out = np.take(rows, perm[a:b], axis=0).astype(self.dtype, copy=False)
        self.count(out.nbytes, time.perf_counter() - t0)
        return out


class ChunkMappedColumn(MappedColumn):
    """A chunked dataset without filters: each chunk holds its rows raw, so a block whose chunks lie back to back
    in the file is a view of the file's map. Blocks whose chunks do not (or are unwritten) go to HDF5."""

    def __init__(
        self,
        whole: np.ndarray,
        mapping: MapInfo,
        hdf5: HDF5Column,
        column: Column,
        count: Callable[[int, float], None],
    ) -> None:
        super().__init__(whole, column, count)
        self.hdf5, self.file_dtype, self.chunk_rows = hdf5, np.dtype(mapping.dtype), mapping.chunk_rows or 1
        self.shape, self.zeros = column.shape, (0,) * len(column.shape)
        self.row_bytes = self.file_dtype.itemsize * math.prod(column.shape)

    def block(self, lo: int, hi: int, perm: np.ndarray | None) -> Rows:
        c = self.chunk_rows
        first, last = lo // c, (hi - 1) // c
        info = self.hdf5.dataset.get_chunk_info_by_coord
        offsets = [info((k * c, *self.zeros)).byte_offset for k in range(first, last + 1)]
        chunk_bytes = c * self.row_bytes
        if None in offsets or any(b - a != chunk_bytes for a, b in zip(offsets, offsets[1:])):
            return self.hdf5.block(lo, hi, perm)
        start = offsets[0] + (lo - first * c) * self.row_bytes
        raw = self.rows[start : start + (hi - lo) * self.row_bytes]
        return self._rows(raw.view(self.file_dtype).reshape(hi - lo, *self.shape), perm)


class HDF5Column:
    """A chunked (maybe compressed) or unwritten dataset, read by HDF5 one hyperslab per block; the block's
    batches are views of it."""

    def __init__(self, d: h5py.Dataset, column: Column, count: Callable[[int, float], None]) -> None:
        self.dataset, self.column, self.count = d.id, column, count
        self.space = d.id.get_space()
        self.scratch = np.empty((0, *column.shape), column.dtype)

    def block(self, lo: int, hi: int, perm: np.ndarray | None) -> Rows:
        t0 = time.perf_counter()
        out = np.empty((hi - lo, *self.column.shape), self.column.dtype)
        # a shuffled block is read into a reused buffer, and the shuffle copies its rows out
        target = out if perm is None else self._scratch(hi - lo)
        tail = self.column.shape
        self.space.select_hyperslab((lo, *(0 for _ in tail)), (hi - lo, *tail))
        self.dataset.read(h5py.h5s.create_simple(target.shape), self.space, target)
        self.count(out.nbytes, time.perf_counter() - t0)
        if perm is not None:
            np.take(target, perm, axis=0, out=out)
        return lambda a, b: out[a:b]

    def _scratch(self, rows: int) -> np.ndarray:
        if len(self.scratch) < rows:
            self.scratch = np.empty((rows, *self.column.shape), self.column.dtype)
        return self.scratch[:rows]
