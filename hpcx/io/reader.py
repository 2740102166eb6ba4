"""The training reader: whole batches from HDF5 datasets for one rank, safe in DataLoader workers, resumable
exactly in the middle of an epoch.

    reader = HDF5Reader(["a.h5", "b.h5"], ["x", "y"], batch_size=64, seed=root_seed)
    reader.load_state_dict(checkpoint["reader"])          # when resuming
    for x, y in reader.loader(num_workers=2):              # the rest of the current epoch
        ...                                                # checkpoint["reader"] = reader.state_dict()

The rows of all files, in order, are cut into blocks: runs of rows aligned to the datasets' chunks (about
:data:`TARGET_BLOCK_BYTES` per block; a fixed row count for contiguous datasets). An epoch is one stream of
rows: the blocks in an order shuffled by ``derive_seed(seed, "reader", epoch, ...)``, each block's rows shuffled
inside it. Rank ``r`` of ``R`` takes the ``r``-th of ``R`` equal contiguous slices of that stream, cut into
batches; the stream's tail that does not fill a batch on every rank is dropped (``DistributedSampler``'s
``drop_last``), so every rank has ``len(reader)`` batches in every epoch and DDP never waits for a missing one.
A batch is built from slices of the blocks it covers. Where a dataset's bytes lie raw in its file (contiguous,
or chunked without filters) the file is memory-mapped and each batch copies its rows out of the map, as a loop
over ``np.memmap`` would; otherwise (compressed, say) HDF5 reads each block with one hyperslab.

DataLoader worker ``w`` of ``W`` yields the batches ``i`` with ``(i - position) % W == w``; the DataLoader hands
its workers' batches to the main process round-robin, in order, so the loop sees batches ``position,
position + 1, ...``, the same as without workers. :meth:`HDF5Reader.loader` counts the batches the loop has
taken: that count is the position in :meth:`HDF5Reader.state_dict`. A block HDF5 reads is read by every
worker with a batch in it (up to ``W`` times with ``W`` workers); mapped rows are copied once. Files are opened
inside the process that reads, when it starts reading, and closed when it stops (memory maps, plain memory, are
kept): nothing unpicklable is held in between, so fork and spawn are both safe. Nothing here imports MPI.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Union

import h5py
import numpy as np
import torch
import torch.utils.data

from hpcx.errors import RuntimeFailure, UsageError
from hpcx.profiling import iometrics as metrics
from hpcx.runtime.rankenv import detect
from hpcx.runtime.seeds import derive_seed

# Large enough that a block's fixed costs (its shuffle's generator, chunk look-ups, one HDF5 call) are small
# beside its rows; small enough to leave many blocks to shuffle.
TARGET_BLOCK_BYTES = 4 << 20
MAX_LCM_FACTOR = 8  # datasets chunked 64 and 1000 rows: an lcm of 8000 rows would be too coarse to shuffle
Batch = Union[torch.Tensor, tuple[torch.Tensor, ...]]


@dataclass(frozen=True)
class _Column:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]  # of one row


class _Mapping(NamedTuple):
    """How a dataset's raw bytes lie in its file, for reading them through a memory map."""

    dtype: str  # as stored, byte order included
    offset: int | None  # contiguous: where its bytes start
    chunk_rows: int | None  # chunked without filters: rows per chunk (chunks found as blocks are read)


@dataclass(frozen=True)
class _File:
    """What a reading process needs to know of one file, found once when the reader is made (picklable)."""

    path: str
    rows: int
    identity: tuple[int, ...]  # device, inode, mtime, size: a file changed since then is refused
    maps: tuple[_Mapping | None, ...]  # per dataset; None: HDF5 reads it


def _open(path: str) -> h5py.File:
    """``path`` opened read-only, or a UsageError that says why not."""
    if not Path(path).is_file():
        raise UsageError(f"HDF5 file {path} does not exist", hint="every rank must see the same files")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise UsageError(f"{path} is not a readable HDF5 file: {exc}") from exc


