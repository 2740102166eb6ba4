"""A small CPU training loop for benchmarks/profiling_overhead.py: prints the median seconds per step.

``--regions hpcx`` wraps each step (and its forward pass) in hpcx regions; ``--regions perun`` in perun's
``@monitor`` region, the equivalent under ``perun monitor``. One torch thread, so the profilers' samplers
have the machine's other core and every case meets the same contention.

``--ab-blocks N`` measures a profiler and no profiler in this one process: N pairs of blocks of
``--block-steps`` steps in ABBA order (so drift cancels), one block bare (the profiler's sampler held with
SIGSTOP, so it takes no CPU, and no regions), one profiled (the sampler running, regions on). Under
``python -m hpcx.run`` with ``--regions hpcx`` the sampler is the wrapper (this process's parent); under
``perun monitor`` with ``--regions perun``, perun's sampling subprocess (this process's child: perun runs the
script in its own process). It writes each block's mean seconds per step (``--ab-out``): the mean, not the median, so a step
a sampler slowed counts. ``--ab-null`` runs the same blocks with nothing different between them (both
profiled): the spread of its ratios is what the host resolves.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--regions", choices=("none", "hpcx", "perun"), default="none")
    parser.add_argument("--ab-blocks", type=int, default=0, help="pairs of bare/profiled blocks (see above)")
    parser.add_argument("--block-steps", type=int, default=1000)
    parser.add_argument("--ab-null", action="store_true", help="A/B blocks with nothing different (control)")
    parser.add_argument(
        "--ab-out", help="where the A/B blocks go, as JSON (a profiler may print on stdout too)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(128, 256), torch.randint(0, 10, (128,))
    forward = contextlib.nullcontext
    regions_on = [True]  # the A/B mode turns the forward region off in its bare blocks

    def set_forward(on: bool) -> None:
        regions_on[0] = on

    def step() -> None:
        opt.zero_grad()
        with forward() if regions_on[0] else contextlib.nullcontext():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    plain = step
    if args.regions == "hpcx":
        import hpcx

        step = hpcx.region("step")(step)
        forward = lambda: hpcx.region("forward")  # noqa: E731
    elif args.regions == "perun":
        import perun

        step = perun.monitor("step")(step)
    if args.ab_blocks:
        if not args.ab_out:
            raise SystemExit("--ab-blocks needs --ab-out PATH")
        samplers = _samplers(args.regions)
        ab_blocks(
            step if args.ab_null else plain,
            step,
            args.ab_blocks,
            args.block_steps,
            args.steps,
            set_forward,
            samplers,
            args.ab_null,
            args.ab_out,
        )
        return
    wall, cpu = [], []
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.thread_time()
        step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    skip = len(wall) // 10  # warm-up steps
    # CPU time of the loop's thread is what profiling adds in-process; wall time adds what other load takes.
    print("SECONDS_PER_STEP", statistics.median(wall[skip:]), statistics.median(cpu[skip:]), flush=True)


def _samplers(regions: str) -> list[int]:
    """The processes whose sampling the bare blocks hold: hpcx.run (the parent) or perun's subprocess (the
    children). Anything else is refused: never stop a parent that is a shell."""
    if regions == "hpcx":
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            if b"hpcx.run" in fh.read():
                return [os.getppid()]
        raise SystemExit("--ab-blocks --regions hpcx runs under python -m hpcx.run only")
    if regions == "perun":
        kids = [
            int(p)
            for task in os.listdir("/proc/self/task")
            for p in Path(f"/proc/self/task/{task}/children").read_text().split()
        ]
        if kids:
            return kids
        raise SystemExit("--ab-blocks --regions perun runs under perun monitor only (no sampling subprocess)")
    raise SystemExit("--ab-blocks needs --regions hpcx or --regions perun")


def ab_blocks(
    plain,
    profiled,
    pairs: int,
    block_steps: int,
    warmup: int,
    regions,
    samplers: list[int],
    null: bool,
    out: str,
) -> None:
    """Bare and profiled blocks in this process (see the module's docstring), written to ``out`` as a JSON
    list of [case, mean wall s/step, mean CPU s/step of this thread], case ``bare`` or ``profiled``."""

    def hold(stop: bool) -> None:
        for pid in samplers:
            os.kill(pid, signal.SIGSTOP if stop else signal.SIGCONT)

    for _ in range(warmup):
        profiled()
    blocks = []
    try:
        for i in range(pairs):
            for case in ("bare", "profiled") if i % 2 == 0 else ("profiled", "bare"):
                hold(case == "bare" and not null)
                regions(case == "profiled" or null)
                fn = plain if case == "bare" else profiled
                t0, c0 = time.perf_counter(), time.thread_time()
                for _ in range(block_steps):
                    fn()
                blocks.append(
                    [case, (time.perf_counter() - t0) / block_steps, (time.thread_time() - c0) / block_steps]
                )
    finally:
        hold(False)
    Path(out).write_text(json.dumps(blocks))


if __name__ == "__main__":
    main()
