"""The live state of runs as the scheduler reports it: one row per run (a sweep's tasks merged over its arrays,
an array narrowed to one task), asked in one batched query per scheduler; which runs a command means; cancelling
their jobs; the accounting record kept once they are done; the run index's rows with their states brought up to
date (`hpcx runs`)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcx.runs import Run, find_run_task, job_refs, list_runs, task_job_ids
from hpcx.schedulers import FINISHED_STATES, JobRef, JobState, get_scheduler
from hpcx.schedulers.base import overall_state

if TYPE_CHECKING:
    from hpcx.runs.index import RunFilter

NEWEST_SHOWN = 20  # runs shown without RUN or --all


def job_states(runs: Sequence[Run], tasks: Sequence[int | None] = ()) -> list[dict[str, Any]]:
    """One row per run with its job's state; one batched scheduler query per scheduler for every run shown,
    sweeps (all their arrays) and jobs alike, never one per job. ``tasks[i]``, when given and not None, narrows
    run i's row to that one task of its sweep or array."""
    states = _ask_schedulers(runs)
    return [
        _row(run, states.get(_scheduler(run), {}), tasks[n] if n < len(tasks) else None)
        for n, run in enumerate(runs)
    ]


def _scheduler(run: Run) -> str:
    return run.job.get("scheduler", "slurm")


def _ask_schedulers(runs: Sequence[Run]) -> dict[str, dict[str, JobState]]:
    """Each scheduler's answer for the jobs of ``runs``: a sweep's tasks over its arrays (and retries), a job's
    id; runs never submitted ask nothing."""
    by_scheduler: dict[str, list[JobRef]] = {}
    for run in runs:
        if "chunks" in run.job:  # a sweep: its tasks, merged over its arrays (and retries)
            refs = job_refs(run)
        elif run.job:
            refs = [JobRef(str(run.job["job_id"]), run.dir)]
        else:
            continue
        by_scheduler.setdefault(_scheduler(run), []).extend(refs)
    return {name: get_scheduler(name).status(refs) for name, refs in by_scheduler.items()}


def _row(run: Run, answer: dict[str, JobState], task: int | None) -> dict[str, Any]:
    """``run``'s row from its scheduler's ``answer``; with ``task``, that task's."""
    if "chunks" in run.job:
        return sweep_row(run, answer, task)
    row = _job_row(run)
    state = answer.get(str(run.job.get("job_id"))) if run.job else None
    if state is not None:
        # exit_code as runs and report show it (JobState.shown_exit_code)
        row.update({k: v for k, v in state.to_dict().items() if k != "job_id"})
    return row if task is None else _array_task_row(row, state, task)


def _job_row(run: Run) -> dict[str, Any]:
    """A job's row before the scheduler answers: the same keys whether or not the scheduler still knows it."""
    job = run.job
    return {
        "run_id": run.id,
        "job_id": job.get("job_id"),
        "kind": _kind(run),
        "state": "UNSUBMITTED" if not job else "UNKNOWN",
        "exit_code": None,
        "reason": None,
        "nodes": None,
        "elapsed_s": None,
        "source": None,
        "tasks": None,
        "finished": False,
    }


def sweep_row(run: Run, states: dict[str, JobState] | None = None, task: int | None = None) -> dict[str, Any]:
    """A sweep's row from the scheduler's ``states`` of its arrays (asked for here when None); with ``task``,
    that task's state alone (the array that ran it last)."""
    from hpcx.submit.sweep_submit import summarize, task_states

    per_task = task_states(run, states)
    job_id: str | None
    if task is not None:
        state = per_task.get(task, "UNKNOWN")
        job_id, counts, named = task_job_ids(run, task)[-1], None, {"task": task}
    else:
        counts = summarize(per_task)
        state, job_id, named = overall_state(counts), run.job.get("job_id"), {}
    return {
        "run_id": run.id,
        **named,
        "job_id": job_id,
        "kind": _kind(run),
        "state": state,
        "exit_code": None,
        "reason": None,
        "nodes": None,
        "elapsed_s": None,
        "source": "sweep",
        "tasks": counts,
        "finished": state in FINISHED_STATES,
    }


def _array_task_row(row: dict[str, Any], state: JobState | None, task: int) -> dict[str, Any]:
    """A job array's row narrowed to array task ``task``: its state as Slurm listed it (pending while it is
    only part of "the rest of the array"; unknown once the array is done without listing it)."""
    listed = (state.task_states or {}) if state is not None else {}
    if task in listed:
        one = listed[task]
    elif state is None or not state.finished:
        one = "PENDING" if row["state"] != "UNSUBMITTED" else "UNSUBMITTED"
    else:
        one = state.state if not listed else "UNKNOWN"
    return {
        **row,
        "task": task,
        "job_id": f"{row['job_id']}_{task}",
        "state": one,
        "tasks": None,
        "exit_code": None if one != row["state"] else row["exit_code"],
        "finished": one in FINISHED_STATES,
    }


