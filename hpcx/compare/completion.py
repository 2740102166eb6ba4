"""Which replicates ran to completion: Slurm's state of a sweep's tasks, or what a replicate's own profile
records say; only completed replicates count unless --include-failed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpcx.compare.grouping import group_of
from hpcx.compare.replicates import Options, Replicate
from hpcx.reports.terminal import count as _count
from hpcx.rundir.layout import profile_dir
from hpcx.runs import Run


def replicate_states(run: Run, reps: Sequence[Replicate]) -> dict[int | None, str | None]:
    """Each replicate's final state (task id, None for a single run -> state): Slurm's for a sweep's tasks
    (one batched query over its arrays), else what the replicate's own profile records say (COMPLETED when
    every rank ended with 0, FAILED when one did not, UNFINISHED when one has no end record); None when
    neither knows (no Slurm job, never profiled)."""
    slurm: dict[int, str] = {}
    if run.job.get("chunks"):
        from hpcx.errors import HpcxError
        from hpcx.submit.sweep_submit import task_states

        try:
            slurm = task_states(run)
        except (HpcxError, OSError):
            slurm = {}  # no scheduler to ask here: the records decide
    out: dict[int | None, str | None] = {}
    for rep in reps:
        state = slurm.get(rep.task) if rep.task is not None else None
        out[rep.task] = state if state not in (None, "UNKNOWN") else _recorded_state(rep)
    return out


def _recorded_state(rep: Replicate) -> str | None:
    from hpcx.reports.build import _state, summarize_ranks

    profile = profile_dir(rep.run.dir, rep.task)
    ranks = summarize_ranks(profile, 1) if profile.is_dir() else []
    return _state(ranks, None)[0] if ranks else None


def _left_out_why(state: str) -> str:
    from hpcx.schedulers.base import ACTIVE_STATES

    return "still running or pending" if state in ACTIVE_STATES or state == "UNFINISHED" else state


def leave_out_unfinished(
    runs: Sequence[Run], reps: list[Replicate], options: Options
) -> tuple[list[Replicate], list[dict[str, Any]]]:
    """The replicates that count: those that completed, or whose state nobody knows (a run without Slurm or
    records); with ``include_failed`` every one. The others come back as ``left_out`` rows: group, run,
    task, state and why."""
    if options.include_failed:
        return reps, []
    states: dict[tuple[str, int | None], str | None] = {}
    for run in runs:
        mine = [r for r in reps if r.run is run]
        states.update({(run.id, task): s for task, s in replicate_states(run, mine).items()})
    kept, left_out = [], []
    for rep in reps:
        state = states.get((rep.run.id, rep.task))
        if state is None or state == "COMPLETED":
            kept.append(rep)
        else:
            left_out.append(
                {
                    "group": group_of(rep, options.by)[0],
                    "run_id": rep.run.id,
                    "task": rep.task,
                    "seed": rep.seed,
                    "state": state,
                    "why": _left_out_why(state),
                }
            )
    return kept, left_out


def left_out_notes(left_out: Sequence[dict[str, Any]]) -> list[str]:
    """One note per group with replicates left out: how many, and why."""
    by_group: dict[str, dict[str, int]] = {}
    for row in left_out:
        whys = by_group.setdefault(row["group"], {})
        whys[row["why"]] = whys.get(row["why"], 0) + 1
    return [
        f"{name}: {_count(sum(whys.values()), 'replicate')} left out ("
        + ", ".join(f"{n} {why}" for why, n in whys.items())
        + "; only completed tasks and runs count, --include-failed keeps them)"
        for name, whys in by_group.items()
    ]
