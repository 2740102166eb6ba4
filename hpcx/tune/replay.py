"""`hpcx tune --replay STUDY`: every proposal and every stop of a study derived again from its files and its seed,
and where they differ from what happened.

A proposal is asked again from the trials it was based on, each in the state it had then (hpcx.tune.sampling);
a retry of a lost trial took the lost trial's parameters and is checked against them. A stop is decided again
from the values recorded at the rung up to the trial's own (hpcx.tune.stopping): a trial that was stopped must be
stopped again at the same rung, and one that went on past a rung must go on again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcx.tune import sampling
from hpcx.tune.spec import parse_study
from hpcx.tune.stopping import decide
from hpcx.tune.store import Trial, TrialFiles, rung_values
from hpcx.tune.summary import study_spec_doc


def replay_study(run_dir: Path) -> dict[str, Any]:
    """``{"proposals", "decisions", "differences": [...]}`` for the study in ``run_dir``."""
    from hpcx.errors import UsageError
    from hpcx.tune.worker import rule_of

    doc = study_spec_doc(run_dir)
    if doc is None:
        raise UsageError(
            f"{run_dir} is no tuning study (it has no study.json)", hint="give the run id of a study"
        )
    spec = parse_study(doc)
    trials = TrialFiles(run_dir).trials()
    differences: list[dict[str, Any]] = []
    proposals = sum(_check_proposal(spec, trials, t, differences) for t in trials.values())
    rule = rule_of(spec)
    values = rung_values(trials.values())
    decisions = 0
    if rule.name != "none":
        for trial in trials.values():
            decisions += _check_stops(rule, values, trial, differences)
    return {"proposals": proposals, "decisions": decisions, "differences": differences}


def _check_proposal(spec: Any, trials: dict[int, Trial], trial: Trial, out: list[dict[str, Any]]) -> int:
    if not trial.doc:
        return 0
    retry_of = trial.doc.get("retry_of")
    if retry_of is not None:
        expected = trials[retry_of].params if retry_of in trials else None
    else:
        expected = sampling.replay(spec, trials, trial.number)
    if expected != trial.params:
        out.append(
            {"trial": trial.number, "what": "parameters", "recorded": trial.params, "replayed": expected}
        )
    return 1


def _check_stops(rule: Any, values: Any, trial: Trial, out: list[dict[str, Any]]) -> int:
    stopped_at = (trial.end or {}).get("rung") if trial.state == "stopped" else None
    checked = 0
    for rung in sorted(r for r in trial.rungs if r in rule.rungs):
        decision = decide(rule, values, trial.number, rung)
        checked += 1
        if decision.continue_ == (stopped_at == rung):
            recorded = "stopped" if stopped_at == rung else "went on"
            replayed = "went on" if decision.continue_ else "stopped"
            out.append(
                {"trial": trial.number, "what": f"rung {rung}", "recorded": recorded, "replayed": replayed}
            )
    return checked


def replay_text(doc: dict[str, Any]) -> str:
    head = f"replayed {doc['proposals']} proposals and {doc['decisions']} stopping decisions"
    if not doc["differences"]:
        return head + ": all agree with what happened"
    lines = [head + f": {len(doc['differences'])} differ"]
    for d in doc["differences"]:
        lines.append(f"  trial {d['trial']} {d['what']}: recorded {d['recorded']}, replayed {d['replayed']}")
    return "\n".join(lines)
