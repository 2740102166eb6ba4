"""The live state of runs as the scheduler reports it: one row per run (a sweep's tasks merged over its arrays,
an array narrowed to one task), asked in one batched query per scheduler; which runs a command means; cancelling
their jobs; the accounting record kept once they are done; the run index's rows with their states brought up to
date (`hpcx runs`). Each row carries what the job is doing (``live``: hpcx.runs.live, read from the tails of the
job's own files; None before it has written any)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcx.runs import Run, find_run_task, job_refs, list_runs, task_ids, task_job_ids
from hpcx.runs.live import best_task, sweep_live, task_live, tasks_live
from hpcx.runs.stop import STOPPED, stopped_states
from hpcx.schedulers import FINISHED_STATES, JobRef, JobState, get_scheduler
from hpcx.schedulers.base import overall_state

if TYPE_CHECKING:
    from hpcx.runs.index import RunFilter

NEWEST_SHOWN = 20  # runs shown without RUN or --all
NOT_STARTED = ("PENDING", "UNSUBMITTED")  # states of a job that has written nothing yet


def job_states(runs: Sequence[Run], tasks: Sequence[int | None] = ()) -> list[dict[str, Any]]:
    """One row per run with its job's state; one batched scheduler query per scheduler for every run shown,
    sweeps (all their arrays) and jobs alike, never one per job. ``tasks[i]``, when given and not None, narrows
    run i's row to that one task of its sweep or array."""
    return [rows[0] for rows in run_rows(runs, tasks)]


def run_rows(
    runs: Sequence[Run], tasks: Sequence[int | None] = (), *, per_task: bool = False
) -> list[list[dict[str, Any]]]:
    """Per run, its rows (job_states' one; with ``per_task``, a sweep or array asked for as a whole gets one
    row per task instead), from one batched scheduler query per scheduler."""
    states = _ask_schedulers(runs)
    out = []
    for n, run in enumerate(runs):
        task = tasks[n] if n < len(tasks) else None
        answer = states.get(_scheduler(run), {})
        ids = task_ids(run) if per_task and task is None else None
        if ids and "chunks" in run.job:
            out.append(sweep_task_rows(run, answer))
        elif ids:
            out.append([_row(run, answer, i) for i in ids])
        else:
            out.append([_row(run, answer, task)])
        if task is None:
            _add_study(run, out[-1][0])
    return out


def _add_study(run: Run, row: dict[str, Any]) -> None:
    """A tuning study's trials at a glance (hpcx.tune.summary), in the row of its run."""
    from hpcx.tune.summary import study_summary

    summary = study_summary(run.dir)
    if summary is not None:
        row["study"] = summary


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
        if task is None and not row["tasks"]:
            row["state"] = stopped_states(run.dir, {None: row["state"]})[None]
    if task is not None:
        row = _array_task_row(row, state, task)
        row["state"] = stopped_states(run.dir, {task: row["state"]})[task]
    elif row["tasks"]:  # a job array as a whole: its best task, as a sweep's
        row = _stopped_array(run, row, state)
        return {**row, "live": _array_live(run, row["state"], state)}
    return {**row, "live": _live(run, task, row["state"])}


def _stopped_array(run: Run, row: dict[str, Any], state: JobState | None) -> dict[str, Any]:
    """A job array's counts and state with its tasks that stopped on request counted as STOPPED."""
    listed = dict(state.task_states or {}) if state is not None else {}
    marked = stopped_states(run.dir, listed)
    if marked == listed:
        return row
    counts = dict(row["tasks"])
    for task, new in marked.items():
        if new != listed[task]:
            counts[listed[task]] -= 1
            counts[new] = counts.get(new, 0) + 1
    counts = {k: n for k, n in counts.items() if n > 0}
    return {**row, "tasks": counts, "state": overall_state(counts)}


def _array_live(run: Run, whole: str, state: JobState | None) -> dict[str, Any] | None:
    """A job array's live fields, from each task's (its state as Slurm listed it, else the array's)."""
    listed = (state.task_states or {}) if state is not None else {}
    ids = task_ids(run) or sorted(listed)
    return sweep_live(tasks_live(run.dir, {i: listed.get(i, whole) for i in ids}))


def _live(run: Run, task: int | None, state: str, now: float | None = None) -> dict[str, Any] | None:
    """What the run (or task) is doing, from its files' tails; None before it has started."""
    return None if state in NOT_STARTED else task_live(run.dir, task, state, now)


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
    that task's state alone (the array that ran it last). A whole sweep's ``live`` is its best task's so far
    (hpcx.runs.live.sweep_live), read from every task that has started."""

    per_task = task_states(run, states)
    if task is not None:
        state = per_task.get(task, "UNKNOWN")
        return _sweep_fields(
            run, state, task_job_ids(run, task)[-1], None, _live(run, task, state), task=task
        )
    counts = summarize(per_task)
    live = sweep_live(tasks_live(run.dir, per_task))
    return _sweep_fields(run, overall_state(counts), run.job.get("job_id"), counts, live)


def sweep_task_rows(run: Run, states: dict[str, JobState]) -> list[dict[str, Any]]:
    """One row per task of a sweep (`hpcx status --tasks`), as ``sweep_row(run, states, task)`` gives it, with
    the scheduler's answer and the chunks read once for them all."""
    from hpcx.submit.sweeps import chunk_tasks  # the one reading of a sweep's chunks

    last_ids = {t: f"{c['job_id']}_{i}" for c, i, t in chunk_tasks(run.job.get("chunks", []))}
    now = time.time()
    return [
        _sweep_fields(run, state, last_ids.get(task), None, _live(run, task, state, now), task=task)
        for task, state in sorted(task_states(run, states).items())
    ]


