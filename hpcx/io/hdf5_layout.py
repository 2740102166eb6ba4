"""What the ranks agree on before a byte is written: the layout of the file (and why), a name for this attempt's
temporary files, and where each rank's rows go in a dataset. Pure, but for the collectives of
:class:`hpcx.runtime.collective.Collective` and h5py's build configuration (imported when asked)."""

from __future__ import annotations

import os
import uuid
from typing import Any

from hpcx.errors import RuntimeFailure, UsageError
from hpcx.runtime.collective import Collective

LAYOUT_ENV = "HPCX_HDF5_LAYOUT"
LAYOUTS = ("auto", "mpio", "per-rank")
Shape = tuple[int, ...]


def token(ranks: Collective) -> str:
    """A name shared by every rank of this attempt, distinct from any other attempt's."""
    if ranks.connected:
        return ranks.bcast(uuid.uuid4().hex[:12] if ranks.rank == 0 else None)
    if ranks.size == 1:
        return f"p{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env = os.environ
    parts = [
        env.get("SLURM_JOB_ID", "nojob"),
        env.get("SLURM_STEP_ID", "0"),
        env.get("SLURM_RESTART_COUNT", "0"),
    ]
    return "j" + ".".join(parts)


def choose_layout(requested: str, ranks: Collective) -> tuple[str, str]:
    """The layout to write ("mpio", "per-rank" or "serial") and why, for ``requested`` (one of LAYOUTS)."""
    import h5py

    if requested not in LAYOUTS:
        raise UsageError(
            f"HDF5 layout {requested!r} is not one of {', '.join(LAYOUTS)}",
            hint=f"pass layout= or set {LAYOUT_ENV} to one of them",
        )
    has_mpi = bool(h5py.get_config().mpi)
    if requested == "per-rank":
        return "per-rank", "asked for"
    if not ranks.is_mpi:
        return _without_mpi(requested, ranks)
    if not has_mpi:
        if requested == "mpio":
            raise RuntimeFailure(
                f"h5py {h5py.__version__} was built without MPI, so layout 'mpio' is impossible",
                hint="rebuild it: CC=mpicc HDF5_MPI=ON pip install --no-build-isolation --no-binary=h5py h5py, "
                "or use layout='auto' for the per-rank fallback",
            )
        return "per-rank", f"h5py {h5py.__version__} was built without MPI"
    return "mpio", "h5py with MPI and a communicator"


def _without_mpi(requested: str, ranks: Collective) -> tuple[str, str]:
    """The layout when the ranks have no MPI communicator: torch.distributed's only, or none at all."""
    if ranks.connected:
        if requested == "mpio":
            raise UsageError(
                "layout 'mpio' needs an MPI communicator, and this job runs without MPI",
                hint="install mpi4py and launch with srun --mpi=pmix or mpirun, or use layout='auto'",
            )
        return "per-rank", "no MPI in this job (torch.distributed only)"
    if ranks.size == 1:
        return "serial", "one process, no communicator"
    if requested == "mpio":
        raise UsageError(
            f"layout 'mpio' needs an MPI communicator, and rank {ranks.rank} of {ranks.size} has none",
            hint="pass comm=MPI.COMM_WORLD (pip install 'hpcx[runtime]' for mpi4py), or use layout='auto'",
        )
    return "per-rank", f"no MPI communicator across {ranks.size} ranks"


def placement(name: str, meta: list[Any], rank: int, distributed: bool) -> tuple[int, Shape]:
    """Where ``rank``'s rows go and the dataset's global shape, from every rank's ``meta`` (slab shape, dtype
    str, dtype descr, start, shape): the same checks on every rank, so all raise alike before any HDF5 call."""
    shapes = [m[0] for m in meta]
    if any(m[1:3] != meta[0][1:3] for m in meta):
        kinds = sorted({m[1] for m in meta})
        raise UsageError(
            f"dataset {name!r}: ranks pass different dtypes {kinds}", hint="pass dtype= on every rank"
        )
    if not distributed:
        if any(s != shapes[0] for s in shapes):
            raise UsageError(
                f"dataset {name!r}: distributed=False but ranks pass shapes {sorted(set(shapes))}",
                hint="every rank passes the same array, or drop distributed=False",
            )
        return 0, tuple(shapes[0])
    trailing = {s[1:] for s in shapes}
    if len(trailing) > 1:
        raise UsageError(
            f"dataset {name!r}: ranks' slabs differ beyond axis 0: {sorted(trailing)}",
            hint="split arrays by rows only",
        )
    starts = [m[3] for m in meta]
    if any(s is None for s in starts) != all(s is None for s in starts):
        raise UsageError(f"dataset {name!r}: some ranks pass start= and some do not", hint="pass it on all")
    if starts[0] is None:
        return _in_rank_order(name, meta, rank)
    return _at_starts(name, meta, rank)


def _in_rank_order(name: str, meta: list[Any], rank: int) -> tuple[int, Shape]:
    """No rank said where its rows go: the slabs follow each other in rank order."""
    shapes = [m[0] for m in meta]
    offsets = [0]
    for s in shapes[:-1]:
        offsets.append(offsets[-1] + s[0])
    gshape = (sum(s[0] for s in shapes), *shapes[0][1:])
    given = {m[4] for m in meta}
    if given != {None} and given != {gshape}:
        raise UsageError(f"dataset {name!r}: shape={sorted(given)} but the slabs add up to {gshape}")
    return offsets[rank], gshape


def _at_starts(name: str, meta: list[Any], rank: int) -> tuple[int, Shape]:
    """Every rank said where its rows go (``start``) in a dataset of global ``shape``: each slab must fit."""
    gshapes = {tuple(m[4]) if m[4] is not None else None for m in meta}
    if len(gshapes) != 1 or None in gshapes:
        raise UsageError(f"dataset {name!r}: start= needs the same shape= on every rank", hint="pass both")
    gshape: Shape = gshapes.pop()  # type: ignore[assignment]  # None was refused just above
    for r, (s, st) in enumerate((m[0], m[3]) for m in meta):
        if st < 0 or st + s[0] > gshape[0] or tuple(gshape[1:]) != tuple(s[1:]):
            raise UsageError(
                f"dataset {name!r}: rank {r}'s rows {st}..{st + s[0]} of shape {s} do not fit shape {gshape}",
                hint="start + len(slab) must be <= shape[0] and the trailing dims equal",
            )
    return meta[rank][3], gshape
