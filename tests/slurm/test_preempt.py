"""Preemption on the real cluster: Slurm's warning signal reaches the ranks through the batch shell, they stop at a
step boundary, the job requeues itself and finishes in its next run; a job near its time limit does the same."""

import time

import pytest

pytestmark = pytest.mark.slurm

JOB = """
import os, sys, time
from pathlib import Path
from hpcx.runtime import preempt

state = preempt.install()
attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
progress = Path(os.environ["HPCX_RUN_DIR"]) / "progress"
start = int(progress.read_text()) if progress.exists() else 0
print(f"attempt {attempt} starts at step {start}", flush=True)
for step in range(start, STEPS):
    time.sleep(0.5)
    tmp = progress.with_suffix(".tmp"); tmp.write_text(str(step + 1)); tmp.replace(progress)
    if preempt.should_stop(state):
        print(f"attempt {attempt} stops after step {step} (signals {state.received})", flush=True)
        if preempt.requeue():
            sys.exit(0)
        sys.exit(3)
print(f"attempt {attempt} done", flush=True)
"""


def _job(tmp_path, steps):
    path = tmp_path / "job.py"
    path.write_text(JOB.replace("STEPS", str(steps)))
    return str(path)


def _wait(hpcx, run_id, predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = hpcx.json("status", run_id)["runs"][0]
        if predicate(row):
            return row
        time.sleep(0.5)
    hpcx("cancel", run_id, check=False)
    raise AssertionError(
        f"{what} not seen in {timeout_s} s: {row}\n{hpcx('logs', run_id, check=False).stdout}"
    )


def test_preemption_signal_stops_saves_requeues_and_resumes(slurm_hpcx, runs_root, tmp_path):
    doc = slurm_hpcx.json("submit", "serial", "-t", "10", "--", "python", _job(tmp_path, 40))
    progress = runs_root / doc["run_id"] / "progress"
    _wait(
        slurm_hpcx,
        doc["run_id"],
        lambda r: progress.exists() and int(progress.read_text()) >= 3,
        60,
        "progress",
    )
    # What Slurm does at --signal=B:USR2@T: signal the batch shell only.
    import subprocess

    subprocess.run(["scancel", "--signal=USR2", "--batch", doc["job_id"]], check=True, timeout=30)
    row = _wait(slurm_hpcx, doc["run_id"], lambda r: r["finished"], 150, "the end of the job")
    logs = slurm_hpcx("logs", doc["run_id"]).stdout
    assert row["state"] == "COMPLETED", logs
    assert "attempt 0 stops after step" in logs and "signals [" in logs and "requeuing job" in logs
    assert "attempt 1 starts at step" in logs and "attempt 1 done" in logs
    stopped_at = int(logs.split("attempt 0 stops after step ")[1].split()[0])
    assert f"attempt 1 starts at step {stopped_at + 1}" in logs  # resumed where it stopped, not from 0


def test_job_near_its_time_limit_requeues_instead_of_being_killed(slurm_hpcx, tmp_path):
    # A 2-minute limit and a 115 s margin: each run of the job may work ~5 s before it must stop.
    env = dict(slurm_hpcx.env, HPCX_STOP_MARGIN_S="115")
    hpcx = type(slurm_hpcx)(env)
    doc = hpcx.json(
        "submit", "serial", "-t", "2", "--set", "signal_lead_s=30", "--", "python", _job(tmp_path, 16)
    )
    row = _wait(hpcx, doc["run_id"], lambda r: r["finished"], 200, "the end of the job")
    logs = hpcx("logs", doc["run_id"]).stdout
    assert row["state"] == "COMPLETED", logs
    assert "attempt 0 stops after step" in logs and "attempt 1 starts at step" in logs and "done" in logs
