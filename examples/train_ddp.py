"""A small model trained with DDP on HDF5 data: checkpointed, preemptible, and exactly resumable.

    hpcx submit mpi --nodes 2 --ntasks-per-node 1 -- python examples/train_ddp.py --steps 60
    mpirun -n 2 python examples/train_ddp.py --out /tmp/ddp        # without Slurm or hpcx

Every rank joins MPI and torch.distributed (gloo on CPUs, NCCL on GPUs), writes its slab of a synthetic
dataset into one shared HDF5 file (mpio driver) the first time, then trains on its share of each epoch, read
by hpcx.io.reader. It checkpoints every --ckpt-every steps and whenever the job is asked to stop: on a preemption
warning or near its time limit it requeues itself, on `hpcx stop` it ends there with exit status 0 (a new run
with the same --out goes on from that checkpoint); on restart it resumes from the newest good checkpoint: model,
optimizer, LR schedule, every rank's RNG state and its reader's position in the epoch. At the end rank 0 writes
the sha256 of the final model state to final_state.sha256, so an interrupted run can be compared with an
uninterrupted one bit for bit.

Fault hooks for the tests: --fail-at STEP --fail-rank R (rank R raises), --die-in-save STEP --fail-rank R
(rank R is killed with SIGKILL while its checkpoint file for STEP is being written), --step-sleep S.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hpcx import runtime
from hpcx.io.hdf5 import open_shared
from hpcx.io.reader import HDF5Reader
from hpcx.runtime import preempt, seeds
from hpcx.runtime.checkpoint import Checkpointer

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
    p.add_argument(
        "--torch-profile",
        action="store_true",
        help="also record the steps with torch.profiler; its all-reduce totals go to torch-profile-rank-N.json",
    )
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


def endless(reader: HDF5Reader):
    """This rank's batches, epoch after epoch, from the reader's position."""
    while True:
        yield from reader.loader()


def model_sha256(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def resume(ckpt, net, opt, sched, reader, rank: int) -> int:
    """The step to go on from: the last good checkpoint's (model, optimizer, schedule and this rank's reader
    position restored), or 0 on a first start."""
    loaded = ckpt.load()
    if loaded is None:
        return 0
    net.load_state_dict(loaded.state["model"])
    opt.load_state_dict(loaded.state["optimizer"])
    sched.load_state_dict(loaded.state["scheduler"])
    reader.load_state_dict(loaded.per_rank["reader"])
    if rank == 0:
        print(f"resumed at step {loaded.step} (epoch {reader.epoch}, batch {reader.position})", flush=True)
    return loaded.step


def torch_profiler(wanted: bool) -> Any:
    """torch.profiler over the training steps (CPU events, where gloo's collectives are), or nothing."""
    if not wanted:
        return contextlib.nullcontext()
    from torch.profiler import ProfilerActivity, profile

    return profile(activities=[ProfilerActivity.CPU])


def write_torch_profile(profiler: Any, out: Path, rank: int, steps: int) -> None:
    """What torch.profiler saw of the collectives (``gloo:all_reduce``: each from its start to its completion on
    gloo's threads), to compare with hpcx's own communication records of the same run."""
    calls, seconds = 0, 0.0
    for event in profiler.events():
        if event.name == "gloo:all_reduce":
            calls += 1
            seconds += event.cpu_time_total / 1e6
    doc = {"rank": rank, "steps": steps, "gloo_all_reduce_calls": calls, "gloo_all_reduce_s": seconds}
    (out / f"torch-profile-rank-{rank}.json").write_text(json.dumps(doc) + "\n")


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
        reader = HDF5Reader(
            data, ["x", "y"], batch_size=args.batch, seed=args.seed, rank=ctx.rank, world_size=ctx.size
        )

        net = torch.nn.Sequential(torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)).to(
            device
        )
        model = DDP(net)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)
        ckpt = Checkpointer(out / "checkpoints", ctx, keep=3)

        step = resume(ckpt, net, opt, sched, reader, ctx.rank)

        def save(background: bool = False) -> None:
            """Replicated: model, optimizer, schedule. Per rank: where its reader is (with its RNG state)."""
            state = {
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
            }
            ckpt.save(step, state, per_rank={"reader": reader.state_dict()}, background=background)

        batches = endless(reader)
        loss = None  # stays None when a requeued job resumes from the checkpoint of its last step
        profiler = torch_profiler(args.torch_profile)
        first = step
        profiler.__enter__()
        while step < args.steps:
            x, y = (t.to(device) for t in next(batches))
            loss = torch.nn.functional.mse_loss(model(x).squeeze(-1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            runtime.log(step, loss=loss.item(), lr=sched.get_last_lr()[0])
            time.sleep(args.step_sleep)
            if step == args.fail_at and ctx.rank == args.fail_rank:
                raise RuntimeError(f"injected failure at step {step}")
            if step == args.die_in_save:
                save(background=True)  # every rank starts writing (save is collective) ...
                if ctx.rank == args.fail_rank:  # ... and one rank dies while its file is half written
                    os.kill(os.getpid(), signal.SIGKILL)
            if step % args.ckpt_every == 0 or step == args.steps:
                save()
            # At the last step there is nothing left to requeue for: the job finishes instead.
            if step < args.steps and preempt.should_stop(stop, ctx.comm, step=step, every=args.check_every):
                save()
                if ctx.rank == 0:
                    print(f"stopping at step {step}: checkpoint saved", flush=True)
                # `hpcx stop` asked (stop.stopped): the job ends here, done; else it goes on in its next run.
                if preempt.requeue(ctx.comm, state=stop) or stop.stopped:
                    return 0
                return 3
        profiler.__exit__(None, None, None)
        if args.torch_profile:
            write_torch_profile(profiler, out, ctx.rank, step - first)
        if ctx.rank == 0:
            sha = model_sha256(net)
            (out / "final_state.sha256").write_text(sha + "\n")
            final = f"{loss.item():.4g}" if loss is not None else "n/a (resumed after the last step)"
            print(f"done: {step} steps, final loss {final}, final state sha256 {sha}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
