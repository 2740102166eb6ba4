"""A small model trained with DDP on HDF5 data: checkpointed, preemptible, and exactly resumable.

    hpcx submit mpi --nodes 2 --ntasks-per-node 1 -- python examples/train_ddp.py --steps 60
    mpirun -n 2 python examples/train_ddp.py --out /tmp/ddp        # without Slurm or hpcx

Every rank joins MPI and torch.distributed (gloo on CPUs, NCCL on GPUs), writes its slab of a synthetic
dataset into one shared HDF5 file (mpio driver) the first time, then trains on its own shard. It checkpoints
every --ckpt-every steps and whenever the job is asked to stop (preemption warning or time limit), requeues
itself, and on restart resumes from the newest good checkpoint: model, optimizer, LR schedule, every rank's RNG
state and the position in the epoch. At the end rank 0 writes the sha256 of the final model state to
final_state.sha256, so an interrupted run can be compared with an uninterrupted one bit for bit.

Fault hooks for the tests: --fail-at STEP --fail-rank R (rank R raises), --die-in-save STEP --fail-rank R
(rank R is killed with SIGKILL while its checkpoint file for STEP is being written), --step-sleep S.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from hpcx import runtime
from hpcx.runtime import preempt, seeds
from hpcx.runtime.checkpoint import Checkpointer
from hpcx.runtime.hdf5 import open_shared

FEATURES = 16


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("HPCX_RUN_DIR", "."), help="where data, checkpoints go")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=32, help="per rank")
    p.add_argument("--rows", type=int, default=2048, help="dataset rows in all")
    p.add_argument("--seed", type=int, default=1234, help="the run's root seed")
    p.add_argument("--ckpt-every", type=int, default=10)
    p.add_argument("--step-sleep", type=float, default=0.0, help="seconds of pretend work per step")
    p.add_argument("--check-every", type=int, default=1, help="agree on stopping every N steps")
    p.add_argument("--fail-at", type=int, default=-1)
    p.add_argument("--die-in-save", type=int, default=-1)
    p.add_argument("--fail-rank", type=int, default=1)
    return p.parse_args()


def make_data(path: Path, rows: int, seed: int, ctx: runtime.Context) -> None:
    """The synthetic dataset, written once, collectively: y = x . w + noise, each rank its slab of rows."""
    if ctx.comm.bcast(path.exists() if ctx.rank == 0 else None, root=0):
        return
    lo, hi = rows * ctx.rank // ctx.size, rows * (ctx.rank + 1) // ctx.size
    rng = np.random.default_rng([seed, ctx.rank])
    w = np.random.default_rng(seed).normal(size=FEATURES)
    x = rng.normal(size=(hi - lo, FEATURES))
    y = x @ w + 0.1 * rng.normal(size=hi - lo)
    tmp = path.with_suffix(".tmp.h5")
    with open_shared(tmp, "w", ctx.comm) as f:
        dx = f.create_dataset("x", (rows, FEATURES), dtype="f4")
        dy = f.create_dataset("y", (rows,), dtype="f4")
        with dx.collective:
            dx[lo:hi] = x
        with dy.collective:
            dy[lo:hi] = y
    ctx.comm.Barrier()
    if ctx.rank == 0:
        os.replace(tmp, path)  # readers never see a half-written dataset
    ctx.comm.Barrier()


def load_shard(path: Path, ctx: runtime.Context):
    """This rank's rows (every size-th row from its rank), read in the main process (no MPI in workers)."""
    import h5py
    import torch

    with h5py.File(path, "r") as f:
        x, y = f["x"][ctx.rank :: ctx.size], f["y"][ctx.rank :: ctx.size]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


def batch_indices(n_rows: int, batch: int, epoch: int, seed: int):
    """The epoch's batches: a permutation that depends only on (seed, epoch), so a resumed run sees the same."""
    import torch

    g = torch.Generator().manual_seed(seeds.derive_seed(seed, "epoch", epoch))
    order = torch.randperm(n_rows, generator=g)
    return [order[i : i + batch] for i in range(0, n_rows - batch + 1, batch)]


def model_sha256(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main() -> int:
    args = parse()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stop = preempt.install()
    with runtime.session(torch_backend="auto") as ctx:
        import torch
        from torch.nn.parallel import DistributedDataParallel as DDP

        info = seeds.seed_everything(args.seed, ctx.rank, deterministic=True)
        seeds.record(out, info)
        device = torch.device("cuda", torch.cuda.current_device()) if ctx.torch_backend == "nccl" else None
        data = out / "data.h5"
        make_data(data, args.rows, args.seed, ctx)
        x, y = load_shard(data, ctx)
        x, y = x.to(device), y.to(device)

        net = torch.nn.Sequential(torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)).to(
            device
        )
        model = DDP(net)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)
        ckpt = Checkpointer(out / "checkpoints", ctx, keep=3)

        step, epoch, position = 0, 0, 0
        loaded = ckpt.load()
        if loaded is not None:
            net.load_state_dict(loaded.state["model"])
            opt.load_state_dict(loaded.state["optimizer"])
            sched.load_state_dict(loaded.state["scheduler"])
            step, epoch, position = loaded.step, loaded.state["epoch"], loaded.state["position"]
            if ctx.rank == 0:
                print(f"resumed at step {step} (epoch {epoch}, batch {position})", flush=True)

        def state() -> dict:
            return {"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "epoch": epoch, "position": position}  # fmt: skip

        batches = batch_indices(len(x), args.batch, epoch, args.seed)
        while step < args.steps:
            if position >= len(batches):
                epoch, position = epoch + 1, 0
                batches = batch_indices(len(x), args.batch, epoch, args.seed)
            idx = batches[position]
            loss = torch.nn.functional.mse_loss(model(x[idx]).squeeze(-1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step, position = step + 1, position + 1
            runtime.log(step, loss=loss.item(), lr=sched.get_last_lr()[0])
            time.sleep(args.step_sleep)
            if step == args.fail_at and ctx.rank == args.fail_rank:
                raise RuntimeError(f"injected failure at step {step}")
            if step == args.die_in_save:
                ckpt.save(
                    step, state(), background=True
                )  # every rank starts writing (save is collective) ...
                if ctx.rank == args.fail_rank:
                    os.kill(
                        os.getpid(), signal.SIGKILL
                    )  # ... and one rank dies while its file is half written
            if step % args.ckpt_every == 0 or step == args.steps:
                ckpt.save(step, state())
            if preempt.should_stop(stop, ctx.comm, step=step, every=args.check_every):
                ckpt.save(step, state())
                if ctx.rank == 0:
                    print(f"stopping at step {step}: checkpoint saved", flush=True)
                if preempt.requeue(ctx.comm):
                    return 0
                return 3
        if ctx.rank == 0:
            sha = model_sha256(net)
            (out / "final_state.sha256").write_text(sha + "\n")
            print(f"done: {step} steps, final loss {loss.item():.4g}, final state sha256 {sha}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
