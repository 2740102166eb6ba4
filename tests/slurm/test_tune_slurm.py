"""`hpcx tune` on the real cluster: ASHA with 4 workers and 24 trials on a task whose loss depends on its
parameters; stopped trials end soon after their rung and free their worker for the next trial; a worker killed
with SIGKILL mid-trial loses that trial to another worker, which runs it again; --replay agrees."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from hpcx.tune.store import TrialFiles

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]
pytest.importorskip("optuna")

TRAIN = """
import math, sys, time
from hpcx import runtime
from hpcx.runtime import preempt
lr, width = float(sys.argv[1]), int(sys.argv[2])
state = preempt.install()
for step in range(1, 28):
    time.sleep(0.15)
    runtime.log(step, loss=abs(math.log10(lr) + 2) + 8.0 / width + 1.0 / step)
    if preempt.should_stop(state, step=step):
        sys.exit(0)
"""

SPEC = """
name: asha-cluster
kind: serial
resources: {{time: "00:10:00", mem: 500M}}
command: [python, {train}, "{{lr}}", "{{width}}"]
space:
  lr: {{float: [1.0e-4, 1.0], log: true}}
  width: {{int: [8, 128], log: true}}
objectives: {{metric: loss}}
budget: {{trials: {trials}, resource: {{min: 1, max: 27}}}}
sampler: tpe
stopping: {{rule: asha, eta: 3}}
workers: {workers}
seed: 3
"""


def _study(tmp_path: Path, trials: int, workers: int) -> Path:
    (tmp_path / "train.py").write_text(TRAIN)
    spec = tmp_path / "study.yaml"
    spec.write_text(SPEC.format(train=tmp_path / "train.py", trials=trials, workers=workers))
    return spec


def _trial_steps(run_dir: Path) -> dict[int, list[tuple[int, float]]]:
    """Each trial's logged (step, time) from every worker task's metrics file."""
    out: dict[int, list[tuple[int, float]]] = {}
    for path in run_dir.glob("metrics/task-*/rank-00000.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("type") == "metric" and "trial" in record:
                out.setdefault(record["trial"], []).append((record["step"], record["t"]))
    return out


def test_asha_with_4_workers_and_24_trials(slurm_hpcx, runs_root, tmp_path):
    doc = slurm_hpcx.json("tune", str(_study(tmp_path, 24, 4)))
    run_dir = runs_root / doc["run_id"]
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=480)
    assert row["state"] == "COMPLETED", row
    trials = TrialFiles(run_dir).trials()
    assert sorted(trials) == list(range(24))
    assert {t.state for t in trials.values()} <= {"complete", "stopped"}
    assert len({t.doc["worker"]["task"] for t in trials.values()}) >= 3  # the workers ran side by side
    assert {t.doc["worker"]["host"] for t in trials.values()} <= {"n1", "n2"}  # Slurm's node names
    steps = _trial_steps(run_dir)
    for trial in trials.values():
        if (
            trial.state == "stopped"
        ):  # it ended soon after its rung: a few steps at most, then its worker went on
            rung, ended = trial.end["rung"], trial.end["ended_at"]
            assert max(s for s, _ in steps[trial.number]) <= rung + 15
            assert max(t for _, t in steps[trial.number]) <= ended + 3.0
            later = [
                t
                for t in trials.values()
                if t.doc["worker"] == trial.doc["worker"] and t.number > trial.number
            ]
            assert all(t.doc["created_at"] >= ended - 0.5 for t in later)
        else:
            assert max(s for s, _ in steps[trial.number]) == 27
    replay = slurm_hpcx("tune", "--replay", doc["run_id"])
    assert "all agree" in replay.stdout
    status = slurm_hpcx("status", doc["run_id"]).stdout
    assert "study: 24 of 24 trials" in status and "best trial" in status


def test_a_worker_killed_mid_trial_loses_it_and_another_runs_it_again(slurm_hpcx, runs_root, tmp_path):
    slurm_hpcx.env["HPCX_TUNE_LOST_S"] = "4"  # passed into the job: three seconds of silence mark it lost
    slurm_hpcx.env["HPCX_TUNE_BEAT_S"] = "1"
    doc = slurm_hpcx.json("tune", str(_study(tmp_path, 6, 2)))
    run_dir = runs_root / doc["run_id"]
    files = TrialFiles(run_dir)
    deadline = time.monotonic() + 180
    while not (running := [t for t in files.trials().values() if t.state == "running" and t.doc]):
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.2)
    victim = running[0]
    os.kill(
        int(victim.doc["worker"]["pid"]), signal.SIGKILL
    )  # the test cluster's nodes share this machine's pids
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=300)
    assert row["tasks"] is None or row["state"] in ("FAILED", "COMPLETED")
    trials = files.trials()
    assert trials[victim.number].state == "lost"
    retries = [t for t in trials.values() if t.doc.get("retry_of") == victim.number]
    assert (
        len(retries) == 1
        and retries[0].params == victim.params
        and retries[0].state in ("complete", "stopped")
    )
    assert sorted(n for n in trials if n < 6) == list(range(6))
    assert all(t.state != "running" for t in trials.values())
