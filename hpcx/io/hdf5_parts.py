"""The per-rank layout's parts: each rank writes ``<name>.parts/<gen>/rank-NNNNN.h5`` with serial h5py, and rank
0 stitches them into one file of virtual datasets at ``<name>``, replacing an old file atomically. h5py is
imported inside the functions that need it."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from hpcx.errors import RuntimeFailure
from hpcx.io.hdf5_fs import fsync_path, unlink

PARTS_SUFFIX = ".parts"
START_ATTR = "_hpcx_start"
SHAPE_ATTR = "_hpcx_global_shape"
DISTRIBUTED_ATTR = "_hpcx_distributed"
# One rank's dataset in its part: (rank, shape, dtype, start or None, global shape or None, distributed)
Piece = tuple[int, tuple[int, ...], Any, "int | None", "tuple[int, ...] | None", bool]


def part_path(directory: Path, rank: int, *, tmp: bool = False) -> Path:
    """A rank's part file, in a folder beside the user's data file."""
    return directory / (f"rank-{rank:05d}.h5" + (".tmp" if tmp else ""))  # not in a run directory


def wait_for_parts(path: Path, parts_tmp: Path, size: int, timeout_s: float | None = None) -> None:
    """Without MPI, rank 0 learns that the others are done from their renamed part files."""
    limit = timeout_s if timeout_s is not None else float(os.environ.get("HPCX_HDF5_PART_TIMEOUT_S", "600"))
    deadline = time.monotonic() + limit
    while True:
        missing = [r for r in range(size) if not part_path(parts_tmp, r).exists()]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeFailure(
                f"{path}: ranks {missing[:8]} did not finish their parts within {limit:g} s",
                hint="a rank failed (see its log), or raise HPCX_HDF5_PART_TIMEOUT_S",
            )
        time.sleep(0.2)


def stitch(path: Path, parts_tmp: Path, size: int, attrs: dict[str, dict[str, Any]]) -> None:
    """Rank 0: one virtual dataset per name over the ranks' parts, then both moved into place.

    Replacing a file is atomic: the parts go to a new generation directory, ``<name>.parts/<gen>/``, beside
    the old file's, and the new file is renamed over the old one only once it and its parts are complete and
    fsynced. A crash at any moment leaves either the old file, whole, with the parts it names, or the new one.
    Generations no longer named by the file at ``path`` are removed last."""
    final_parts = path.parent / (path.name + PARTS_SUFFIX)
    pieces = _pieces(parts_tmp, size)
    generation = uuid.uuid4().hex[:12]  # never the old file's: a fixed name would have to be emptied first
    tmp = path.parent / f".{path.name}.stitch-{generation}"
    replaced = False
    try:
        _write_virtual_file(tmp, pieces, attrs, f"{final_parts.name}/{generation}")
        final_parts.mkdir(exist_ok=True)
        os.replace(parts_tmp, final_parts / generation)
        fsync_path(final_parts)
        fsync_path(path.parent)
        os.replace(tmp, path)  # the one step that changes what a reader of ``path`` sees
        replaced = True
        fsync_path(path.parent)
    except BaseException:
        unlink(tmp)
        if not replaced:  # the old file, if any, still names its own parts: the new ones are nobody's
            shutil.rmtree(final_parts / generation, ignore_errors=True)
        raise
    remove_old_parts(final_parts, keep=generation)


def _pieces(parts_tmp: Path, size: int) -> dict[str, list[Piece]]:
    """Every dataset name in the ranks' parts, with each rank's piece of it."""
    import h5py

    pieces: dict[str, list[Piece]] = {}
    for rank in range(size):
        with h5py.File(part_path(parts_tmp, rank), "r") as part:
            for name, dset in _datasets(part):
                pieces.setdefault(name, []).append(_piece(rank, dset))
    return pieces


def _piece(rank: int, dset: Any) -> Piece:
    start, gshape = dset.attrs.get(START_ATTR), dset.attrs.get(SHAPE_ATTR)
    return (
        rank,
        dset.shape,
        dset.dtype,
        None if start is None else int(start),
        None if gshape is None else tuple(int(x) for x in gshape),
        bool(dset.attrs.get(DISTRIBUTED_ATTR, True)),
    )


def _write_virtual_file(
    tmp: Path, pieces: dict[str, list[Piece]], attrs: dict[str, dict[str, Any]], rel: str
) -> None:
    """The stitched file at ``tmp``, its virtual datasets pointing into ``rel`` (beside it), fsynced."""
    import h5py

    with h5py.File(tmp, "w", libver="latest") as out:
        for name, found in pieces.items():
            _virtual(out, name, found, rel)
        for obj, values in attrs.items():
            target = out[obj] if obj != "/" else out
            for key, value in values.items():
                target.attrs[key] = value
    fsync_path(tmp)


def remove_old_parts(final_parts: Path, keep: str) -> None:
    """Everything in ``<name>.parts/`` but the generation the file now names: the replaced file's parts (a
    file written before generations existed kept them at the top), and those of stitches that crashed."""
    for entry in final_parts.iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            unlink(entry)


def _virtual(out: Any, name: str, pieces: list[Any], rel: str) -> None:
    import h5py

    dtypes = {p[2] for p in pieces}
    trailing = {p[1][1:] for p in pieces}
    if len(dtypes) > 1 or len(trailing) > 1:
        raise RuntimeFailure(
            f"dataset {name!r}: the ranks' parts disagree: dtypes {dtypes}, trailing dims {trailing}"
        )
    if not pieces[0][5]:  # replicated: rank 0's copy is the dataset
        rank, shape, dtype = pieces[0][:3]
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(f"{rel}/rank-{rank:05d}.h5", name, shape=shape)
        out.create_virtual_dataset(name, layout)
        return
    explicit = pieces[0][3] is not None
    if explicit:
        gshape = pieces[0][4]
    else:
        gshape = (sum(p[1][0] for p in pieces), *pieces[0][1][1:])
    layout = h5py.VirtualLayout(shape=gshape, dtype=pieces[0][2])
    offset = 0
    for rank, shape, _dtype, start, _g, _d in sorted(pieces, key=lambda p: p[0]):
        lo = start if explicit else offset
        if shape[0]:
            layout[lo : lo + shape[0]] = h5py.VirtualSource(f"{rel}/rank-{rank:05d}.h5", name, shape=shape)
        offset += shape[0]
    out.create_virtual_dataset(name, layout, fillvalue=None)


def _datasets(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    import h5py

    found = []
    for key, obj in group.items():
        full = f"{prefix}/{key}" if prefix else key
        if isinstance(obj, h5py.Dataset):
            found.append((full, obj))
        elif isinstance(obj, h5py.Group):
            found.extend(_datasets(obj, full))
    return found