def _datasets(f: h5py.File, path: str, names: Sequence[str]) -> list[h5py.Dataset]:
    """The datasets ``names`` of ``f``, checked to have rows and the same number of them."""
    found = []
    for name in names:
        obj = f.get(name)
        if not isinstance(obj, h5py.Dataset):
            what = "is not a dataset" if obj is not None else "does not exist"
            raise UsageError(
                f"{name!r} in {path} {what}", hint=f"datasets there: {', '.join(_dataset_names(f)) or 'none'}"
            )
        if obj.ndim == 0:
            raise UsageError(f"{name!r} in {path} is a scalar", hint="the reader needs rows along axis 0")
        found.append(obj)
    lengths = {d.name.lstrip("/"): d.shape[0] for d in found}
    if len(set(lengths.values())) > 1:
        raise UsageError(
            f"datasets in {path} have different lengths: {lengths}",
            hint="inputs and labels must have one row per sample",
        )
    return found


def _dataset_names(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _columns(dsets: list[h5py.Dataset], path: str) -> list[_Column]:
    """What one row of each dataset is; the byte order made native (HDF5 converts on read), as torch needs."""
    columns = []
    for d in dsets:
        dtype = np.dtype(d.dtype).newbyteorder("=")
        try:
            torch.from_numpy(np.empty(0, dtype))
        except TypeError as exc:
            raise UsageError(
                f"{d.name} in {path} has dtype {d.dtype}, which torch cannot hold",
                hint="store numbers (float, int, uint8, bool)",
            ) from exc
        columns.append(_Column(d.name.lstrip("/"), dtype, tuple(d.shape[1:])))
    return columns


def default_block_rows(dsets: Sequence[h5py.Dataset], batch_size: int) -> int:
    """Rows per block for datasets read together, about TARGET_BLOCK_BYTES in all: a multiple of every
    dataset's chunk rows (of the dataset with the most bytes per row when a common multiple would be huge), and
    of ``batch_size`` when that costs little, so that batches rarely straddle two blocks (which costs a copy)."""
    row_bytes = max(1, sum(_row_bytes(d) for d in dsets))
    unit = _common_rows([d.chunks[0] for d in dsets if d.chunks])
    if unit is None:
        unit = max((d for d in dsets if d.chunks), key=_row_bytes).chunks[0]
    with_batch = _common_rows([unit, batch_size])
    if with_batch is not None and with_batch * row_bytes <= 2 * TARGET_BLOCK_BYTES:
        unit = with_batch
    return unit * max(1, TARGET_BLOCK_BYTES // (unit * row_bytes))


def _row_bytes(d: h5py.Dataset) -> int:
    return d.dtype.itemsize * math.prod(d.shape[1:])


def _common_rows(rows: list[int]) -> int | None:
    """The least common multiple of ``rows`` (1 for none), or None when it is much larger than any of them."""
    common = math.lcm(*rows) if rows else 1
    return common if not rows or common <= MAX_LCM_FACTOR * max(rows) else None


def _identity(path: str) -> tuple[int, ...]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _map_of(f: h5py.File, d: h5py.Dataset) -> _Mapping | None:
    """How to map a dataset whose bytes lie raw in its file: contiguous and written, or chunked without filters
    in chunks of whole rows. None when HDF5 must read it: compressed, external, virtual, unwritten, types other
    than plain numbers, and files with a user block (HDF5 versions differ on whether it counts in offsets)."""
    if f.userblock_size or d.external or d.is_virtual or d.dtype.kind not in "iuf" or d.size == 0:
        return None
    if d.chunks is None:
        written = d.id.get_storage_size() == d.dtype.itemsize * d.size
        return _Mapping(d.dtype.str, d.id.get_offset(), None) if written else None
    if d.id.get_create_plist().get_nfilters() == 0 and d.chunks[1:] == d.shape[1:]:
        return _Mapping(d.dtype.str, None, d.chunks[0])
    return None


_maps: dict[tuple[Any, ...], np.ndarray] = {}
_origins: dict[int, tuple[int, int]] = {}  # a mapping's first byte (address) -> (fd for advice, file offset)


def _mapped(file: _File, offset: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only view of ``shape`` items of ``dtype`` at ``offset`` in a file, kept for the life of the process.

    Mapping anew every epoch would fault every page in again, which a long-lived ``np.memmap`` does not pay. A
    mapping is plain memory, safe to inherit across a fork, unlike an open HDF5 file; one per contiguous dataset
    (or file of chunks) a process reads. Like any memory map, a file truncated while mapped ends the process with SIGBUS.
    """
    key = (file.path, file.identity, offset, dtype, shape)
    if key not in _maps:
        mapped = np.memmap(file.path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)
        _maps[key] = np.asarray(mapped)  # a plain view: slicing the memmap subclass costs more per batch
        _origins[_maps[key].ctypes.data] = (os.open(file.path, os.O_RDONLY), offset)
    return _maps[key]


def _will_need(base: np.ndarray, view: np.ndarray) -> None:
    """Ask the kernel to read ``view``'s bytes of a mapped file now, in one sequential pass.

    A shuffled block touches its pages in random order: from the page cache that costs nothing, but from disk
    each fault is a small random read (measured on this VM's disk: 6.7 s instead of 0.16 s for an epoch of
    512 MiB). One POSIX_FADV_WILLNEED per block turns those into a readahead of the whole block."""
    origin = _origins.get(base.ctypes.data)
    if origin is not None and hasattr(os, "posix_fadvise"):
        fd, offset = origin
        os.posix_fadvise(
            fd, offset + view.ctypes.data - base.ctypes.data, view.nbytes, os.POSIX_FADV_WILLNEED
        )


class _EpochPlan:
    """Where one rank's batches of one epoch lie: the epoch's block order and each batch's stream rows."""

    def __init__(self, sizes: np.ndarray, order: np.ndarray, first_row: int, batch_size: int, batches: int):
        ends = np.cumsum(sizes[order])  # stream row where each block (in epoch order) ends
        starts = first_row + batch_size * np.arange(batches)
        self.first = np.searchsorted(ends, starts, side="right").tolist()  # each batch's first and last block
        self.last = np.searchsorted(ends, starts + batch_size - 1, side="right").tolist()
        self.order, self.sizes, self.ends = order.tolist(), sizes[order].tolist(), ends.tolist()
        self.first_row, self.batch_size = first_row, batch_size

    def pieces(self, i: int) -> list[tuple[int, int, int]]:
        """Batch ``i`` as ``(stream block j, lo, hi)``: rows lo:hi of the j-th block (after its shuffle)."""
        start = self.first_row + i * self.batch_size
        stop = start + self.batch_size
        out = []
        for j in range(self.first[i], self.last[i] + 1):
            begin = self.ends[j] - self.sizes[j]
            out.append((j, max(start, begin) - begin, min(stop, self.ends[j]) - begin))
        return out


Rows = Callable[[int, int], np.ndarray]  # rows a:b of one dataset's block


class _BlockCache:
    """Reads blocks in the process that uses them and keeps those of the last batch it built.

    Consecutive batches share at most their boundary blocks, and a worker's next batch starts no earlier than
    its last one ended, so keeping the last batch's blocks reads every block once per process. Reads are
    counted in hpcx.profiling.iometrics once per block: a mapped block's batch copies are summed until the next block.
    """

    def __init__(self, reader: HDF5Reader, plan: _EpochPlan, epoch: int) -> None:
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
            rng = np.random.default_rng(derive_seed(self.reader.seed, "reader", self.epoch, "block", block))
            perm = rng.permutation(hi - lo)
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
        if _identity(file.path) != file.identity:
            raise RuntimeFailure(
                f"{file.path} changed since the reader was made", hint="make a new reader for the new data"
            )
        found: list[Callable[[int, int, np.ndarray | None], Rows]] = []
        f = None
        for column, mapping in zip(self.reader.columns, file.maps):
            if mapping is not None and mapping.offset is not None:
                rows = _mapped(file, mapping.offset, mapping.dtype, (file.rows, *column.shape))
                found.append(_MappedColumn(rows, column, self._add).block)
                continue
            if f is None:
                f = h5py.File(file.path, "r")
                self.opened.append(f)
            hdf5 = _HDF5Column(f[column.name], column, self._add)
            if mapping is None:
                found.append(hdf5.block)
            else:
                whole = _mapped(file, 0, "u1", (file.identity[3],))
                found.append(_ChunkMappedColumn(whole, mapping, hdf5, column, self._add).block)
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


class _MappedColumn:
    """A dataset read through a memory map: a block is a view, and each batch copies its rows out (the read
    itself), which costs what the same loop over ``np.memmap`` costs."""

    def __init__(self, rows: np.ndarray, column: _Column, count: Callable[[int, float], None]) -> None:
        self.rows, self.dtype, self.count = rows, column.dtype, count

    def block(self, lo: int, hi: int, perm: np.ndarray | None) -> Rows:
        return self._rows(self.rows[lo:hi], perm)

    def _rows(self, rows: np.ndarray, perm: np.ndarray | None) -> Rows:
        if perm is not None:
            _will_need(self.rows, rows)
        return lambda a, b: self._copy(rows, a, b, perm)

    def _copy(self, rows: np.ndarray, a: int, b: int, perm: np.ndarray | None) -> np.ndarray:
        t0 = time.perf_counter()
        if perm is None:
            out = np.array(rows[a:b], dtype=self.dtype)  # the byte order made native, as torch needs
        else:
            out = np.take(rows, perm[a:b], axis=0).astype(self.dtype, copy=False)
        self.count(out.nbytes, time.perf_counter() - t0)
        return out


class _ChunkMappedColumn(_MappedColumn):
    """A chunked dataset without filters: each chunk holds its rows raw, so a block whose chunks lie back to back
    in the file is a view of the file's map. Blocks whose chunks do not (or are unwritten) go to HDF5."""

    def __init__(
        self, whole: np.ndarray, mapping: _Mapping, hdf5: _HDF5Column, column: _Column,
        count: Callable[[int, float], None],
    ) -> None:  # fmt: skip
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


class _HDF5Column:
    """A chunked (maybe compressed) or unwritten dataset, read by HDF5 one hyperslab per block; the block's
    batches are views of it."""

    def __init__(self, d: h5py.Dataset, column: _Column, count: Callable[[int, float], None]) -> None:
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


class HDF5Reader(torch.utils.data.IterableDataset):
    """Batches of rows from datasets ``names`` (same length in each file; rows of ``files`` concatenated) for
    rank ``rank`` of ``world_size`` (default: :func:`hpcx.runtime.rankenv.detect`).

    Each item is a batch: one tensor per name (a tuple), or one tensor when ``names`` is a string. ``seed`` is
    the run's root seed, the same on every rank: the ranks split one shuffled stream between them. Iterate with
    :meth:`loader`, which keeps :attr:`epoch` and :attr:`position` (the next batch) up to date; iterating the
    dataset itself, or a DataLoader over it, yields the rest of the current epoch without counting.
    ``block_rows`` overrides the rows per block (see :func:`default_block_rows`; chunk multiples read best).
    Raises UsageError for missing files or datasets, datasets of different lengths or row shapes, and a batch
    larger than a rank's share of the rows.
    """

    def __init__(
        self,
        files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        names: str | Sequence[str],
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        block_rows: int | None = None,
    ) -> None:
        super().__init__()
        self.paths = (
            [os.fspath(files)] if isinstance(files, (str, os.PathLike)) else [os.fspath(p) for p in files]
        )
        self.single = isinstance(names, str)
        self.names = [names] if isinstance(names, str) else list(names)
        if not self.paths or not self.names:
            raise UsageError("the reader needs at least one file and one dataset name")
        _check_int("batch_size", batch_size, 1)
        _check_int("seed", seed, 0)
        if block_rows is not None:
            _check_int("block_rows", block_rows, 1)
        if rank is None or world_size is None:
            env = detect()
            rank = env.rank if rank is None else rank
            world_size = env.size if world_size is None else world_size
        _check_int("world_size", world_size, 1)
        _check_int("rank", rank, 0)
        if rank >= world_size:
            raise UsageError(f"rank {rank} is not below world_size {world_size}")
        self.batch_size, self.shuffle, self.seed = batch_size, bool(shuffle), seed
        self.rank, self.world_size = rank, world_size
        self.columns, self.files, self.blocks = self._inspect(block_rows)
        self.rows = sum(hi - lo for _, lo, hi in self.blocks)
        self.batches_per_epoch = self.rows // world_size // batch_size
        if self.batches_per_epoch == 0:
            raise UsageError(
                f"batch_size {batch_size} is larger than a rank's share of the rows ({self.rows} rows over "
                f"{world_size} ranks: {self.rows // world_size} each)",
                hint="use a smaller batch, fewer ranks or more data",
            )
        self.epoch, self.position = 0, 0

    def _inspect(
        self, block_rows: int | None
    ) -> tuple[list[_Column], list[_File], list[tuple[int, int, int]]]:
        """Every file's datasets checked against the first file's; blocks as (file index, start, stop)."""
        columns: list[_Column] = []
        files: list[_File] = []
        blocks: list[tuple[int, int, int]] = []
        for index, path in enumerate(self.paths):
            with _open(path) as f:
                dsets = _datasets(f, path, self.names)
                found = _columns(dsets, path)
                if columns and found != columns:
                    raise UsageError(
                        f"datasets in {path} differ from those in {self.paths[0]}: {found} vs {columns}",
                        hint="every file needs the same dtypes and row shapes",
                    )
                columns, rows = found, dsets[0].shape[0]
                files.append(_File(path, rows, _identity(path), tuple(_map_of(f, d) for d in dsets)))
                step = block_rows or default_block_rows(dsets, self.batch_size)
            blocks += [(index, lo, min(lo + step, rows)) for lo in range(0, rows, step)]
        return columns, files, blocks

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return self.batches_per_epoch

    def _plan(self, epoch: int) -> _EpochPlan:
        """This rank's batches of ``epoch``: blocks in shuffled order (or file order), the rank's slice of rows."""
        sizes = np.array([hi - lo for _, lo, hi in self.blocks], dtype=np.int64)
        order = np.arange(len(sizes))
        if self.shuffle:
            rng = np.random.default_rng(derive_seed(self.seed, "reader", epoch, "blocks"))
            order = rng.permutation(order)
        first_row = self.rank * self.batches_per_epoch * self.batch_size
        return _EpochPlan(sizes, order, first_row, self.batch_size, self.batches_per_epoch)

    def __iter__(self) -> Iterator[Batch]:
        """The rest of the current epoch from :attr:`position`; in a DataLoader worker, only its share."""
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self._read(self.epoch, range(self.position + worker, self.batches_per_epoch, workers))

    def _read(self, epoch: int, indices: range) -> Iterator[Batch]:
        cache = _BlockCache(self, self._plan(epoch), epoch)
        try:
            for i in indices:
                yield cache.batch(i)
        finally:
            cache.close()
            metrics.flush()  # DataLoader workers end without atexit: write their totals now

    def loader(
        self,
        num_workers: int = 0,
        *,
        multiprocessing_context: Any = None,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        worker_init_fn: Any = None,
        timeout_s: float = 0,
    ) -> ReaderLoader:
        """An iterable over the rest of the current epoch through a DataLoader with ``num_workers`` workers
        (``batch_size=None``: the reader's items are whole batches), counting the batches the loop takes."""
        kwargs = {"num_workers": num_workers, "multiprocessing_context": multiprocessing_context,
                  "pin_memory": pin_memory, "prefetch_factor": prefetch_factor,
                  "worker_init_fn": worker_init_fn, "timeout": timeout_s}  # fmt: skip
        return ReaderLoader(self, kwargs)

    def state_dict(self) -> dict[str, Any]:
        """The next batch to read (epoch, position) and what must not change for it to mean the same batch.

        Plain ints, bools and strings: ``torch.load(weights_only=True)`` reads it back.
        """
        return {"epoch": self.epoch, "position": self.position, **self._layout()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (what :meth:`state_dict` returned). Raises UsageError when it was taken with
        other files, batch size, seed, shuffle, blocks, rank or world size: its position would mean other rows."""
        layout = self._layout()
        changed = {k: (state.get(k), v) for k, v in layout.items() if state.get(k) != v}
        if changed:
            detail = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise UsageError(
                f"the reader state was saved for a different reader ({detail})",
                hint="resume with the same files, batch size, seed, shuffle, block rows and ranks",
            )
        epoch, position = state.get("epoch"), state.get("position")
        _check_int("state['epoch']", epoch, 0)
        _check_int("state['position']", position, 0)
        if position > self.batches_per_epoch:
            raise UsageError(f"position {position} is beyond the epoch's {self.batches_per_epoch} batches")
        self.epoch, self.position = epoch, position - 1
        self.advance()  # a state taken after an epoch's last batch continues with the next epoch

    def _layout(self) -> dict[str, Any]:
        return {"rows": self.rows, "blocks": len(self.blocks), "block_sizes": _digest(self.blocks),
                "batch_size": self.batch_size, "batches_per_epoch": self.batches_per_epoch,
                "seed": self.seed, "shuffle": self.shuffle, "rank": self.rank,
                "world_size": self.world_size}  # fmt: skip

    def advance(self) -> None:
        """Count one batch taken by the loop; after the epoch's last, the next epoch begins at batch 0."""
        self.position += 1
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0


class ReaderLoader:
    """What :meth:`HDF5Reader.loader` returns: each iteration reads the rest of the reader's current epoch.

    A new DataLoader per iteration, so its workers start from the reader's state at that moment (persistent
    workers would keep an old one). Its generator is seeded from (seed, rank, epoch, position): creating it
    draws nothing from torch's global generator, which would change the training's random stream on resume.
    """

    def __init__(self, reader: HDF5Reader, dataloader_kwargs: dict[str, Any]) -> None:
        self.reader = reader
        self.dataloader_kwargs = dataloader_kwargs

    def __iter__(self) -> Iterator[Batch]:
        reader, kwargs = self.reader, self.dataloader_kwargs
        batches: Iterator[Batch] = iter(reader)  # what a DataLoader without workers does, less ~10 us a batch
        if kwargs["num_workers"] > 0 or kwargs["pin_memory"]:
            generator = torch.Generator()
            generator.manual_seed(
                derive_seed(reader.seed, "loader", reader.rank, reader.epoch, reader.position)
            )
            batches = iter(
                torch.utils.data.DataLoader(reader, batch_size=None, generator=generator, **kwargs)
            )
        for batch in batches:
            reader.advance()  # before the loop body runs: a checkpoint taken there counts this batch as read
            yield batch


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, not {value!r}")


def _digest(blocks: list[tuple[int, int, int]]) -> str:
    """A short fingerprint of the block layout, so a resume over other files or block sizes is caught."""
    text = ";".join(f"{f},{lo},{hi}" for f, lo, hi in blocks)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
