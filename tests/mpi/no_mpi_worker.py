"""Run by each of N plain processes that a Slurm step (or a test) started without MPI: hpcx.runtime brings up
torch.distributed alone, and the comm it hands out serves checkpoints, preemption and the HDF5 writer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    out = Path(sys.argv[1])
    import torch
    import torch.distributed as dist

    from hpcx import runtime
    from hpcx.io import hdf5
    from hpcx.runtime import preempt
    from hpcx.runtime.checkpoint import Checkpointer

    stop = preempt.install()
    with runtime.session(torch_backend="gloo", timeout_s=60) as ctx:
        t = torch.tensor([float(ctx.rank + 1)])
        dist.all_reduce(t)
        gathered = ctx.comm.allgather(ctx.rank)
        token = ctx.comm.bcast("from-0" if ctx.rank == 0 else None)
        ckpt = Checkpointer(out / "checkpoints", ctx, keep=2)
        ckpt.save(1, {"w": torch.full((3,), float(ctx.rank))})
        loaded = ckpt.load()
        with hdf5.create(out / "data.h5", ctx.comm) as f:
            f.write("x", np.full((ctx.rank + 1, 2), ctx.rank, dtype="i4"))
            layout = f.layout
        stopping = preempt.should_stop(stop, ctx.comm)
        print(
            json.dumps(
                {
                    "rank": ctx.rank,
                    "size": ctx.size,
                    "sum": t.item(),
                    "gathered": gathered,
                    "token": token,
                    "mpi": type(ctx.comm).__name__,
                    "addr": ctx.master_addr,
                    "port": ctx.master_port,
                    "loaded_step": loaded.step if loaded else None,
                    "layout": layout,
                    "stop": stopping,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
