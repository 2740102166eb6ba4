"""Regions as a job uses them: nested spans and decorated functions land in the profile directory, in Unix
time, a few microseconds each, survive kill -9 up to the last flush, and `import hpcx` stays light."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from hpcx.reports.timelines import regions
from hpcx.rundir.records import read_records, region_spans

JOB = textwrap.dedent("""
    import os, sys, time
    import hpcx

    @hpcx.region("step")
    def step():
        with hpcx.region("forward"):
            time.sleep(0.02)
        with hpcx.region("backward", sync=True):  # no torch here: sync is a no-op, not an import
            time.sleep(0.01)

    for _ in range(3):
        step()
    if os.fork() == 0:  # a forked worker writes its own file, without the parent's spans
        with hpcx.region("worker"):
            pass
        sys.exit(0)
    os.wait()
    print(sorted(m for m in ("torch", "psutil", "numpy") if m in sys.modules))
""")


def _env(profile: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "OMPI_", "SLURM_", "RANK"))}
    return {**env, "HPCX_PROFILE_DIR": str(profile), "HPCX_RANK": "3"}


def _spans(profile: Path, rank: int) -> list[dict]:
    """The region spans of all of a rank's processes (one file each), in start order."""
    files = sorted(profile.glob(f"regions-rank-{rank:05d}-p*.jsonl"))
    return sorted((s for path in files for s in region_spans(read_records(path))), key=lambda s: s["start_t"])


def test_nested_and_decorated_regions_are_written_at_exit(tmp_path):
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", JOB],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]", "regions must not import torch, psutil or numpy"
    files = sorted(tmp_path.glob("regions-rank-00003-p*.jsonl"))
    assert len(files) == 2
    spans = _spans(tmp_path, 3)
    main = [s for s in spans if s["name"] != "worker"]
    assert [s["name"] for s in main] == ["step", "forward", "backward"] * 3
    assert [s["depth"] for s in main] == [0, 1, 1] * 3
    step, forward, backward = main[:3]
    assert 0.02 <= forward["dur_s"] < step["dur_s"] and 0.01 <= backward["dur_s"] < step["dur_s"]
    assert step["start_t"] <= forward["start_t"] < backward["start_t"] <= step["start_t"] + step["dur_s"]
    assert t0 < step["start_t"] < time.time()
    assert [s["name"] for s in spans if s["name"] == "worker"] == ["worker"]
    found = regions(tmp_path)  # as the report counts them: both processes' files, under the anchor's rank
    assert found is not None
    calls = {r["name"]: [(p["rank"], p["calls"]) for p in r["per_rank"]] for r in found["regions"]}
    assert calls == {"step": [(3, 3)], "forward": [(3, 3)], "backward": [(3, 3)], "worker": [(3, 1)]}


def test_a_region_costs_a_few_microseconds():
    code = textwrap.dedent("""
        import time, hpcx.profiling as p
        n = 100_000
        for _ in range(1000):
            with p.region("warm"):
                pass
        t = time.perf_counter_ns()
        for _ in range(n):
            with p.region("x"):
                pass
        with_region = time.perf_counter_ns() - t
        t = time.perf_counter_ns()
        for _ in range(n):
            pass
        print((with_region - (time.perf_counter_ns() - t)) / n / 1000)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCX_")}  # outside a run: kept, dropped
    us = float(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=True
        ).stdout
    )
    print(f"one region: {us:.2f} us")
    assert us < 20, f"a region costs {us:.1f} us"


def test_spans_survive_kill_9_up_to_the_last_flush(tmp_path):
    code = textwrap.dedent("""
        import sys, time, hpcx
        deadline = time.monotonic() + 6  # past one flush interval (5 s)
        while time.monotonic() < deadline:
            with hpcx.region("tick"):
                time.sleep(0.01)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=_env(tmp_path), stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    (path,) = tmp_path.glob("regions-rank-*.jsonl")
    spans = region_spans(read_records(path))
    assert len(spans) > 100 and {s["name"] for s in spans} == {"tick"}


def test_hpcx_region_is_loaded_on_first_use():
    code = (
        "import sys, hpcx; a = 'hpcx.profiling.regions' in sys.modules; hpcx.region('x');"
        "print(a, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "False"]
