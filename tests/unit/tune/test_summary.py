"""A study at a glance: counts per state, where trials stopped, rung occupancy, the best complete trial."""

from __future__ import annotations

import json
from pathlib import Path

from hpcx.rundir.layout import STUDY_FILE
from hpcx.tune.store import TrialFiles
from hpcx.tune.summary import study_summary, summary_text


def make(tmp_path: Path, direction: str = "minimize") -> TrialFiles:
    spec = {"budget": {"trials": 10}, "objectives": [{"metric": "loss", "direction": direction}]}
    (tmp_path / STUDY_FILE).write_text(json.dumps({"format": 1, "digest": "x", "spec": spec}))
    files = TrialFiles(tmp_path)
    for n, lr in enumerate([0.1, 0.01, 0.001, 0.3, 0.5, 0.2]):
        files.claim({"params": {"lr": lr, "opt": "adam"}}, budget=10)
        files.record_rung(n, 3, float(n))
    files.record_rung(0, 9, 0.5)
    files.finish(0, "complete", values=[0.25])
    files.finish(1, "complete", values=[0.125])
    files.finish(2, "stopped", rung=3)
    files.finish(3, "stopped", rung=3)
    files.finish(4, "lost")
    return files


def test_the_summary_counts_states_rungs_and_names_the_best(tmp_path):
    make(tmp_path)
    s = study_summary(tmp_path)
    assert s == {
        "trials": 6,
        "retries": 0,
        "budget": 10,
        "states": {"complete": 2, "lost": 1, "running": 1, "stopped": 2},
        "stopped_at": {"3": 2},
        "rungs": {"3": 6, "9": 1},
        "objectives": ["loss"],
        "best": {"trial": 1, "values": [0.125], "params": {"lr": 0.01, "opt": "adam"}},
    }
    assert summary_text(s) == (
        "study: 6 of 10 trials: 1 running, 2 stopped (rung 3: 2), 2 complete, 1 lost; "
        "best trial 1 loss=0.125 (lr=0.01, opt=adam)"
    )


def test_maximize_picks_the_largest_and_a_run_without_a_study_has_no_summary(tmp_path):
    (tmp_path / "s").mkdir()
    make(tmp_path / "s", "maximize")
    assert study_summary(tmp_path / "s")["best"]["trial"] == 0
    assert study_summary(tmp_path) is None


def test_before_any_trial_completes_there_is_no_best(tmp_path):
    (tmp_path / STUDY_FILE).write_text(
        json.dumps({"spec": {"budget": {"trials": 3}, "objectives": [{"metric": "m"}]}})
    )
    TrialFiles(tmp_path).claim({"params": {}}, budget=3)
    s = study_summary(tmp_path)
    assert s["best"] is None and summary_text(s) == "study: 1 of 3 trials: 1 running"


def test_a_lost_trials_retry_is_counted_apart_from_the_configurations(tmp_path):
    files = make(tmp_path)
    files.claim({"params": {"lr": 0.5, "opt": "adam"}}, budget=10, retry_of=4)
    s = study_summary(tmp_path)
    assert s["trials"] == 6 and s["retries"] == 1 and s["states"]["running"] == 2
    assert summary_text(s).startswith(
        "study: 6 of 10 trials (1 run again after their worker was lost): 2 running"
    )
