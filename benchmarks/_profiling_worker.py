"""A small CPU training loop for benchmarks/profiling_overhead.py: prints the median seconds per step.

``--regions hpcx`` wraps each step (and its forward pass) in hpcx regions; ``--regions perun`` in perun's
``@monitor`` region, the equivalent under ``perun monitor``. One torch thread, so the profilers' samplers
have the machine's other core and every case meets the same contention.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--regions", choices=("none", "hpcx", "perun"), default="none")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(128, 256), torch.randint(0, 10, (128,))
    forward = contextlib.nullcontext

    def step() -> None:
        opt.zero_grad()
        with forward():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    if args.regions == "hpcx":
        import hpcx

        step = hpcx.region("step")(step)
        forward = lambda: hpcx.region("forward")  # noqa: E731
    elif args.regions == "perun":
        import perun

        step = perun.monitor("step")(step)
    wall, cpu = [], []
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.thread_time()
        step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    skip = len(wall) // 10  # warm-up steps
    # CPU time of the loop's thread is what profiling adds in-process; wall time adds what other load takes.
    print("SECONDS_PER_STEP", statistics.median(wall[skip:]), statistics.median(cpu[skip:]), flush=True)


if __name__ == "__main__":
    main()
