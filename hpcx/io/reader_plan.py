"""The reader's index arithmetic: rows cut into blocks, an epoch's block order and each block's row shuffle
(from the run's seed), a rank's contiguous slice of the epoch's stream, and the blocks each batch covers. Pure:
numpy and :func:`hpcx.runtime.seeds.derive_seed`, no files."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from hpcx.runtime.seeds import derive_seed

# Large enough that a block's fixed costs (its shuffle's generator, chunk look-ups, one HDF5 call) are small
# beside its rows; small enough to leave many blocks to shuffle.
TARGET_BLOCK_BYTES = 4 << 20
MAX_LCM_FACTOR = 8  # datasets chunked 64 and 1000 rows: an lcm of 8000 rows would be too coarse to shuffle
Block = tuple[int, int, int]  # (file index, first row, row after the last) in that file


def cut_blocks(index: int, rows: int, step: int) -> list[Block]:
    """File ``index``'s ``rows`` cut into blocks of ``step`` rows (the last may be shorter)."""
    return [(index, lo, min(lo + step, rows)) for lo in range(0, rows, step)]


def plan_epoch(
    blocks: Sequence[Block], *, shuffle: bool, seed: int, epoch: int, rank: int, batch_size: int, batches: int
) -> EpochPlan:
    """Rank ``rank``'s batches of ``epoch``: blocks in shuffled order (or file order), the rank's slice of rows."""
    sizes = np.array([hi - lo for _, lo, hi in blocks], dtype=np.int64)
    order = np.arange(len(sizes))
    if shuffle:
        rng = np.random.default_rng(derive_seed(seed, "reader", epoch, "blocks"))
        order = rng.permutation(order)
    first_row = rank * batches * batch_size
    return EpochPlan(sizes, order, first_row, batch_size, batches)


def block_permutation(seed: int, epoch: int, block: int, rows: int) -> np.ndarray:
    """The order of a block's ``rows`` in ``epoch`` (the shuffle inside the block)."""
    rng = np.random.default_rng(derive_seed(seed, "reader", epoch, "block", block))
    return rng.permutation(rows)


def digest(blocks: Sequence[Block]) -> str:
    """A short fingerprint of the block layout, so a resume over other files or block sizes is caught."""
    text = ";".join(f"{f},{lo},{hi}" for f, lo, hi in blocks)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_block_rows(dsets: Sequence[Any], batch_size: int) -> int:
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


def _row_bytes(d: Any) -> int:
    return d.dtype.itemsize * math.prod(d.shape[1:])


def _common_rows(rows: list[int]) -> int | None:
    """The least common multiple of ``rows`` (1 for none), or None when it is much larger than any of them."""
    common = math.lcm(*rows) if rows else 1
    return common if not rows or common <= MAX_LCM_FACTOR * max(rows) else None


class EpochPlan:
    """Where one rank's batches of one epoch lie: the epoch's block order and each batch's stream rows."""

    def __init__(self, sizes: np.ndarray, order: np.ndarray, first_row: int, batch_size: int, batches: int):
        ends: np.ndarray = np.cumsum(sizes[order])  # stream row where each block (in epoch order) ends
        starts: np.ndarray = first_row + batch_size * np.arange(batches)
        # Each batch's first and last block. numpy's stubs give searchsorted of an array the scalar overload's
        # type (numpy issue 27032); it returns an array here.
        first = cast(np.ndarray, np.searchsorted(ends, starts, side="right"))
        last = cast(np.ndarray, np.searchsorted(ends, starts + batch_size - 1, side="right"))
        self.first: list[int] = first.tolist()
        self.last: list[int] = last.tolist()
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
