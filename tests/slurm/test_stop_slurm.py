"""`hpcx stop` on the real cluster: a running examples/train_ddp.py (2 ranks on 2 nodes) ends with a checkpoint
at the step its ranks agreed on and exit status 0, and a new run from that checkpoint ends bit-identical to an
uninterrupted one; a 6-task sweep with 2 tasks running and 4 pending stops the 2 and cancels the 4."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]
STEPS, SLEEP = 40, "0.25"
TRAIN = ["python", "examples/train_ddp.py", "--steps", str(STEPS), "--step-sleep", SLEEP]
MPI2 = ["mpi", "--nodes", "2", "--ntasks-per-node", "1", "-t", "10", "--set", "signal_lead_s=30"]

TASK_JOB = """
import os, sys, time
from pathlib import Path
from hpcx.runtime import preempt

state = preempt.install()
progress = Path(os.environ["HPCX_RUN_DIR"]) / f"progress-{os.environ['HPCX_TASK_ID']}"
step = 0
while step < 2400:
    time.sleep(0.05)
    step += 1
    progress.write_text(str(step))
    if preempt.should_stop(state, step=step):
        print(f"stopping at step {step}, stopped={state.stopped}", flush=True)
        sys.exit(0 if not preempt.requeue() and state.stopped else 3)
print("done", flush=True)
"""


def _last_step(run_dir: Path) -> int:
    path = run_dir / "metrics" / "rank-00000.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1])["step"] if lines else 0


def _until(predicate, timeout_s: float, what: str, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(poll_s)
    raise AssertionError(f"{what} not seen in {timeout_s} s")


def _sha(out: Path) -> str | None:
    path = out / "final_state.sha256"
    return path.read_text().strip() if path.exists() else None


def test_stop_of_train_ddp_saves_at_the_agreed_step_and_a_new_run_ends_bit_identical(slurm_hpcx, tmp_path):
    hpcx = slurm_hpcx
    ref_out, out = tmp_path / "reference", tmp_path / "stopped"
    reference = hpcx.json("submit", *MPI2, "--", *TRAIN, "--out", str(ref_out))
    doc = hpcx.json("submit", *MPI2, "--", *TRAIN, "--out", str(out))
    run_dir = Path(doc["run_dir"])
    try:
        _until(lambda: _last_step(run_dir) >= 8, 120, "step 8 of the run to stop")
        asked_at = _last_step(run_dir)
        stop = hpcx.json("stop", doc["run_id"], "--grace", "60")
    except BaseException:
        hpcx("cancel", doc["run_id"], reference["run_id"], check=False)
        raise
    row = hpcx.wait_finished(doc["run_id"], timeout_s=120)
    logs = hpcx("logs", doc["run_id"]).stdout
    [task] = stop["tasks"]
    assert (task["action"], task["outcome"]) == ("stop", "stopped"), (stop, logs)
    step = task["step"]
    print(f"stop_latency_steps: asked at step {asked_at}, stopped at step {step} (every=1, 0.25 s steps)")
    assert asked_at <= step < STEPS and step - asked_at <= 8, (asked_at, step)
    assert (row["state"], row["exit_code"]) == ("STOPPED", 0), logs  # Slurm's COMPLETED, stopped on request
    assert f"stopping at step {step}: checkpoint saved" in logs and "not requeuing: stopped at step" in logs
    assert "requeuing job" not in logs
    ack = json.loads((run_dir / "control" / "stopped.json").read_text())
    assert (ack["step"], ack["ranks"], ack["job_id"]) == (step, 2, doc["job_id"])
    assert (out / "checkpoints" / "latest").read_text().strip() == f"step-{step:08d}"
    assert _sha(out) is None  # it stopped: no final state
    summary = hpcx.json("report", doc["run_id"], "--no-html")["report"]["summary"]
    assert (summary["state"], summary["stopped"]["step"]) == ("STOPPED", step), summary
    assert any(r["run_id"] == doc["run_id"] and r["state"] == "STOPPED" for r in hpcx.json("runs")["runs"])

    again = hpcx.json("submit", *MPI2, "--", *TRAIN, "--out", str(out))
    assert hpcx.wait_finished(again["run_id"], timeout_s=180)["state"] == "COMPLETED"
    assert hpcx.wait_finished(reference["run_id"], timeout_s=180)["state"] == "COMPLETED"
    assert f"resumed at step {step}" in hpcx("logs", again["run_id"]).stdout
    assert _sha(out) == _sha(ref_out) is not None


@pytest.fixture(scope="module")
def stopped_sweep(testbed, tmp_path_factory):
    """A 6-task sweep, 2 at a time: once 2 tasks run and 4 wait, `hpcx stop`; then wait until none runs."""
    from tests.conftest import Hpcx, _base_env

    tmp_path = tmp_path_factory.mktemp("sweep")
    hpcx = Hpcx({**_base_env(tmp_path / "runs"), "HPCX_SITE": str(testbed)})
    job = tmp_path / "job.py"
    job.write_text(TASK_JOB)
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        f"""
name: stopme
kind: serial
resources: {{time: "00:05:00"}}
command: [python, {job}]
parameters:
  grid: {{i: [0, 1, 2, 3, 4, 5]}}