def _kind(run: Run) -> str | None:
    """The job kind as the manifest records it (serial, mpi, ...: what `hpcx runs` shows), read from job.json
    (written at submit, small); a sweep's job.json says "sweep", and older runs have no kind there."""
    kind = run.job.get("kind")
    if kind and kind != "sweep":
        return kind
    return run.manifest.get("kind", {}).get("value") or kind


def runs_asked(root: Path, keys: Sequence[str], show_all: bool = False) -> tuple[list[Run], list[int | None]]:
    """The runs that `hpcx status RUN ...` means, and the task each key names (RUN_TASK; None for a whole run):
    without keys, the newest NEWEST_SHOWN runs (all of them with ``show_all``) and no tasks."""
    asked = [find_run_task(root, key) for key in keys]
    if keys:
        return [run for run, _ in asked], [task for _, task in asked]
    chosen = list_runs(root)
    return (chosen if show_all else chosen[-NEWEST_SHOWN:]), []


def status_docs(
    root: Path, keys: Sequence[str], show_all: bool = False, *, watch: bool = False, interval_s: float = 2.0
) -> Iterator[dict[str, Any]]:
    """`hpcx status`'s documents (``{"runs": rows}``) for the runs ``keys`` ask for (runs_asked): one, or with
    ``watch`` one every ``interval_s`` until every job has finished. Runs asked for by name keep their accounting
    record once they are done (one sacct for all)."""
    chosen, tasks = runs_asked(root, keys, show_all)
    while True:
        doc = {"runs": job_states(chosen, tasks)}
        if keys:
            record_finished_accounting(chosen, doc["runs"])
        yield doc
        if not watch or all(r["finished"] for r in doc["runs"]):
            return
        time.sleep(interval_s)


def cancel_jobs(found: Sequence[tuple[Run, int | None]]) -> list[str]:
    """Cancel the jobs of each (run, task): every array of a sweep (its chunks, those chained after them, its
    retries), or one task of a sweep or array; one cancel call per scheduler. Returns the names cancelled."""
    by_scheduler: dict[str, list[JobRef]] = {}
    for run, task in found:
        refs = job_refs(run) if task is None else [JobRef(i, run.dir) for i in task_job_ids(run, task)[-1:]]
        by_scheduler.setdefault(_scheduler(run), []).extend(refs)
    for name, refs in by_scheduler.items():
        get_scheduler(name).cancel(refs)
    return [run.id if task is None else f"{run.id}_{task}" for run, task in found]


def record_finished_accounting(runs: Sequence[Run], rows: Sequence[dict[str, Any]]) -> None:
    """Write accounting.json for finished Slurm runs that lack a final one (see provenance.record_accounting),
    with one sacct call for them all."""
    from hpcx.runs.provenance import record_accounting_many

    record_accounting_many([run for run, row in zip(runs, rows) if row["finished"]])


# The keys of each `hpcx runs` JSON row after run_id and run_dir (tests pin them: scripts rely on them).
ROW_KEYS = ("name", "kind", "created", "scheduler", "job_id", "state", "finished", "sweep")


def list_rows(
    root: Path, wanted: RunFilter, limit: int, *, rebuild: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """The newest ``limit`` runs that ``wanted`` keeps, oldest first, and how many it keeps in all.

    Only runs whose cached state is not finished are asked about, in one batched query, and only those that
    could be shown; the answers go back into the index (finished states are final).
    """
    from hpcx.runs.index import newest, record_states, refresh_index

    index = refresh_index(root, rebuild=rebuild)
    kept = [r for r in index.rows if wanted.keeps_run(r)]
    # Without a state filter only the shown rows need a state; with one, every candidate does.
    asked = [r for r in (kept if wanted.states else newest(kept, limit)) if r["job_id"] and not r["finished"]]
    if asked and record_states(asked, job_states([Run(r["run_id"], root / r["run_id"]) for r in asked])):
        index.save()
    kept = [r for r in kept if wanted.keeps_state(r)]
    shown = [
        {"run_id": r["run_id"], "run_dir": str(root / r["run_id"]), **{k: r[k] for k in ROW_KEYS}}
        for r in newest(kept, limit)
    ]
    return shown, len(kept)
