"""Proposals from Optuna's samplers over a study rebuilt from the trial files: reproducible from the files and the
seed, aware of running trials, conditional parameters asked only when active."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hpcx.errors import UsageError
from hpcx.tune import sampling
from hpcx.tune.spec import parse_study
from hpcx.tune.store import TrialFiles

pytest.importorskip("optuna")


def spec(sampler="tpe", **extra):
    doc = {
        "name": "t",
        "kind": "serial",
        "command": ["python", "train.py"],
        "space": {
            "lr": {"float": [1e-4, 1e-1], "log": True},
            "opt": {"choice": ["adam", "sgd"]},
            "mom": {"float": [0.0, 0.9], "when": {"opt": "sgd"}},
        },
        "objectives": {"metric": "loss"},
        "budget": {"trials": 40},
        "sampler": sampler,
        "seed": 11,
        **extra,
    }
    return parse_study(doc)


def loss(params):
    return (params["lr"] - 0.01) ** 2 + (0.05 if params["opt"] == "sgd" else 0.0)


def run_study(root: Path, study, n: int, *, running_every: int = 0):
    """Trials asked one after another; every ``running_every``-th one is left running while later ones are
    asked, and finished only at the end (as a slow worker's would be)."""
    files = TrialFiles(root)
    late = []
    for _ in range(n):
        trials = files.trials()
        number = min(set(range(n)) - set(trials))
        params, based = sampling.propose(study, trials, number)
        assert files.claim({"params": params, "based_on": based}, budget=n) == number
        files.record_rung(number, 1, loss(params) * 2)
        if running_every and number % running_every == 0:
            late.append(number)
            continue
        files.finish(number, "complete", values=[loss(params)])
    for number in late:
        files.finish(number, "complete", values=[loss(files.trials()[number].params)])
    return files.trials()


def test_every_proposal_is_replayed_bit_for_bit_from_the_files_and_the_seed(tmp_path):
    study = spec()
    trials = run_study(tmp_path, study, 24, running_every=3)
    for number, trial in trials.items():
        assert sampling.replay(study, trials, number) == trial.params, number
    # a trial that was running when trial 5 was asked counts as running in its replay, whatever it became
    assert [0, "running"] in trials[5].doc["based_on"] and trials[0].state == "complete"


def test_a_different_study_seed_gives_different_proposals(tmp_path):
    a = run_study(tmp_path / "a", spec(), 6)
    b = run_study(tmp_path / "b", spec(seed=12), 6)
    assert [t.params for t in a.values()] != [t.params for t in b.values()]


def test_conditional_parameters_are_asked_only_when_their_parent_allows(tmp_path):
    trials = run_study(tmp_path, spec("random"), 30)
    kinds = {t.params["opt"] for t in trials.values()}
    assert kinds == {"adam", "sgd"}
    for t in trials.values():
        assert ("mom" in t.params) == (t.params["opt"] == "sgd")
        assert 1e-4 <= t.params["lr"] <= 1e-1


def test_the_rebuilt_study_holds_running_stopped_failed_and_complete_trials(tmp_path):
    files = TrialFiles(tmp_path)
    study = spec()
    for n in range(5):
        params, based = sampling.propose(study, files.trials(), n)
        files.claim({"params": params, "based_on": based}, budget=5)
        files.record_rung(n, 3, float(n))
    files.finish(1, "complete", values=[0.5])
    files.finish(2, "stopped", rung=3)
    files.finish(3, "failed", reason="exit 1")
    files.finish(4, "lost")
    dists = {p.name: sampling.distribution(p) for p in study.space}
    optuna = sampling.optuna_module()
    built = sampling.rebuild(
        ["minimize"], optuna.samplers.RandomSampler(seed=0), list(files.trials().values()), dists
    )
    states = [t.state.name for t in built.trials]
    assert states == ["RUNNING", "COMPLETE", "PRUNED", "FAIL", "FAIL"]
    assert built.trials[1].values == [0.5] and built.trials[2].intermediate_values == {3: 2.0}


def test_the_grid_sampler_never_proposes_a_point_twice_while_others_run(tmp_path):
    doc = {
        "name": "g",
        "kind": "serial",
        "command": ["python", "x.py"],
        "space": {"a": {"choice": [1, 2, 3]}, "b": {"int": [0, 1]}},
        "objectives": {"metric": "loss"},
        "budget": {"trials": 6},
        "sampler": "grid",
    }
    files = TrialFiles(tmp_path)
    study = parse_study(doc)
    for n in range(6):  # every trial still running when the next is asked
        params, based = sampling.propose(study, files.trials(), n)
        files.claim({"params": params, "based_on": based}, budget=6)
    points = sorted((t.params["a"], t.params["b"]) for t in files.trials().values())
    assert points == [(a, b) for a in (1, 2, 3) for b in (0, 1)]


def test_without_optuna_the_error_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(UsageError) as err:
        sampling.optuna_module()
    assert str(err.value) == "hpcx tune needs Optuna, which is not installed here; pip install 'hpcx[tune]'"


def test_seeds_differ_per_trial_and_repeat_per_study():
    assert sampling.trial_seed(1, 5) == sampling.trial_seed(1, 5)
    assert len({sampling.trial_seed(1, n) for n in range(100)}) == 100
    assert sampling.trial_seed(1, 5) != sampling.trial_seed(2, 5)
    assert all(0 <= sampling.trial_seed(s, 0) < 2**32 for s in range(20))


def test_a_grid_drops_a_conditional_parameter_where_it_is_inactive_and_keeps_each_point_once():
    doc = {
        "name": "g",
        "kind": "serial",
        "command": ["python", "x.py"],
        "space": {"opt": {"choice": ["adam", "sgd"]}, "mom": {"int": [0, 1], "when": {"opt": "sgd"}}},
        "objectives": {"metric": "loss"},
        "budget": {"trials": 3},
        "sampler": "grid",
    }
    assert sampling.grid_points(parse_study(doc).space) == [
        {"opt": "adam"},
        {"opt": "sgd", "mom": 0},
        {"opt": "sgd", "mom": 1},
    ]