"""
    )
    doc = hpcx.json("sweep", str(spec), "--max-parallel", "2")
    run_dir = Path(doc["run_dir"])

    def two_running():
        found = sorted(run_dir.glob("progress-*"))
        return found if len(found) == 2 else None

    try:
        started = sorted(int(p.name.split("-")[1]) for p in _until(two_running, 120, "2 running tasks"))
        time.sleep(1)  # both well into their loops
        before = hpcx.json("status", doc["run_id"])["runs"][0]
        stop = hpcx.json("stop", doc["run_id"], "--grace", "60")
        row = _until(lambda: _settled(hpcx, doc["run_id"]), 120, "the end of the running tasks", poll_s=1)
    except BaseException:
        hpcx("cancel", doc["run_id"], check=False)
        raise
    return {"doc": doc, "run_dir": run_dir, "started": started, "before": before, "stop": stop, "row": row}


def _settled(hpcx, run_id: str) -> dict | None:
    row = hpcx.json("status", run_id)["runs"][0]
    return row if not {"RUNNING", "PENDING"} & set(row["tasks"]) else None


def test_stop_of_a_sweep_stops_the_running_tasks_and_cancels_the_pending(stopped_sweep):
    run_dir, started, stop = stopped_sweep["run_dir"], stopped_sweep["started"], stopped_sweep["stop"]
    assert stopped_sweep["before"]["tasks"] == {"RUNNING": 2, "PENDING": 4}
    outcomes = {t["task"]: (t["action"], t["outcome"]) for t in stop["tasks"]}
    assert outcomes == {t: ("stop", "stopped") if t in started else ("cancel", "cancelled") for t in range(6)}
    for t in started:
        ack = json.loads((run_dir / "control" / f"task-{t:05d}" / "stopped.json").read_text())
        assert ack["task"] == t and ack["step"] == next(x["step"] for x in stop["tasks"] if x["task"] == t)
        assert ack["job_id"] == f"{stopped_sweep['doc']['job_ids'][0]}_{t}"
        assert (
            f"stopping at step {ack['step']}, stopped=True"
            in (run_dir / "logs").joinpath(f"slurm-{stopped_sweep['doc']['job_ids'][0]}_{t}.out").read_text()
        )
    assert (
        sorted(int(p.name.split("-")[1]) for p in run_dir.glob("progress-*")) == started
    )  # none started later
    # Slurm's own record (slurmdbd may lag a little): the 2 tasks completed (exit 0), the 4 that waited end as
    # one CANCELLED record for the rest of the array (ID, or ID_[2-5%2] with the tasks it held).
    job_id = stopped_sweep["doc"]["job_ids"][0]
    done = [f"{job_id}_{t}|COMPLETED|0:0" for t in started]
    rest = re.compile(rf"{job_id}(_\[[-0-9,%]+\])?\|CANCELLED by {os.getuid()}\|0:0")

    def recorded() -> bool:
        rows = _sacct(job_id)
        return len(rows) == 3 and rows[:2] == done and bool(rest.fullmatch(rows[2]))

    _until(recorded, 60, f"sacct's records {done} and the rest CANCELLED", poll_s=1)


def _sacct(job_id: str) -> list[str]:
    argv = ["sacct", "-P", "-n", "-X", "-o", "JobID,State,ExitCode", "-j", job_id]
    return sorted(
        subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout.splitlines()
    )


def test_status_of_a_stopped_sweep_counts_the_cancelled_tasks(stopped_sweep):
    row = stopped_sweep["row"]
    assert row["tasks"] == {"STOPPED": 2, "CANCELLED": 4} and row["finished"], row
    assert row["state"] == "STOPPED"
