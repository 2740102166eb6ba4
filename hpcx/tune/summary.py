"""A study at a glance, from one listing of its trials: how many trials are running, stopped (at which rung),
complete, failed or lost; how many values each rung holds; the best trial so far. `hpcx status STUDY` shows it
(``study`` in each run's row) and `hpcx report` and the dashboard read the same document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hpcx.rundir.layout import STUDY_FILE
from hpcx.tune.store import Trial, TrialFiles


def study_spec_doc(run_dir: Path) -> dict[str, Any] | None:
    """The study spec (canonical form) a run directory holds, None for a run that is no study."""
    try:
        doc = json.loads((run_dir / STUDY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    spec = doc.get("spec") if isinstance(doc, dict) else None
    return spec if isinstance(spec, dict) else None


def study_summary(run_dir: Path) -> dict[str, Any] | None:
    """``{"trials", "retries", "budget", "states", "stopped_at", "rungs", "best", "objectives"}`` of the study
    in ``run_dir`` (``states`` counts the retries too); None for a run that is no study."""
    spec = study_spec_doc(run_dir)
    if spec is None:
        return None
    trials = TrialFiles(run_dir).trials()
    objectives = [(o["metric"], o.get("direction", "minimize")) for o in spec.get("objectives") or []]
    states: dict[str, int] = {}
    stopped_at: dict[int, int] = {}
    rungs: dict[int, int] = {}
    for trial in trials.values():
        states[trial.state] = states.get(trial.state, 0) + 1
        if trial.state == "stopped" and isinstance((trial.end or {}).get("rung"), int):
            stopped_at[trial.end["rung"]] = stopped_at.get(trial.end["rung"], 0) + 1  # type: ignore[index]
        for rung in trial.rungs:
            rungs[rung] = rungs.get(rung, 0) + 1
    retries = sum(1 for t in trials.values() if t.doc.get("retry_of") is not None)
    return {
        "trials": len(trials) - retries,  # configurations tried; a lost trial's retry is not another one
        "retries": retries,
        "budget": (spec.get("budget") or {}).get("trials"),
        "states": dict(sorted(states.items())),
        "stopped_at": {str(k): v for k, v in sorted(stopped_at.items())},
        "rungs": {str(k): v for k, v in sorted(rungs.items())},
        "objectives": [m for m, _ in objectives],
        "best": best_trial(trials.values(), objectives),
    }


def best_trial(trials: Any, objectives: list[tuple[str, str]]) -> dict[str, Any] | None:
    """The best complete trial by the first objective (its number, values and parameters); None before one
    completes. With several objectives the first one ranks; the Pareto front is the report's."""
    done = [t for t in trials if t.state == "complete" and t.end and t.end.get("values")]
    if not done or not objectives:
        return None
    sign = -1.0 if objectives[0][1] == "maximize" else 1.0
    best: Trial = min(done, key=lambda t: (sign * float(t.end["values"][0]), t.number))
    return {"trial": best.number, "values": best.end["values"], "params": best.params}  # type: ignore[index]


def summary_text(summary: dict[str, Any]) -> str:
    """One line: ``study: 14 of 24 trials: 3 running, 9 stopped (rung 3: 6, rung 9: 3), 2 complete; best trial 4
    loss=0.1234 (lr=0.003, width=64)``."""
    states = dict(summary["states"])
    parts = []
    for state in ("running", "stopped", "complete", "failed", "lost"):
        if states.get(state):
            where = ""
            if state == "stopped" and summary["stopped_at"]:
                where = " (" + ", ".join(f"rung {r}: {n}" for r, n in summary["stopped_at"].items()) + ")"
            parts.append(f"{states[state]} {state}{where}")
    retried = (
        f" ({summary['retries']} run again after their worker was lost)" if summary.get("retries") else ""
    )
    line = f"study: {summary['trials']} of {summary['budget']} trials{retried}"
    line += ": " + ", ".join(parts) if parts else ""
    best = summary.get("best")
    if best:
        values = ", ".join(f"{m}={v:.4g}" for m, v in zip(summary["objectives"], best["values"]))
        params = ", ".join(f"{k}={_short(v)}" for k, v in best["params"].items())
        line += f"; best trial {best['trial']} {values} ({params})"
    return line


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
