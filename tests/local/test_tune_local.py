"""`hpcx tune` end to end on the local backend: the study's spec written before its workers start, two worker
tasks sharing the budget, every trial ended; the dry run; bad specs refused with exit 2 and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcx.rundir.layout import STUDY_FILE
from hpcx.tune.store import TrialFiles

pytest.importorskip("optuna")

TRAIN = """
import math, sys, time
from hpcx import runtime
lr, layers = float(sys.argv[1]), int(sys.argv[2])
for step in range(1, 28):
    time.sleep(0.03)
    runtime.log(step, loss=abs(math.log10(lr) + 2) + 1.0 / (step * layers))
"""

SPEC = """
name: lr-search
kind: serial
command: [python, {train}, "{{lr}}", "{{layers}}"]
space:
  lr: {{float: [1.0e-4, 1.0], log: true}}
  layers: {{int: [1, 4]}}
objectives: {{metric: loss, direction: minimize}}
budget: {{trials: 8, resource: {{min: 1, max: 27}}}}
sampler: tpe
stopping: {{rule: asha, eta: 3}}
workers: 2
"""


def write_spec(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(TRAIN)
    spec = tmp_path / "study.yaml"
    spec.write_text(SPEC.format(train=tmp_path / "train.py"))
    return spec


def test_a_study_runs_to_its_budget_with_two_workers(hpcx, runs_root, tmp_path):
    doc = hpcx.json("tune", str(write_spec(tmp_path)))
    assert doc["workers"] == 2 and doc["trials"] == 8 and doc["study"] == "lr-search"
    run_dir = runs_root / doc["run_id"]
    study = json.loads((run_dir / STUDY_FILE).read_text())
    assert study["spec"]["budget"]["trials"] == 8 and len(study["digest"]) == 64
    row = hpcx.wait_finished(doc["run_id"], timeout_s=240)
    assert row["state"] == "COMPLETED"
    trials = TrialFiles(run_dir).trials()
    assert sorted(trials) == list(range(8))
    assert {t.state for t in trials.values()} <= {"complete", "stopped"}
    study_row = hpcx.json("status", doc["run_id"])["runs"][0]["study"]
    assert study_row["trials"] == 8 and sum(study_row["states"].values()) == 8
    assert study_row["best"]["trial"] in trials and "best trial" in hpcx("status", doc["run_id"]).stdout
    # --confirm: the two best configurations again, two seeds each, as one sweep that hpcx compare reads
    best = sorted((t for t in trials.values() if t.state == "complete"), key=lambda t: t.end["values"][0])[:2]
    if len(best) == 2:
        sweep = hpcx.json("tune", "--confirm", doc["run_id"], "--best", "2", "--seeds", "2")
        assert sweep["compare"] == f"hpcx compare --sweep {sweep['run_id']} --metric loss"
        hpcx.wait_finished(sweep["run_id"], timeout_s=120)
        table = [
            json.loads(line)
            for line in (runs_root / sweep["run_id"] / "tasks.jsonl").read_text().splitlines()
        ]
        assert sorted({json.dumps(r["params"], sort_keys=True) for r in table}) == sorted(
            json.dumps(t.params, sort_keys=True) for t in best
        )
        assert len(table) == 4 and len({r["seed"] for r in table}) == 4
        compared = hpcx.json("compare", "--sweep", sweep["run_id"], "--metric", "loss")
        assert len(compared["groups"]) == 2 and all(g["n"] == 2 for g in compared["groups"])
    too_many = hpcx("tune", "--confirm", doc["run_id"], "--best", "9", check=False)
    assert (
        too_many.returncode == 2 and "--confirm 9" in too_many.stderr and "complete trials" in too_many.stderr
    )
    # the local backend runs an array's tasks one after another: the first worker may spend the whole budget
    assert {t.doc["worker"]["task"] for t in trials.values()} <= {"0", "1"}
    assert all(t.doc["worker"]["job_id"] is None and t.doc["worker"]["pid"] > 0 for t in trials.values())


def test_the_dry_run_shows_the_study_and_submits_nothing(hpcx, runs_root, tmp_path):
    out = hpcx("tune", str(write_spec(tmp_path)), "--dry-run").stdout
    assert "# study lr-search: 8 trials by 2 workers, sampler tpe, stopping asha at rungs 1, 3, 9" in out
    assert "--array=0-1" in out or "--array 0-1" in out
    assert list(runs_root.iterdir()) == []


def test_a_bad_spec_is_refused_with_exit_2_and_nothing_written(hpcx, runs_root, tmp_path):
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text().replace("[1.0e-4, 1.0], log: true", "[0.0, 1.0], log: true"))
    proc = hpcx("tune", str(spec), check=False)
    assert proc.returncode == 2 and "space.lr" in proc.stderr
    missing = hpcx("tune", str(tmp_path / "nope.yaml"), check=False)
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr
    too_many = hpcx("tune", str(write_spec(tmp_path)), "--workers", "9", check=False)
    assert too_many.returncode == 2 and "takes 1 to 8 workers" in too_many.stderr
    assert [p.name for p in runs_root.iterdir()] == []


SLOW = """
import math, sys, time
from hpcx import runtime
lr, layers = float(sys.argv[1]), int(sys.argv[2])
for step in range(1, 28):
    time.sleep(0.1)
    runtime.log(step, loss=abs(math.log10(lr) + 2) + 1.0 / (step * layers))
"""


def _wait_for(predicate, timeout_s: float, what: str):
    import time

    deadline = time.monotonic() + timeout_s
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"{what} not seen in {timeout_s} s"
        time.sleep(0.1)
    return found


def test_a_cancelled_study_resumes_its_lost_trial_and_goes_on_to_the_budget(hpcx, runs_root, tmp_path):
    spec = write_spec(tmp_path)
    (tmp_path / "train.py").write_text(SLOW)
    spec.write_text(spec.read_text().replace("trials: 8", "trials: 4").replace("workers: 2", "workers: 1"))
    hpcx.env.update(HPCX_TUNE_BEAT_S="0.3", HPCX_TUNE_LOST_S="3")  # ten beats: robust on a loaded machine
    doc = hpcx.json("tune", str(spec))
    run_dir = runs_root / doc["run_id"]
    files = TrialFiles(run_dir)
    _wait_for(lambda: 1 in files.trials(), 60, "trial 1")
    hpcx("cancel", doc["run_id"])
    hpcx.wait_finished(doc["run_id"], timeout_s=60)
    cut = files.trials()
    running = [n for n, t in cut.items() if t.end is None]
    assert running, cut  # the cancel left a trial unfinished

    changed = tmp_path / "changed.yaml"
    changed.write_text(spec.read_text().replace("trials: 4", "trials: 5"))
    refused = hpcx("tune", "--resume", doc["run_id"], str(changed), check=False)
    assert (
        refused.returncode == 2
        and "differs from the spec study" in refused.stderr
        and "budget" in refused.stderr
    )

    resumed = hpcx.json("tune", "--resume", doc["run_id"], str(spec))
    assert resumed["study_run"] == doc["run_id"] and resumed["run_id"] != doc["run_id"]
    hpcx.wait_finished(resumed["run_id"], timeout_s=240)
    trials = files.trials()
    assert all(trials[n].state in ("complete", "stopped") for n in range(4) if n not in running)
    for n in running:
        assert trials[n].state == "lost"
        assert [t.state for t in trials.values() if t.doc.get("retry_of") == n] in (["complete"], ["stopped"])
    again = hpcx("tune", "--resume", doc["run_id"], check=False)
    assert again.returncode == 2 and "has spent its budget of 4 trials" in again.stderr
