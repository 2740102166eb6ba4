"""Run by every rank (mpirun, srun, or plain processes with --no-mpi): write every supported dtype and shape
through hpcx.io.hdf5, then rank 0 reads the file back with plain serial h5py and compares every value.

Slabs are uneven and one rank's is empty; one dataset places rows explicitly in reverse rank order; one is
replicated. Exit 0 and "roundtrip ok" on rank 0 when every value matches; exit 1 with the mismatch otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

DTYPES = [
    "i1",
    "i2",
    "i4",
    "i8",
    "u1",
    "u2",
    "u4",
    "u8",
    "f2",
    "f4",
    "f8",
    "c8",
    "c16",
    "?",
    "S7",
    [("a", "i4"), ("b", "f8"), ("c", "S3")],
]
TRAILING = [(), (3,), (2, 2)]


def rows_of(rank: int, size: int) -> int:
    return 0 if size > 1 and rank == 1 else 1 + (rank * 7 + 3) % 5  # uneven, and rank 1 has an empty slab


def slab(dtype, trailing, rank: int, size: int) -> np.ndarray:
    dt = np.dtype(dtype)
    rng = np.random.default_rng([rank, len(dt.descr), dt.itemsize, len(trailing)])
    shape = (rows_of(rank, size), *trailing)
    if dt.names:
        out = np.zeros(shape, dtype=dt)
        out["a"] = rng.integers(-1000, 1000, size=shape)
        out["b"] = rng.normal(size=shape)
        out["c"] = rng.integers(0, 999, size=shape).astype("S3")
        return out
    if dt.kind == "S":
        return rng.integers(0, 10**6, size=shape).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    if dt.kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dt)
    return rng.normal(size=shape).astype(dt)


def name_of(i: int, trailing) -> str:
    return f"d{i:02d}_{'x'.join(map(str, trailing)) or 'v'}"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--layout", default=None)
    p.add_argument("--no-mpi", action="store_true", help="no communicator: ranks from the environment")
    args = p.parse_args()
    from hpcx.io import hdf5

    if args.no_mpi:
        from hpcx.runtime.rankenv import detect

        comm, rank, size = None, detect().rank, detect().size
    else:
        from mpi4py import MPI

        comm, rank, size = MPI.COMM_WORLD, MPI.COMM_WORLD.rank, MPI.COMM_WORLD.size
    with hdf5.create(args.out, comm, layout=args.layout) as f:
        layout, reason = f.layout, f.reason
        for i, dtype in enumerate(DTYPES):
            for trailing in TRAILING:
                f.write(name_of(i, trailing), slab(dtype, trailing, rank, size))
        # Explicit placement: ranks' rows in reverse rank order inside a dataset of the global shape.
        counts = [rows_of(r, size) for r in range(size)]
        start = sum(counts[rank + 1 :])
        f.write("placed", slab("f8", (4,), rank, size), start=start, shape=(sum(counts), 4))
        f.write("grp/replicated", np.arange(10, dtype="i4"), distributed=False)
        f.set_attrs(layout=layout, ranks=size)
        f.set_attrs("grp/replicated", units="counts")
    if rank != 0:
        return 0
    import h5py

    problems = []
    with h5py.File(args.out, "r") as f:
        for i, dtype in enumerate(DTYPES):
            for trailing in TRAILING:
                name = name_of(i, trailing)
                want = np.concatenate([slab(dtype, trailing, r, size) for r in range(size)])
                got = f[name][()]
                if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
                    problems.append(f"{name}: {got.dtype}{got.shape} != {want.dtype}{want.shape}")
        want = np.concatenate([slab("f8", (4,), r, size) for r in reversed(range(size))])
        if not np.array_equal(f["placed"][()], want):
            problems.append("placed: values differ")
        if (
            not np.array_equal(f["grp/replicated"][()], np.arange(10))
            or f["grp/replicated"].attrs["units"] != "counts"
        ):
            problems.append("grp/replicated differs")
        if f.attrs["layout"] != layout or int(f.attrs["ranks"]) != size:
            problems.append(f"root attrs {dict(f.attrs)}")
        virtual = f[name_of(0, ())].is_virtual
    print(json.dumps({"layout": layout, "reason": reason, "virtual": virtual, "problems": problems}))
    if problems:
        print("roundtrip FAILED", file=sys.stderr)
        return 1
    print(f"roundtrip ok: {len(DTYPES) * len(TRAILING) + 2} datasets, layout {layout}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
