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

The pieces live beside this module: ``reader_plan`` (the index arithmetic: blocks, shuffles, each rank's slice,
each batch's pieces), ``reader_files`` (what the files hold, and their memory maps) and ``reader_blocks``
(reading blocks and cutting batches out of them, in the process that iterates).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.utils.data

from hpcx.errors import UsageError
from hpcx.io.reader_blocks import Batch, BlockCache
from hpcx.io.reader_files import Column, DataFile, checked_datasets, columns_of, identity, map_of, open_file
from hpcx.io.reader_plan import (
    MAX_LCM_FACTOR,
    TARGET_BLOCK_BYTES,
    Block,
    EpochPlan,
    cut_blocks,
    default_block_rows,
    digest,
    plan_epoch,
)
from hpcx.profiling import iometrics as metrics
from hpcx.runtime.rankenv import detect
from hpcx.runtime.seeds import derive_seed

__all__ = [
    "MAX_LCM_FACTOR",
    "TARGET_BLOCK_BYTES",
    "Batch",
    "HDF5Reader",
    "ReaderLoader",
    "default_block_rows",
]


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
        self.paths, self.names, self.single = _inputs(files, names)
        _check_int("batch_size", batch_size, 1)
        _check_int("seed", seed, 0)
        if block_rows is not None:
            _check_int("block_rows", block_rows, 1)
        self.rank, self.world_size = _place(rank, world_size)
        self.batch_size, self.shuffle, self.seed = batch_size, bool(shuffle), seed
        self.columns, self.files, self.blocks = self._inspect(block_rows)
        self.rows = sum(hi - lo for _, lo, hi in self.blocks)
        self.batches_per_epoch = _batches_per_epoch(self.rows, self.world_size, batch_size)
        self.epoch, self.position = 0, 0

    def _inspect(self, block_rows: int | None) -> tuple[list[Column], list[DataFile], list[Block]]:
        """Every file's datasets checked against the first file's; blocks as (file index, start, stop)."""
        columns: list[Column] = []
        files: list[DataFile] = []
        blocks: list[Block] = []
        for index, path in enumerate(self.paths):
            with open_file(path) as f:
                dsets = checked_datasets(f, path, self.names)
                found = columns_of(dsets, path)
                if columns and found != columns:
                    raise UsageError(
                        f"datasets in {path} differ from those in {self.paths[0]}: {found} vs {columns}",
                        hint="every file needs the same dtypes and row shapes",
                    )
                columns, rows = found, dsets[0].shape[0]
                files.append(DataFile(path, rows, identity(path), tuple(map_of(f, d) for d in dsets)))
                step = block_rows or default_block_rows(dsets, self.batch_size)
            blocks += cut_blocks(index, rows, step)
        return columns, files, blocks

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return self.batches_per_epoch

    def _plan(self, epoch: int) -> EpochPlan:
        """This rank's batches of ``epoch``: blocks in shuffled order (or file order), the rank's slice of rows."""
        return plan_epoch(
            self.blocks,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=epoch,
            rank=self.rank,
            batch_size=self.batch_size,
            batches=self.batches_per_epoch,
        )

    def __iter__(self) -> Iterator[Batch]:
        """The rest of the current epoch from :attr:`position`; in a DataLoader worker, only its share."""
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self._read(self.epoch, range(self.position + worker, self.batches_per_epoch, workers))

    def _read(self, epoch: int, indices: range) -> Iterator[Batch]:
        cache = BlockCache(self, self._plan(epoch), epoch)
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
        kwargs = {
            "num_workers": num_workers,
            "multiprocessing_context": multiprocessing_context,
            "pin_memory": pin_memory,
            "prefetch_factor": prefetch_factor,
            "worker_init_fn": worker_init_fn,
            "timeout": timeout_s,
        }
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
        epoch = _check_int("state['epoch']", state.get("epoch"), 0)
        position = _check_int("state['position']", state.get("position"), 0)
        if position > self.batches_per_epoch:
            raise UsageError(f"position {position} is beyond the epoch's {self.batches_per_epoch} batches")
        self.epoch, self.position = epoch, position - 1
        self.advance()  # a state taken after an epoch's last batch continues with the next epoch

    def _layout(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "blocks": len(self.blocks),
            "block_sizes": digest(self.blocks),
            "batch_size": self.batch_size,
            "batches_per_epoch": self.batches_per_epoch,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "rank": self.rank,
            "world_size": self.world_size,
        }

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


def _check_int(name: str, value: Any, minimum: int) -> int:
    """``value``, which must be an int (not a bool) of at least ``minimum``: else a UsageError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


def _place(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``rank`` of ``world_size``, each defaulting to the launcher's (:func:`hpcx.runtime.rankenv.detect`)."""
    if rank is None or world_size is None:
        env = detect()
        rank = env.rank if rank is None else rank
        world_size = env.size if world_size is None else world_size
    _check_int("world_size", world_size, 1)
    _check_int("rank", rank, 0)
    if rank >= world_size:
        raise UsageError(f"rank {rank} is not below world_size {world_size}")
    return rank, world_size


def _inputs(
    files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], names: str | Sequence[str]
) -> tuple[list[str], list[str], bool]:
    """The files' paths, the dataset names, and whether one name (not a list) was given."""
    paths = [os.fspath(files)] if isinstance(files, (str, os.PathLike)) else [os.fspath(p) for p in files]
    listed = [names] if isinstance(names, str) else list(names)
    if not paths or not listed:
        raise UsageError("the reader needs at least one file and one dataset name")
    return paths, listed, isinstance(names, str)


def _batches_per_epoch(rows: int, world_size: int, batch_size: int) -> int:
    """Whole batches in each rank's equal share of the rows; refused when there is not one."""
    batches = rows // world_size // batch_size
    if batches == 0:
        raise UsageError(
            f"batch_size {batch_size} is larger than a rank's share of the rows ({rows} rows over "
            f"{world_size} ranks: {rows // world_size} each)",
            hint="use a smaller batch, fewer ranks or more data",
        )
    return batches
