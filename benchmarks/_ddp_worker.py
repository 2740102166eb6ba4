"""One rank of the DDP overhead benchmark: the same training loop with hpcx's runtime or with plain torch DDP.

    mpirun -n 2 python benchmarks/_ddp_worker.py --mode hpcx --steps 300
    mpirun -n 2 python benchmarks/_ddp_worker.py --mode plain --steps 300

hpcx: hpcx.runtime.session (port negotiated over MPI), seeds, a metric record every step and a preemption
check (an MPI allreduce) every 10 steps. plain: torch.distributed.init_process_group from the launcher's variables and the
bare loop. Rank 0 prints the steady-state seconds per step (the first 20% of steps are warm-up).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def loop(model, opt, x, y, steps: int, each_step) -> float:
    import torch

    warm = max(steps // 5, 1)
    t0 = 0.0
    for step in range(steps):
        if step == warm:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model(x).squeeze(-1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        each_step(step, loss)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / (steps - warm)


def build(device):
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1)).to(
        device
    )
    model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    if os.environ.get("BENCH_PYTHON_HOOK"):  # torch's own Python all-reduce hook, the path hpcx's timer wraps
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        model.register_comm_hook(None, default_hooks.allreduce_hook)
    x, y = torch.randn(512, 256, device=device), torch.randn(512, device=device)
    return model, torch.optim.SGD(model.parameters(), lr=0.01), x, y


def run_hpcx(steps: int) -> tuple[int, float]:
    import torch

    from hpcx import runtime
    from hpcx.runtime import preempt, seeds

    stop = preempt.install()
    with runtime.session(torch_backend="auto") as ctx:
        seeds.seed_everything(0, ctx.rank)
        device = (
            torch.device("cuda", torch.cuda.current_device())
            if ctx.torch_backend == "nccl"
            else torch.device("cpu")
        )
        model, opt, x, y = build(device)

        def each(step, loss):
            runtime.log(step, loss=loss.item())
            preempt.should_stop(stop, ctx.comm, step=step, every=10)

        return ctx.rank, loop(model, opt, x, y, steps, each)


def run_plain(steps: int) -> tuple[int, float]:
    import torch
    import torch.distributed as dist

    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("SLURM_PROCID", 0)))
    size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("SLURM_NTASKS", 1)))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://", rank=rank, world_size=size)
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    model, opt, x, y = build(device)
    try:
        return rank, loop(model, opt, x, y, steps, lambda step, loss: loss.item())
    finally:
        dist.barrier()  # no rank tears gloo down while the other still talks to it (an abort at exit otherwise)
        dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["hpcx", "plain"], required=True)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    rank, per_step = (run_hpcx if args.mode == "hpcx" else run_plain)(args.steps)
    if rank == 0:
        print(f"SECONDS_PER_STEP {per_step:.9f}", flush=True)
    if args.mode == "plain":
        # The measurement is done. torch's gloo threads can abort the interpreter's finalisation ("terminate
        # called without an active exception") after DDP; hpcx's session waits for them, plain torch does not.
        # That is not the case's cost per step, so the plain case skips the finalisation (it started no MPI).
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
