"""Workers of a study as real processes (no scheduler): they share the budget without duplicates, record rungs and
stop trials exactly as the rule decides from the files, end each trial complete, stopped or failed, and a
worker killed mid-trial loses that trial to another worker, which tries it again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcx.rundir.layout import STUDY_FILE
from hpcx.tune import stopping
from hpcx.tune.spec import parse_study, spec_digest
from hpcx.tune.store import TrialFiles, rung_values
from hpcx.tune.worker import rule_of

pytest.importorskip("optuna")
REPO = Path(__file__).resolve().parents[3]
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "SLURM_"))}

# A training script as a user writes it: its loss depends on lr; it stops when asked at a step boundary.
COMMAND_SCRIPT = """
import math, sys, time
from hpcx import runtime
from hpcx.runtime import preempt
lr, steps, pause = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
state = preempt.install()
for step in range(1, steps + 1):
    time.sleep(pause)
    runtime.log(step, loss=abs(math.log10(lr) + 2) + 1.0 / step)
    if preempt.should_stop(state, step=step):
        sys.exit(0)
"""

API_SCRIPT = """
import math, time
import hpcx.tune
trial = hpcx.tune.trial()
for step in range(1, 28):
    time.sleep(0.15)
    trial.report(step, abs(math.log10(trial.params["lr"]) + 2) + 1.0 / step)
    if trial.should_stop():
        print("stopped", trial.number, step, flush=True)
        break
