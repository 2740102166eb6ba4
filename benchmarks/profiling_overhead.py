"""profiling_overhead: what hpcx's profiling costs a training loop, beside no profiler and beside perun.

One CPU training loop (benchmarks/_profiling_worker.py, ~2 ms steps, one torch thread) is measured two ways.

In one process (the headline figures): under ``python -m hpcx.run`` at the default 1 s interval with every
source on (the rank's process tree and, as the node's collector, memory, network, RAPL and NVML where
present), the loop runs pairs of blocks of 250 steps in ABBA order, one bare (the wrapper held with SIGSTOP,
so its sampler takes no CPU, and no regions), one profiled (the wrapper running, regions around each step and
its forward pass). Each block gives its mean step time (the mean, so a step the sampler slowed counts); each
pair its profiled over bare ratio. The same is done under ``perun monitor`` (1 s sampling, its sampling
subprocess held in the bare blocks, ``@monitor`` around each step in the profiled ones). Everything else
(the process, its memory layout, the host's drift) is the same for both blocks of a pair.

- ``overhead_vs_bare``: median over pairs of hpcx's ratio, with a bootstrap 95% interval (target <= 1.01);
- ``ab_null_ratio``: the same run with nothing different between the blocks: its interval is what this host
  can resolve;
- ``perun_vs_bare``: perun's ratio, measured the same way;
- ``overhead_vs_perun``: ``overhead_vs_bare`` over ``perun_vs_bare`` (target <= 1.0).

Across processes (kept for comparison with earlier runs): bare, under hpcx.run and under perun monitor,
alternating, each process reporting its median step time; ``overhead_vs_bare_processes`` and
``overhead_vs_perun_processes`` are medians over processes, which per-process variation (memory layout, the
VM) blurs by several percent.

- ``record_bytes_per_rank_hour``: bytes of rank + node records per rank per hour at the default interval,
  from a measured run extrapolated (a node file counted for every rank: one rank per node, the upper bound);
- ``sampler_cpu_per_s``: the sampler's own CPU time per second of job, which machine load does not blur;
- ``region_us``: one ``with hpcx.region(...)`` in this process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import REPO, Skip, alternate, main, result, stats, timing_row

WORKER = REPO / "benchmarks" / "_profiling_worker.py"
RANKS_AT_SCALE = 10_000


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "SLURM_", "HPCX_"))}


def _case(argv: list[str], per_step: list[tuple[float, float]], cwd: str) -> Callable[[], None]:
    def go() -> None:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=_env(), cwd=cwd)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {out.stderr[-2000:]}")
        line = next(x for x in out.stdout.splitlines() if x.startswith("SECONDS_PER_STEP"))
        wall_s, cpu_s = line.split()[1:3]
        per_step.append((float(wall_s), float(cpu_s)))

    return go


def _perun_argv(data_out: str) -> list[str]:
    perun = shutil.which("perun", path=str(Path(sys.executable).parent)) or shutil.which("perun")
    if perun is None:
        raise Skip("perun is not installed (pip install 'hpcx[bench]')")
    return [perun, "monitor", "--data-out", data_out, str(WORKER)]


def overhead_rows(quick: bool) -> list[dict]:
    steps, repeats = (1000, 3) if quick else (1000, 9)
    tmp = tempfile.mkdtemp(prefix="hpcx-prof-bench-")
    per_step: dict[str, list[tuple[float, float]]] = {"bare": [], "hpcx": [], "perun": []}
    worker = [str(WORKER), "--steps", str(steps)]
    cases = {
        "bare": _case([sys.executable, *worker], per_step["bare"], tmp),
        "hpcx": _case(
            [
                sys.executable,
                "-m",
                "hpcx.run",
                "--profile-dir",
                f"{tmp}/hpcx",
                "--",
                sys.executable,
                *worker,
                "--regions",
                "hpcx",
            ],
            per_step["hpcx"],
            tmp,
        ),
    }
    try:
        cases["perun"] = _case(
            [*_perun_argv(f"{tmp}/perun"), *worker[1:], "--regions", "perun"], per_step["perun"], tmp
        )
    except Skip:  # no perun here: the hpcx rows still count
        del per_step["perun"]
    try:
        alternate(cases, 1, warmup=0)  # warm-up round: file cache, bytecode; its numbers are dropped
        for v in per_step.values():
            v.clear()
        alternate(cases, repeats, warmup=0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wall = {k: [w for w, _ in v] for k, v in per_step.items()}
    cpu = {k: [c for _, c in v] for k, v in per_step.items()}
    med = {k: stats(v)["median"] for k, v in wall.items()}
    med_cpu = {k: stats(v)["median"] for k, v in cpu.items()}
    rows = [
        result(
            "overhead_vs_bare_processes",
            round(med["hpcx"] / med["bare"], 4),
            "ratio",
            "the same loop without hpcx, separate processes, median wall s/step",
        ),
        result(
            "overhead_vs_bare_processes_cpu",
            round(med_cpu["hpcx"] / med_cpu["bare"], 4),
            "ratio",
            "as overhead_vs_bare_processes, CPU s/step of the loop's thread",
        ),
        timing_row("bare_step_ms", wall["bare"], "one torch thread, MLP 256-512-10, batch 128"),
        timing_row("hpcx_step_ms", wall["hpcx"], "hpcx.run, all sources, regions per step and forward"),
    ]
    if "perun" in med:
        rows += [
            result(
                "overhead_vs_perun_processes",
                round(med["hpcx"] / med["perun"], 4),
                "ratio",
                "perun monitor (1 s sampling, @monitor per step), separate processes, median wall s/step",
            ),
            result(
                "overhead_vs_perun_processes_cpu",
                round(med_cpu["hpcx"] / med_cpu["perun"], 4),
                "ratio",
                "as overhead_vs_perun_processes, CPU s/step of the loop's thread",
            ),
            timing_row("perun_step_ms", wall["perun"], "perun monitor, psutil (+RAPL/NVML where present)"),
        ]
    return rows


def _ab_ratios(profiler: str, null: bool, pairs: int, cwd: str) -> tuple[list[float], list[float]]:
    """Per pair of blocks under ``profiler`` (hpcx or perun), profiled over bare mean step time: wall, and
    CPU of the loop's thread."""
    out = Path(cwd) / f"ab-{profiler}-{int(null)}.json"
    args = [
        str(WORKER),
        "--ab-blocks",
        str(pairs),
        "--block-steps",
        "250",
        "--steps",
        "300",
        "--ab-out",
        str(out),
        "--regions",
        profiler,
        *(["--ab-null"] if null else []),
    ]
    if profiler == "hpcx":
        argv = [
            sys.executable,
            "-m",
            "hpcx.run",
            "--profile-dir",
            f"{cwd}/ab-{int(null)}",
            "--",
            sys.executable,
            *args,
        ]
    else:
        argv = [*_perun_argv(f"{cwd}/perun-ab-{int(null)}"), *args[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=_env(), cwd=cwd)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
    blocks = json.loads(out.read_text())
    wall, cpu = [], []
    for a, b in zip(blocks[::2], blocks[1::2]):
        profiled, bare = (a, b) if a[0] == "profiled" else (b, a)
        wall.append(profiled[1] / bare[1])
        cpu.append(profiled[2] / bare[2])
    return wall, cpu


def _median_ci(ratios: list[float], draws: int = 4000) -> tuple[float, float, float]:
    """The median and a percentile-bootstrap 95% interval of it (fixed seed: the same blocks, the same CI)."""
    rng = random.Random(0)
    boots = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(draws))
    return statistics.median(ratios), boots[int(0.025 * draws)], boots[int(0.975 * draws) - 1]


