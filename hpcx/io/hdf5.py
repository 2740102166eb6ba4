"""Parallel HDF5 writing: one shared file, written collectively, with a fallback that always works.

``create(path, comm)`` is collective over ``comm`` and returns a :class:`SharedFile` whose ``write(name, slab)``
takes each rank's slab of a rank-distributed array (rows along axis 0) in one collective call. Two layouts sit
behind that one API, and readers cannot tell them apart:

- ``mpio``: one file opened with h5py's mpio driver and tuned the way the NERSC and HDF Group guides ask
  (latest file format, no fill values, objects aligned to the filesystem's block or Lustre stripe, file locking
  off on network filesystems, Lustre striping set before create, collective transfers);
- ``per-rank``: each rank writes ``<name>.parts/<gen>/rank-NNNNN.h5`` with serial h5py and rank 0 stitches them
  into a virtual dataset at ``<name>`` (``<gen>``: one directory per write, so a new file replaces an old one
  atomically). Chosen when h5py was built without MPI, when there is no communicator, when the mpio open fails
  on this filesystem, or when asked for (``layout="per-rank"`` or ``HPCX_HDF5_LAYOUT=per-rank``).

One process with no communicator gets ``serial``: a plain h5py file with the same tuning.

Whatever the layout, the file appears at ``path`` only when it is complete: everything is written under a
temporary name and renamed into place by ``close()``. A write that fails (a full disk) raises on every rank
with the path, the size and the free space, and leaves no file at ``path``. The layout chosen and why are
recorded in the profile records (``hpcx.profiling.iometrics.event``) that ``hpcx report`` reads; bytes and seconds
written per rank go there too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hpcx.errors import RuntimeFailure, UsageError
from hpcx.io.hdf5_fs import NETWORK_FS, FsInfo, file_kwargs, fs_info, mpi_info
from hpcx.io.hdf5_layout import LAYOUT_ENV, LAYOUTS, choose_layout
from hpcx.io.hdf5_parts import PARTS_SUFFIX
from hpcx.io.hdf5_writer import MpioUnavailable, SharedFile
from hpcx.runtime.collective import Collective

__all__ = [
    "LAYOUTS",
    "LAYOUT_ENV",
    "NETWORK_FS",
    "PARTS_SUFFIX",
    "FsInfo",
    "SharedFile",
    "create",
    "file_kwargs",
    "fs_info",
    "open_shared",
]


def create(
    path: str | os.PathLike[str],
    comm: Any = None,
    *,
    layout: str | None = None,
    alignment: int | None = None,
    stripe_count: int | None = None,
    stripe_size: int | None = None,
) -> SharedFile:
    """Create ``path`` for writing by every rank of ``comm`` (collective); see the module docstring.

    ``layout``: "auto" (default; also ``$HPCX_HDF5_LAYOUT``), "mpio" or "per-rank". ``alignment`` overrides
    the filesystem's block/stripe size; ``stripe_count``/``stripe_size`` apply on Lustre (``lfs setstripe``)
    and are ignored elsewhere. The file appears at ``path`` only after a successful ``close()``.
    """
    _require_h5py()
    target = _target(path)
    ranks = Collective.of(comm)
    requested = layout or os.environ.get(LAYOUT_ENV) or "auto"
    chosen, reason = choose_layout(requested, ranks)
    fs = fs_info(target.parent)
    options = {"alignment": alignment, "stripe_count": stripe_count, "stripe_size": stripe_size}
    if chosen == "mpio":
        try:
            return SharedFile(target, ranks, "mpio", reason, fs, **options)
        except MpioUnavailable as exc:
            chosen, reason = "per-rank", _mpio_fallback(target, fs, requested, exc)
    return SharedFile(target, ranks, chosen, reason, fs, **options)


def _target(path: str | os.PathLike[str]) -> Path:
    target = Path(path).absolute()
    if not target.parent.is_dir():
        raise UsageError(
            f"cannot create {target}: {target.parent} is not a directory", hint="create it first"
        )
    return target


def _mpio_fallback(target: Path, fs: FsInfo, requested: str, exc: MpioUnavailable) -> str:
    """Why the per-rank layout replaces an mpio open that failed; raises when mpio was asked for by name."""
    if requested == "mpio":
        raise RuntimeFailure(
            f"the mpio driver cannot create {target} on this {fs.fs_type} filesystem: {exc}",
            hint="use layout='auto' or 'per-rank' to write one file per rank instead",
        ) from None
    return f"the mpio open failed on {fs.fs_type}: {exc}"


def _require_h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise RuntimeFailure("h5py is not installed", hint="pip install 'hpcx[runtime]'") from exc
    return h5py


def open_shared(path: str | os.PathLike[str], mode: str, comm: Any) -> Any:
    """Open an existing or new ``path`` on every rank of ``comm`` with the mpio driver, tuned as ``create``
    tunes (a collective call; for reading back, or appending to, a file written by :func:`create`).

    Raises RuntimeFailure with the fix when h5py was built without MPI.
    """
    h5py = _require_h5py()
    if not h5py.get_config().mpi:
        raise RuntimeFailure(
            f"h5py {h5py.__version__} was built without MPI, so {os.fspath(path)!r} cannot be shared by ranks",
            hint="rebuild it: CC=mpicc HDF5_MPI=ON pip install --no-build-isolation --no-binary=h5py h5py",
        )
    fs = fs_info(Path(path).absolute().parent)
    return h5py.File(path, mode, driver="mpio", comm=comm, info=mpi_info(fs), **file_kwargs(fs))
