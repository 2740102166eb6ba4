"""One timed write of N bytes of float64, run by benchmarks/hdf5_io.py (under mpirun for the MPI modes).

Modes: ``raw`` (one process: numpy tofile + fsync, the disk's sequential speed), ``hpcx`` (every rank writes
its slab through hpcx.io.hdf5, collective mpio, file fsynced and renamed), ``naive`` (h5py mpio with default
settings and independent writes, as most hand-rolled code does), ``gather`` (gather to rank 0, which writes
with serial h5py and fsyncs). Prints ``SECONDS <s>`` from rank 0: first barrier to the file being durable.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["raw", "hpcx", "naive", "gather"])
    p.add_argument("path")
    p.add_argument("--bytes", type=int, required=True)
    args = p.parse_args()
    cols = 128  # rows of 1 KiB
    rows_total = args.bytes // (cols * 8)
    if args.mode == "raw":
        data = np.random.default_rng(0).random((rows_total, cols))
        t0 = time.perf_counter()
        with open(args.path, "wb") as fh:
            data.tofile(fh)
            fh.flush()
            os.fsync(fh.fileno())
        print(f"SECONDS {time.perf_counter() - t0:.6f}")
        return 0
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    lo, hi = rows_total * comm.rank // comm.size, rows_total * (comm.rank + 1) // comm.size
    data = np.random.default_rng(comm.rank).random((hi - lo, cols))
    comm.Barrier()
    t0 = time.perf_counter()
    if args.mode == "hpcx":
        from hpcx.io import hdf5

        with hdf5.create(args.path, comm, layout="mpio") as f:
            f.write("x", data)
    elif args.mode == "naive":
        import h5py

        with h5py.File(args.path, "w", driver="mpio", comm=comm) as f:
            dset = f.create_dataset("x", (rows_total, cols), dtype="f8")
            dset[lo:hi] = data
        if comm.rank == 0:
            fsync(args.path)
    else:
        import h5py

        counts = comm.allgather(data.size)
        full = np.empty((rows_total, cols)) if comm.rank == 0 else None
        comm.Gatherv(data, (full, counts) if comm.rank == 0 else None, root=0)
        if comm.rank == 0:
            with h5py.File(args.path, "w") as f:
                f.create_dataset("x", data=full)
            fsync(args.path)
    comm.Barrier()
    if comm.rank == 0:
        print(f"SECONDS {time.perf_counter() - t0:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
