"""How long a background checkpoint save stalls a training loop, against a synchronous save of the same state.

metric async_stall_fraction = (training loop's stall per background save) / (stall per synchronous save).
Target <= 0.10.

The loop: a CPU model of three Linear(4096, 4096) layers (192 MiB of float32 parameters; 3 x 2048 and 48 MiB
with --quick), plain SGD, batch 16, ``Checkpointer.save(step, {"model": model.state_dict(), ...})`` after every
6th step; every step is timed, the save() call counting to the step it follows. A save's stall is the time
inside save() plus what the next 3 steps took beyond the loop's median step without a save nearby (for a
background save: copying the state, committing the previous one, and the steps slowed while the writer thread
works), plus the final wait(). The baseline steps are the loop's own steps 4 or more after a save, so slow
drifts of a shared machine's load hit both alike; the two loops alternate, after a warm-up loop, in a temporary
directory (HPCX_BENCH_DIR, default the system temp directory). Values are medians over all saves.

The training loop runs on all usable cores but one (torch.set_num_threads; HPCX_BENCH_TRAIN_THREADS overrides),
as a GPU job's host process leaves cores idle while the GPU computes: a background save needs CPU time (copying
into the page cache, sha256) and can only hide it where some is spare. With every core busy training, the save's
CPU time is taken from training whatever thread runs it (see docs/performance.md). A second pair of loops whose
steps sleep as long as a computing step took in the warm-up (the host thread of a GPU loop, waiting for the
device) gives async_stall_fraction_idle_host: the same ratio when the CPU is spare.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

NAME = "async_stall_fraction"
TARGET = 0.10
EVERY = 6  # steps between saves
WINDOW = 3  # steps after a save that count towards its stall; the rest are the baseline


def make_model(width: int) -> tuple[Any, Any]:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(3)])
    return model, torch.optim.SGD(model.parameters(), lr=1e-4)


def train(
    model: Any, opt: Any, saves: int, ckpt: Any, background: bool, idle_s: float | None = None
) -> dict[str, Any]:
    """One loop of ``saves * EVERY + WINDOW`` steps; returns per-step seconds, save() seconds, final wait().

    With ``idle_s`` a step sleeps that long instead of computing: the host side of a GPU training loop, which
    waits for the device while its kernels run.
    """
    import torch

    x = torch.randn(16, model[0].in_features)
    step_s, save_s = [], []
    for step in range(1, saves * EVERY + WINDOW + 1):
        t0 = time.perf_counter()
        if idle_s is None:
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            time.sleep(idle_s)
        t1 = time.perf_counter()
        step_s.append(t1 - t0)
        if step % EVERY == 0 and step <= saves * EVERY:
            state = {"model": model.state_dict(), "sampler": {"epoch": 0, "position": step * 16}}
            ckpt.save(step, state, background=background)
            save_s.append(time.perf_counter() - t1)
    t0 = time.perf_counter()
    ckpt.wait()
    return {"step_s": step_s, "save_s": save_s, "wait_s": time.perf_counter() - t0}


def stalls(loop: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Each save's stall, and the loop's baseline steps (those at least WINDOW + 1 steps after a save)."""
    steps = loop["step_s"]
    near = {s + k for s in range(EVERY, len(steps) + 1, EVERY) for k in range(1, WINDOW + 1)}
    base_steps = [t for i, t in enumerate(steps, start=1) if i not in near]
    base = statistics.median(base_steps)
    out = []
    for n, call in enumerate(loop["save_s"]):
        after = steps[(n + 1) * EVERY : (n + 1) * EVERY + WINDOW]
        out.append(call + sum(t - base for t in after))
    out[-1] += loop["wait_s"]
    return out, base_steps


def run(quick: bool) -> list[dict[str, Any]]:
    try:
        import torch
    except ImportError as exc:
        raise c.Skip(f"torch is not installed ({exc}): pip install -e '.[torch]'") from exc
    from hpcx.runtime.checkpoint import Checkpointer

    width, saves, repeats = (2048, 4, 1) if quick else (4096, 6, 3)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = int(os.environ.get("HPCX_BENCH_TRAIN_THREADS") or max(1, usable - 1))
    torch.set_num_threads(threads)
    model, opt = make_model(width)
    state_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    work = Path(tempfile.mkdtemp(prefix="hpcx-bench-async-", dir=os.environ.get("HPCX_BENCH_DIR")))
    modes = {"sync": False, "background": True, "idle_sync": False, "idle_background": True}
    loops: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    warmup_steps: list[float] = []
    try:
        ckpts = {mode: Checkpointer(work / mode, keep=3) for mode in modes}
        for i in range(repeats + 1):  # round 0 is the warm-up; it also times the steps the idle loops sleep
            idle_s = statistics.median(warmup_steps) if warmup_steps else None
            for mode, background in modes.items():
                idle = mode.startswith("idle")
                if idle and idle_s is None:
                    continue
                loop = train(
                    model, opt, 2 if i == 0 else saves, ckpts[mode], background, idle_s if idle else None
                )
                if i:
                    loops[mode].append(loop)
                else:
                    warmup_steps += loop["step_s"]
        for mode, cp in ckpts.items():
            if cp.load(restore=False) is None:
                raise RuntimeError(f"the {mode} saves left no loadable checkpoint")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    per_save = {mode: [s for loop in runs for s in stalls(loop)[0]] for mode, runs in loops.items()}
    base_steps = [t for mode in ("sync", "background") for loop in loops[mode] for t in stalls(loop)[1]]
    sync, bg = statistics.median(per_save["sync"]), statistics.median(per_save["background"])
    idle_ratio = statistics.median(per_save["idle_background"]) / statistics.median(per_save["idle_sync"])
    n = len(per_save["sync"])
    return [
        c.result(
            NAME,
            round(bg / sync, 3),
            "ratio",
            f"stall per background save / per synchronous save, {state_mb:.0f} MiB, training on {threads} of "
            f"{usable} cores (medians of {n} saves each)",
            TARGET,
        ),
        c.timing_row("sync_stall_ms", per_save["sync"], "save() + extra time of the next 3 steps, per save"),
        c.timing_row(
            "background_stall_ms",
            per_save["background"],
            "save(background=True) + extra time of the next 3 steps (+ the final wait), per save",
        ),
        c.timing_row(
            "background_save_call_ms",
            [s for loop in loops["background"] for s in loop["save_s"]],
            "inside save(background=True): commit the previous save, copy the state to the CPU, start the writer",
        ),
        c.timing_row(
            "sync_save_call_ms",
            [s for loop in loops["sync"] for s in loop["save_s"]],
            "inside save(): write, hash, fsync, commit",
        ),
        c.timing_row("step_ms", base_steps, "one training step, 4 or more steps after a save"),
        c.result(
            "async_stall_fraction_idle_host",
            round(idle_ratio, 3),
            "ratio",
            f"the same with steps that sleep {idle_s * 1000:.0f} ms instead of computing (a GPU loop's host "
            "thread): what the background save costs when the CPU is spare",
        ),
        c.timing_row(
            "idle_background_stall_ms",
            per_save["idle_background"],
            "background stall per save, sleeping steps",
        ),
        c.result("state_mb", round(state_mb), "MiB", "parameters saved each time (float32)"),
        c.result(
            "train_threads", threads, "threads", f"torch.set_num_threads of the loop ({usable} cores usable)"
        ),
    ]


if __name__ == "__main__":
    sys.exit(c.main(NAME, run, __doc__))
