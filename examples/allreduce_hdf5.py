"""The walking-skeleton job: every rank joins MPI and torch.distributed (gloo on CPUs, NCCL on GPUs),
checks two allreduces, and writes its slab of one shared HDF5 file collectively through hpcx.io (the mpio
driver, or one file per rank stitched into one where the filesystem cannot lock), so the report counts the
write.

    hpcx submit mpi --nodes 2 --ntasks-per-node 1 -- python examples/allreduce_hdf5.py
    mpirun -n 2 python examples/allreduce_hdf5.py --out /tmp/demo.h5      # without Slurm or hpcx
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import hpcx
from hpcx import runtime
from hpcx.io.hdf5 import create, open_shared


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = os.path.join(os.environ.get("HPCX_RUN_DIR", "."), "demo.h5")
    parser.add_argument("--out", default=default_out, help=f"HDF5 file to write (default {default_out})")
    parser.add_argument("--rows", type=int, default=1 << 16, help="rows of float64 per rank (default 65536)")
    parser.add_argument("--seconds", type=float, default=2.0, help="keep busy this long so samples accrue")
    args = parser.parse_args()

    with runtime.session(torch_backend="auto") as ctx:
        import torch
        import torch.distributed as dist

        # NCCL reduces GPU tensors only; gloo reduces CPU tensors.
        device = torch.device("cuda", torch.cuda.current_device()) if ctx.torch_backend == "nccl" else None
        expected = ctx.size * (ctx.size + 1) // 2
        mpi_sum = ctx.comm.allreduce(ctx.rank + 1)
        t = torch.tensor([float(ctx.rank + 1)], device=device)
        dist.all_reduce(t)
        if mpi_sum != expected or int(t.item()) != expected:
            raise RuntimeError(f"allreduce gave mpi={mpi_sum} torch={t.item()}, expected {expected}")

        # Busy work so the profile has samples: allreduces of a 4 MiB tensor for about --seconds. Every rank
        # must run the same number of collectives, so the ranks agree on stopping (MIN of their flags) each
        # round instead of each watching its own clock, which would leave one rank waiting forever.
        big = torch.ones(1 << 20, device=device)
        deadline = time.time() + args.seconds
        rounds = 0
        while True:
            keep_going = torch.tensor([float(time.time() < deadline)], device=device)
            dist.all_reduce(keep_going, op=dist.ReduceOp.MIN)
            if not keep_going.item():
                break
            with hpcx.region("allreduce"):  # regions are timestamps: the report slices them per rank
                dist.all_reduce(big)
            big.fill_(1.0)
            rounds += 1

        block = np.full((1, args.rows), ctx.rank, dtype="f8")  # this rank's row; rows go in rank order
        with hpcx.region("hdf5-write"), create(args.out, ctx.comm) as f:  # hpcx.io counts its bytes and time
            f.write("x", block)
            f.set_attrs(ranks=ctx.size)
        ctx.comm.Barrier()
        if ctx.rank == 0:
            with open_shared(args.out, "r", _self_comm()) as f:
                column = f["x"][:, 0]
            ok = list(column) == list(range(ctx.size))
            print(
                f"rank 0 of {ctx.size} on {ctx.node}: mpi allreduce={mpi_sum} torch allreduce={t.item():g} "
                f"backend={ctx.torch_backend} port={ctx.master_port} rounds={rounds} "
                f"hdf5={'ok' if ok else 'WRONG'} {args.out}",
                flush=True,
            )
            if not ok:
                raise RuntimeError(f"HDF5 read back {list(column)}")
    return 0


def _self_comm():
    from mpi4py import MPI

    return MPI.COMM_SELF


if __name__ == "__main__":
    sys.exit(main())
