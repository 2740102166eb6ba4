"""Parallel HDF5 for the runtime: kept for code written against ``hpcx.runtime.hdf5``; the implementation is
``hpcx.io.hdf5`` (``create`` for writing a shared file with its fallback, ``open_shared`` for mpio opens)."""

from hpcx.io.hdf5 import create, open_shared

__all__ = ["create", "open_shared"]
