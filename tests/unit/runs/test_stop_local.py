"""`hpcx stop` on the local backend, end to end: a running job saves and ends with exit status 0 at the step it
acknowledges; an array's running task stops and its waiting tasks are cancelled; a job that never calls
should_stop() gets the early signal after --grace; a finished run is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

JOB = """
import os, sys, time
from pathlib import Path
from hpcx.runtime import preempt

state = preempt.install()
task = os.environ.get("HPCX_TASK_ID") or os.environ.get("SLURM_ARRAY_TASK_ID") or "job"
progress = Path(os.environ["HPCX_RUN_DIR"]) / f"progress-{task}"
step = 0
while step < 1200:
    time.sleep(0.05)
    step += 1
    progress.write_text(str(step))
    if preempt.should_stop(state, step=step):
        print(f"stopping at step {step}, stopped={state.stopped}", flush=True)
        sys.exit(0 if not preempt.requeue() and state.stopped else 3)
print("done", flush=True)
"""


def _submit(hpcx, tmp_path: Path, *extra: str) -> dict:
    job = tmp_path / "job.py"
    job.write_text(JOB)
    return hpcx.json("submit", "serial", *extra, "--", "python", str(job))


def _wait_for(path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout_s} s"
        time.sleep(0.1)


def test_a_running_job_stops_at_the_step_it_acknowledges_with_exit_0(hpcx, runs_root, tmp_path):
    doc = _submit(hpcx, tmp_path)
    run_dir = runs_root / doc["run_id"]
    _wait_for(run_dir / "progress-job")
    asked_at = int((run_dir / "progress-job").read_text())
    out = hpcx("stop", doc["run_id"]).stdout
    assert out.startswith(f"asked {doc['run_id']} to stop (job {doc['job_id']}, requested by ")
    assert "not acknowledged yet" in out and f"hpcx stop {doc['run_id']} --grace 60" in out
    row = hpcx.wait_finished(doc["run_id"], timeout_s=60)
    logs = hpcx("logs", doc["run_id"]).stdout
    assert (row["state"], row["exit_code"]) == ("STOPPED", 0), (
        logs
    )  # the local backend says COMPLETED: stopped on request
    ack = json.loads((run_dir / "control" / "stopped.json").read_text())
    assert ack["step"] >= asked_at and f"stopping at step {ack['step']}, stopped=True" in logs
    assert "not requeuing: stopped at step" in logs
    again = hpcx("--json", "stop", doc["run_id"], check=False)
    error = json.loads(again.stdout)["error"]
    assert again.returncode == 2 and error["message"] == (
        f"run {doc['run_id']} has already finished (STOPPED), stopped at step {ack['step']} on request of "
        f"{ack['requested_by']}: there is nothing to stop"
    )


def test_an_array_stops_its_running_task_and_cancels_the_waiting_ones(hpcx, runs_root, tmp_path):
    doc = _submit(hpcx, tmp_path, "--array", "0-2")
    run_dir = runs_root / doc["run_id"]
    _wait_for(run_dir / "progress-0")
    stop = hpcx.json("stop", doc["run_id"], "--grace", "30")
    assert [(t["task"], t["action"], t["outcome"]) for t in stop["tasks"]] == [
        (0, "stop", "stopped"),
        (1, "cancel", "cancelled"),
        (2, "cancel", "cancelled"),
    ]
    assert (
        stop["tasks"][0]["step"]
        == json.loads((run_dir / "control/task-00000/stopped.json").read_text())["step"]
    )
    row = hpcx.wait_finished(doc["run_id"], timeout_s=60)
    assert row["tasks"] == {"STOPPED": 1, "CANCELLED": 2}, hpcx("logs", doc["run_id"]).stdout
    assert not (run_dir / "progress-1").exists() and not (run_dir / "progress-2").exists()


def test_a_job_that_never_calls_should_stop_gets_the_early_signal_after_the_grace(hpcx, tmp_path):
    doc = hpcx.json("submit", "serial", "--", "sleep", "120")
    time.sleep(1)
    started = time.monotonic()
    out = hpcx("stop", doc["run_id"], "--grace", "2").stdout
    waited_s = time.monotonic() - started
    try:
        assert 2 <= waited_s < 20
        assert out.startswith(
            f"{doc['run_id']} did not acknowledge within 2 s (a job that never calls should_stop()?)"
        )
        assert (
            "sent it USR2 through its job script" in out and f"`hpcx cancel {doc['run_id']}` ends it" in out
        )
        assert (
            hpcx.json("status", doc["run_id"])["runs"][0]["state"] == "RUNNING"
        )  # sleep ignores the warning
    finally:
        hpcx("cancel", doc["run_id"], check=False)
        hpcx.wait_finished(doc["run_id"], timeout_s=30)
