"""Data I/O for jobs: parallel HDF5 writing (``hpcx.io.hdf5``), the training reader (``hpcx.io.reader``),
file inspection (``hpcx.io.info``) and per-rank I/O accounting (``hpcx.profiling.iometrics``).

Importing this package imports nothing heavy: h5py, mpi4py, numpy and torch load inside the leaf modules.
"""