def _sweep_fields(
    run: Run,
    state: str,
    job_id: str | None,
    counts: dict[str, int] | None,
    live: dict[str, Any] | None,
    **named: Any,
) -> dict[str, Any]:
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
        "finished": state in FINISHED_STATES or state == STOPPED,
        "live": live,
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
        if state.rest_state in FINISHED_STATES:  # Slurm's one record for the rest of the array: theirs
            one = state.rest_state
    return {
        **row,
        "task": task,
        "job_id": f"{row['job_id']}_{task}",
        "state": one,
        "tasks": None,
        "exit_code": None if one != row["state"] else row["exit_code"],
        "finished": one in FINISHED_STATES or one == STOPPED,
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
    root: Path,
    keys: Sequence[str],
    show_all: bool = False,
    *,
    watch: bool = False,
    interval_s: float = 2.0,
    per_task: bool = False,
) -> Iterator[dict[str, Any]]:
    """`hpcx status`'s documents (``{"runs": rows}``) for the runs ``keys`` ask for (runs_asked): one, or with
    ``watch`` one every ``interval_s`` until every job has finished; ``per_task``: a sweep's or array's tasks
    one row each. Runs asked for by name keep their accounting record once they are done (one sacct for all)."""
    chosen, tasks = runs_asked(root, keys, show_all)
    while True:
        rows = run_rows(chosen, tasks, per_task=per_task)
        doc = {"runs": [row for some in rows for row in some]}
        if keys:
            record_finished_accounting(
                chosen, [{"finished": all(r["finished"] for r in some)} for some in rows]
            )
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


# The keys of each `hpcx runs` JSON row after run_id and run_dir (tests pin them: scripts rely on them), and the
# live ones after those (run_progress).
ROW_KEYS = ("name", "kind", "created", "scheduler", "job_id", "state", "finished", "sweep")
PROGRESS_KEYS = ("step", "metric")


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
        {
            "run_id": r["run_id"],
            "run_dir": str(root / r["run_id"]),
            **{k: r[k] for k in ROW_KEYS},
            **run_progress(Run(r["run_id"], root / r["run_id"]), r["state"]),
        }
        for r in newest(kept, limit)
    ]
    return shown, len(kept)


def run_progress(run: Run, state: str) -> dict[str, Any]:
    """`hpcx runs`' ``step`` and ``metric`` (``{"name", "value"}``, with ``task`` for a sweep's best task) of a
    run, from the tail of rank 0's metrics alone (one open per run or task: runs shows no heartbeat)."""
    live: dict[str, Any] | None = None
    named: dict[str, Any] = {}
    ids = task_ids(run) if state not in NOT_STARTED or "chunks" in run.job else []
    if ids:  # a sweep or an array: its best task so far
        lives = tasks_live(run.dir, dict.fromkeys(ids, state), heartbeat=False)
        best = best_task(lives)
        live, named = (lives[best], {"task": best}) if best is not None else (None, {})
    elif state not in NOT_STARTED:
        live = task_live(run.dir, None, state, heartbeat=False)
    if live is None:
        return dict.fromkeys(PROGRESS_KEYS)
    main = live["main_metric"]
    metric = {"name": main, "value": live["main_value"], **named} if main else None
    return {"step": live["step"], "metric": metric}


def task_states(run: Run, states: dict[str, JobState] | None = None) -> dict[int, str]:
    """Every task's state (task id -> Slurm state) from ``states`` (the scheduler's answer for, at least,
    ``job_refs(run)``; asked for here, in one batched query, when None).

    Later arrays (retries) override earlier ones for the tasks they cover."""
    from hpcx.submit.sweeps import chunk_tasks  # pure and light: no Jinja, no submission code

    job = run.job
    chunks_ = job.get("chunks", [])
    if states is None:
        states = get_scheduler(job.get("scheduler", "slurm")).status(job_refs(run))
    out: dict[int, str] = {}
    for c, i, task in chunk_tasks(chunks_):
        st = states.get(c["job_id"])
        listed = (st.task_states or {}) if st else {}
        # Tasks Slurm lists only as "the rest of the array" are pending (or, once it is done, unknown).
        fallback = "PENDING" if st is None or not st.finished else (st.state if not listed else "UNKNOWN")
        if st is not None and st.rest_state in FINISHED_STATES:  # Slurm's one record for the rest: theirs
            fallback = st.rest_state
        out[task] = listed.get(i, fallback)
    return stopped_states(run.dir, out)


def summarize(states: dict[int, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in states.values():
        counts[s] = counts.get(s, 0) + 1
    return counts
