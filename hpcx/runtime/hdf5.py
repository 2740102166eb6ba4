"""Parallel HDF5: one shared file opened by every rank with h5py's mpio driver."""

from __future__ import annotations

import os
from typing import Any

from hpcx.errors import RuntimeFailure


def open_shared(path: str | os.PathLike[str], mode: str, comm: Any) -> Any:
    """Open ``path`` on every rank of ``comm`` with the mpio driver (a collective call).

    Raises RuntimeFailure with the fix when h5py was built without MPI.
    """
    try:
        import h5py
    except ImportError as exc:
        raise RuntimeFailure("h5py is not installed", hint="pip install 'hpcx[runtime]'") from exc
    if not h5py.get_config().mpi:
        raise RuntimeFailure(
            f"h5py {h5py.__version__} was built without MPI, so {os.fspath(path)!r} cannot be shared by ranks",
            hint="rebuild it: CC=mpicc HDF5_MPI=ON pip install --no-build-isolation --no-binary=h5py h5py",
        )
    return h5py.File(path, mode, driver="mpio", comm=comm)
