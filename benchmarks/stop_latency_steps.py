"""stop_latency_steps: steps between `hpcx stop` and the checkpoint, against the ``every=`` of ``should_stop``
(target <= 1: the ranks stop at the first agreement boundary after the request is there).

A job on the local backend (no queue in the way) takes steps of a fixed length and calls
``preempt.should_stop(state, step=step, every=E)``; once it runs, ``hpcx stop`` writes the request. The
latency counts from the request file's modification time (so the CLI's own start-up is not in it) to the step
rank 0 acknowledged: the steps the job logged before the request, against the step it stopped at, over ``E``.
The ranks look for a request at most once per HPCX_CONTROL_INTERVAL_S (1 s, to spare a parallel file system's
metadata server); a boundary at least that far from the last look always looks, so the target holds where a
boundary comes at most every second. The case with a boundary every 50 ms shows the floor that interval sets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, main, result, stats

JOB = """
import sys, time
from hpcx import runtime
from hpcx.runtime import preempt
step_s, every = float(sys.argv[1]), int(sys.argv[2])
state = preempt.install()
for step in range(1, 100000):
    time.sleep(step_s)
    runtime.log(step, loss=1.0 / step)
    if preempt.should_stop(state, step=step, every=every):
        sys.exit(0 if state.stopped else 3)
"""

CASES = (
    (0.05, 25),
    (0.125, 10),
    (0.25, 5),
    (0.05, 1),
)  # (step s, every): boundaries 1.25 s apart, then 0.05 s


def _hpcx(env: dict[str, str], *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "hpcx", "--json", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(f"hpcx {' '.join(args)} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def _records(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics" / "rank-00000.jsonl"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def one(env: dict[str, str], job: Path, step_s: float, every: int) -> float:
    """Steps from the request to the acknowledged step, over ``every``, for one job."""
    run = _hpcx(env, "submit", "serial", "--", sys.executable, str(job), str(step_s), str(every))
    run_dir = Path(run["run_dir"])
    deadline = time.monotonic() + 60
    while len(_records(run_dir)) < 25:  # past its start-up, in its loop
        if time.monotonic() > deadline:
            raise RuntimeError("the job did not start logging")
        time.sleep(0.1)
    stop = _hpcx(env, "stop", run["run_id"], "--grace", "30")
    asked = (run_dir / "control" / "stop.json").stat().st_mtime
    acked = stop["tasks"][0]["step"]
    before = [r["step"] for r in _records(run_dir) if r["t"] <= asked]
    return (acked - max(before)) / every


def run(quick: bool) -> list[dict]:
    repeats = 2 if quick else 5
    with tempfile.TemporaryDirectory(prefix="hpcx-stop-bench-") as tmp:
        job = Path(tmp) / "job.py"
        job.write_text(JOB)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "SLURM_", "SBATCH_"))}
        env.update(HPCX_SITE="local", HPCX_RUNS=str(Path(tmp) / "runs"))
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(REPO)
        rows = []
        for step_s, every in CASES:
            ratios = [one(env, job, step_s, every) for _ in range(repeats)]
            s = stats(ratios)
            spaced = step_s * every >= 1.0
            rows.append(
                result(
                    "stop_latency_steps" if spaced else "stop_latency_steps_fast_boundaries",
                    round(max(ratios), 3),
                    "x every",
                    f"steps of {step_s} s, every={every}: the most over {repeats} jobs (median {s['median']:.2f})",
                    1.0 if spaced else None,
                    n=len(ratios),
                )
            )
        return rows


if __name__ == "__main__":
    sys.exit(main("stop_latency_steps", run, __doc__))