def ab_rows(quick: bool) -> list[dict]:
    pairs = 10 if quick else 40
    tmp = tempfile.mkdtemp(prefix="hpcx-ab-bench-")
    try:
        hpcx, null = _ab_ratios("hpcx", False, pairs, tmp), _ab_ratios("hpcx", True, pairs, tmp)
        try:
            perun = _ab_ratios("perun", False, pairs, tmp)
        except Skip:
            perun = None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    how = f"one process, {pairs} ABBA pairs of 250 steps"
    rows = []
    for metric, ratios, target, what in (
        ("overhead_vs_bare", hpcx, 1.01, "bare blocks (hpcx.run held, no regions)"),
        ("ab_null_ratio", null, None, "control: hpcx's blocks with nothing different"),
        ("perun_vs_bare", perun, None, "bare blocks (perun's sampling subprocess held, no @monitor)"),
    ):
        if ratios is None:
            continue
        for suffix, values in (("", ratios[0]), ("_cpu", ratios[1])):
            med, lo, hi = _median_ci(values)
            rows.append(
                result(
                    metric + suffix,
                    round(med, 4),
                    "ratio",
                    f"{what}; {how}, {'CPU of the loop thread' if suffix else 'wall'}, "
                    f"95% CI {lo:.3f}-{hi:.3f}",
                    target if not suffix else None,
                    iqr=round(stats(values)["iqr"], 4),
                    n=len(values),
                )
            )
    if perun is not None:
        ratio = statistics.median(hpcx[0]) / statistics.median(perun[0])
        rows.append(
            result(
                "overhead_vs_perun",
                round(ratio, 4),
                "ratio",
                "hpcx's overhead_vs_bare over perun's perun_vs_bare, each measured as above",
                1.0,
            )
        )
    return rows