"""


def make_study(tmp_path: Path, script: str, command_tail: list[str], trials: int, **extra) -> Path:
    (tmp_path / "train.py").write_text(script)
    doc = {
        "name": "t",
        "kind": "serial",
        "command": ["python", str(tmp_path / "train.py"), *command_tail],
        "space": {"lr": {"float": [1e-4, 1.0], "log": True}},
        "objectives": {"metric": "loss"},
        "budget": {"trials": trials, "resource": {"min": 1, "max": 27}},
        "sampler": "random",
        "stopping": {"rule": "asha", "eta": 3},
        "seed": 5,
        **extra,
    }
    spec = parse_study(doc)
    run_dir = tmp_path / "study"
    (run_dir / "trials").mkdir(parents=True)
    (run_dir / STUDY_FILE).write_text(
        json.dumps({"format": 1, "digest": spec_digest(spec), "spec": spec.to_dict()})
    )
    return run_dir


def start_worker(run_dir: Path, task: int, **env: str) -> subprocess.Popen[str]:
    full = {
        **CLEAN,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HPCX_RUN_DIR": str(run_dir),
        "HPCX_TASK_ID": str(task),
        "HPCX_CONTROL_INTERVAL_S": "0.05",
        "HPCX_TUNE_BEAT_S": "0.2",
        "HPCX_TUNE_LOST_S": "5",  # a loaded machine may starve a live worker's beat for a second
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "hpcx.tune.worker"],
        env=full,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen[str]], timeout_s: float = 120) -> list[str]:
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout_s)
        assert proc.returncode == 0, err
        outs.append(out)
    return outs


def check_decisions(run_dir: Path) -> dict[int, str]:
    """Every stop and every continuation agrees with the rule re-deciding from the files."""
    spec = parse_study(json.loads((run_dir / STUDY_FILE).read_text())["spec"])
    rule = rule_of(spec)
    trials = TrialFiles(run_dir).trials()
    values = rung_values(trials.values())
    for trial in trials.values():
        for rung in sorted(trial.rungs):
            decision = stopping.decide(rule, values, trial.number, rung)
            stopped_here = trial.state == "stopped" and trial.end["rung"] == rung
            assert decision.continue_ != stopped_here, (trial.number, rung, decision)
        if trial.state == "stopped":
            assert max(trial.rungs) == trial.end["rung"]  # no rung recorded after its stop
    return {n: t.state for n, t in trials.items()}


def test_two_workers_share_the_budget_and_stop_trials_as_the_rule_decides(tmp_path):
    run_dir = make_study(tmp_path, COMMAND_SCRIPT, ["{lr}", "27", "0.03"], trials=10)
    outs = finish([start_worker(run_dir, 0), start_worker(run_dir, 1)])
    states = check_decisions(run_dir)
    assert sorted(states) == list(range(10))
    assert set(states.values()) <= {"complete", "stopped"} and "stopped" in states.values()
    ran = [int(o.split("ran ")[1].split()[0]) for o in outs]
    assert sum(ran) == 10 and min(ran) >= 1
    trials = TrialFiles(run_dir).trials()
    for trial in trials.values():
        if trial.state == "complete":
            assert trial.end["values"][0] == pytest.approx(
                abs(__import__("math").log10(trial.params["lr"]) + 2) + 1 / 27
            )
    assert not (run_dir / "control" / "task-00000" / "stop.json").exists()  # one trial's request, cleared


def test_a_stopped_trial_really_ends_soon_after_its_rung(tmp_path):
    run_dir = make_study(
        tmp_path,
        COMMAND_SCRIPT,
        ["{lr}", "400", "0.02"],
        trials=4,
        budget={"trials": 4, "resource": {"min": 1, "max": 400}},
    )
    t0 = time.monotonic()
    finish([start_worker(run_dir, 0)])
    trials = TrialFiles(run_dir).trials()
    stopped = [t for t in trials.values() if t.state == "stopped"]
    assert stopped
    # 4 trials of 400 steps at 20 ms would take 32 s: stopped ones end within a second of their rung
    complete = sum(t.state == "complete" for t in trials.values())
    assert time.monotonic() - t0 < complete * 10 + len(stopped) * 4 + 10


def test_the_python_api_gives_the_parameters_and_says_when_to_stop(tmp_path):
    run_dir = make_study(tmp_path, API_SCRIPT, [], trials=5)
    out = finish([start_worker(run_dir, 0)])[0]
    states = check_decisions(run_dir)
    stopped = {n for n, s in states.items() if s == "stopped"}
    assert (
        stopped
        and {int(line.split()[1]) for line in out.splitlines() if line.startswith("stopped")} == stopped
    )


def test_a_trial_that_fails_or_logs_no_objective_is_failed_with_the_reason(tmp_path):
    script = "import sys\nsys.exit(int(sys.argv[1]))\n"
    run_dir = make_study(tmp_path, script, ["{trial}"], trials=2, stopping="none", budget={"trials": 2})
    finish([start_worker(run_dir, 0)])
    trials = TrialFiles(run_dir).trials()
    assert trials[0].end["state"] == "failed" and "logged no value of loss" in trials[0].end["reason"]
    assert trials[1].end == {**trials[1].end, "state": "failed", "exit_code": 1}


def test_a_worker_killed_mid_trial_loses_it_and_another_tries_it_again(tmp_path):
    run_dir = make_study(
        tmp_path, COMMAND_SCRIPT, ["{lr}", "27", "0.2"], trials=2, stopping="none", budget={"trials": 2}
    )
    victim = start_worker(run_dir, 0)
    files = TrialFiles(run_dir)
    deadline = time.monotonic() + 30
    while 0 not in files.trials():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    finish([start_worker(run_dir, 1, HPCX_TUNE_LOST_S="1.0")], timeout_s=180)
    trials = files.trials()
    assert trials[0].state == "lost" and trials[0].end["silent_s"] >= 1.0
    retry = [t for t in trials.values() if t.doc.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].number == 2 and retry[0].params == trials[0].params
    assert retry[0].state == "complete" and trials[1].state == "complete"


def test_replay_agrees_with_a_real_study_and_names_what_was_tampered_with(tmp_path):
    from hpcx.rundir.layout import trial_file
    from hpcx.tune.replay import replay_study, replay_text

    run_dir = make_study(tmp_path, COMMAND_SCRIPT, ["{lr}", "27", "0.02"], trials=8, sampler="tpe")
    finish([start_worker(run_dir, 0), start_worker(run_dir, 1)])
    doc = replay_study(run_dir)
    assert doc["differences"] == [] and doc["proposals"] == 8 and doc["decisions"] >= 8
    assert replay_text(doc).endswith("all agree with what happened")
    # another lr in trial 3's file, as if the sampler had proposed something else
    path = trial_file(run_dir, 3)
    record = json.loads(path.read_text())
    record["params"]["lr"] = 0.5
    path.write_text(json.dumps(record))
    trials = TrialFiles(run_dir).trials()
    arrivals = rung_values(trials.values())
    # a trial that went on past a rung where it was not the first to arrive (the first always goes on)
    number, first = next(
        (n, r)
        for r, entries in sorted(arrivals.items())
        for n, _ in entries[1:]
        if not (trials[n].state == "stopped" and trials[n].end["rung"] == r)
    )
    went_on = trials[number]
    rung = trial_file(run_dir, went_on.number, rung=first)
    rung_doc = json.loads(rung.read_text())
    rung_doc["value"] = 1e9  # now the worst at its rung: the rule would have stopped it
    rung.write_text(json.dumps(rung_doc))
    differences = replay_study(run_dir)["differences"]
    assert {"trial": 3, "what": "parameters", "recorded": record["params"]} in [
        {k: d[k] for k in ("trial", "what", "recorded")} for d in differences
    ]
    assert {
        "trial": went_on.number,
        "what": f"rung {first}",
        "recorded": "went on",
        "replayed": "stopped",
    } in differences