def _record_bytes(profile: Path) -> tuple[int, int, float, float]:
    """Bytes of sample records, bytes of the other records, the seconds the samples span, and the sampler
    thread's CPU seconds (its own count, in the rank's end record)."""
    sample_bytes = other = 0
    times, sampler_cpu_s = [], 0.0
    for path in [*profile.glob("rank-*.jsonl"), *profile.glob("node-*.jsonl")]:
        for line in path.read_bytes().splitlines(keepends=True):
            rec = json.loads(line)
            if rec["type"] == "sample":
                sample_bytes += len(line)
                times.append(rec["t"])
            else:
                other += len(line)
            if rec["type"] == "end" and "rank" in rec:
                sampler_cpu_s = rec["sampler_cpu_s"]
    return sample_bytes, other, max(times) - min(times), sampler_cpu_s


def record_rows(quick: bool) -> list[dict]:
    """One rank that is also its node's collector, at the default interval: bytes and the sampler's CPU."""
    seconds = 10 if quick else 30
    tmp = Path(tempfile.mkdtemp(prefix="hpcx-bytes-bench-"))
    try:
        job = [sys.executable, "-c", f"import time; x = b'1' * 2**26; time.sleep({seconds})"]
        argv = [sys.executable, "-m", "hpcx.run", "--profile-dir", str(tmp), "--", *job]
        subprocess.run(argv, check=True, timeout=seconds + 60, env=_env())
        sample_bytes, fixed, span_s, sampler_cpu_s = _record_bytes(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_hour = sample_bytes / span_s * 3600 + fixed
    return [
        result(
            "record_bytes_per_rank_hour",
            round(per_hour),
            "B",
            f"rank + node records at the default 1 s interval, {seconds} s measured, extrapolated; "
            f"{RANKS_AT_SCALE} ranks: {per_hour * RANKS_AT_SCALE / 1e9:.2f} GB per hour",
        ),
        result(
            "sampler_cpu_per_s",
            round(sampler_cpu_s / span_s * 1000, 3),
            "ms/s",
            "the sampler thread's CPU time per second of job (rank + node sources, start-up included), "
            "on a core beside the rank's; load from other jobs does not inflate it",
        ),
    ]


def region_rows() -> list[dict]:
    from hpcx.profiling import region

    n = 200_000
    os.environ.pop("HPCX_PROFILE_DIR", None)
    t0 = time.perf_counter()
    for _ in range(n):
        with region("x"):
            pass
    t1 = time.perf_counter()
    for _ in range(n):
        pass
    us = ((t1 - t0) - (time.perf_counter() - t1)) / n * 1e6
    return [
        result("region_us", round(us, 3), "us", "one `with hpcx.region(...)`, both edges, in this process")
    ]


def run(quick: bool) -> list[dict]:
    sys.path.insert(0, str(REPO))
    return [*ab_rows(quick), *overhead_rows(quick), *record_rows(quick), *region_rows()]


if __name__ == "__main__":
    sys.exit(main("profiling_overhead", run, __doc__))
