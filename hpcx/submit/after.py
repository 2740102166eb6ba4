"""--after: what a job waits for, decided from what hpcx knows of each run's outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcx.errors import RejectedError
from hpcx.runs import Run
from hpcx.schedulers import get_scheduler


def after_job_ids(root: Path, keys: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The job ids a job given ``--after KEY ...`` waits for (afterok), decided from each run's outcome as hpcx
    knows it (squeue, else sacct, else the run's accounting.json) rather than left to Slurm, which forgets a
    finished job after MinJobAge and then drops the dependency (the job ran at once, even after a failure):

    - a run that already succeeded needs no dependency (none is given to Slurm);
    - a run that already ended any other way is refused: RejectedError (exit 3) naming its state;
    - a run still pending or running is waited for; a sweep by each of its arrays still active, retries included
      (its finished arrays are judged by their tasks' outcome, a retried task by its last attempt).

    KEY is a run id, a unique prefix of one, or a Slurm job id (of a run, else any job Slurm knows)."""
    waits: list[str] = []
    for key in keys:
        waits += _waits_for(root, key)
    return tuple(dict.fromkeys(waits))


def _waits_for(root: Path, key: str) -> list[str]:
    from hpcx.runs import find_run

    # a job id: of a run, else any job Slurm knows; never a run id prefix (20261207 is both)
    if key.isdigit():
        run = _run_of_job(root, key)
        if run is None:
            return _waits_for_job(key)
    else:
        run = find_run(root, key)
    job = run.job
    if not job.get("job_id"):
        raise RejectedError(f"--after {key}: run {run.id} was never submitted", hint="submit it first")
    if "chunks" in job:
        return _waits_for_sweep(run, key)
    state = _outcome(run)
    if state is None:
        raise RejectedError(
            f"--after {key}: hpcx cannot tell how run {run.id} (job {job['job_id']}) ended: the scheduler no "
            "longer knows the job and the run has no accounting record",
            hint="check the run's logs, then submit without --after if it succeeded",
        )
    return _wait_or_refuse(key, f"run {run.id}", str(job["job_id"]), state)


def _run_of_job(root: Path, job_id: str) -> Run | None:
    """The run that submitted Slurm job ``job_id`` (any array of a sweep), if any: a job id is never taken as a
    run id prefix (run ids start with a date, which job ids can look like)."""
    from hpcx.runs.index import refresh_index

    found = [r["run_id"] for r in refresh_index(root).rows if job_id in r["job_ids"]]
    return Run(found[-1], root / found[-1]) if found else None


def _outcome(run: Run) -> Any:
    """The run's job state (a JobState-like object with state, exit_code, finished), or None when unknown."""
    from hpcx.rundir.layout import ACCOUNTING_FILE
    from hpcx.schedulers import JobRef
    from hpcx.schedulers.base import JobState

    job = run.job
    job_id = str(job["job_id"])
    state = get_scheduler(job.get("scheduler", "slurm")).status([JobRef(job_id, run.dir)]).get(job_id)
    if state is not None:
        return state
    acct_path = (
        run.dir / ACCOUNTING_FILE
    )  # kept by status/report once the job finished: outlives sacct's memory
    if acct_path.exists():
        from hpcx.fsutil import read_json
        from hpcx.reports.accounting import summarize_accounting

        summary = summarize_accounting(read_json(acct_path))
        if summary and summary.get("finished"):
            return JobState(job_id, summary["state"], exit_code=summary["exit_code"], source=ACCOUNTING_FILE)
    return None


def _waits_for_job(job_id: str) -> list[str]:
    from hpcx.schedulers import JobRef

    state = get_scheduler("slurm").status([JobRef(job_id, Path.cwd())]).get(job_id)
    if state is None:
        raise RejectedError(
            f"--after {job_id}: Slurm knows no job {job_id} and no run under the runs root submitted it",
            hint="give a run id (`hpcx runs`), or the id of a job Slurm still lists (squeue, sacct)",
        )
    return _wait_or_refuse(job_id, f"job {job_id}", job_id, state)


def _wait_or_refuse(key: str, what: str, job_id: str, state: Any) -> list[str]:
    if not state.finished:
        return [job_id]
    if state.state == "COMPLETED":
        return []  # already satisfied: Slurm would drop a dependency on a job it has forgotten anyway
    code = f", exit code {state.shown_exit_code}" if state.shown_exit_code not in (None, 0) else ""
    given = "--after" if _names(what, key) else f"--after {key}"
    raise RejectedError(
        f"{given}: {what} already ended {state.state}{code}, so a job after it would never start",
        hint="run it again (`hpcx rerun`) and wait for the new run, or submit without --after",
    )


def _names(what: str, key: str) -> bool:
    """Whether ``what`` ("run ID" or "job ID") already shows KEY: a job by its id, a run by its id or a prefix of
    it. A job id (all digits) never counts as part of a run id, whose time of day can hold the same digits."""
    noun, _, name = what.partition(" ")
    return name == key if noun == "job" or key.isdigit() else name.startswith(key)


def _array_waits(run: Run, job_id: str, state: Any) -> list[str]:
    """What to wait for of one active array of a sweep: the array (afterok), unless one of its own tasks already
    failed (and was retried, or the sweep would have been refused): afterok on that array would never hold, so
    its tasks that have not ended are waited for one by one (afterok:JOB_INDEX), the retry by its own array."""
    from hpcx.schedulers import FINISHED_STATES
    from hpcx.submit.sweep_submit import FAILED_STATES
    from hpcx.submit.sweeps import chunk_tasks

    own = state.task_states or {}
    if not any(s in FAILED_STATES for s in own.values()):
        return [job_id]
    chunks = [c for c in run.job["chunks"] if str(c["job_id"]) == job_id]
    return [
        f"{job_id}_{i}" for _, i, _ in chunk_tasks(chunks) if own.get(i, "PENDING") not in FINISHED_STATES
    ]


def _waits_for_sweep(run: Run, key: str) -> list[str]:
    from hpcx.schedulers import JobRef
    from hpcx.submit.sweep_submit import FAILED_STATES, task_states

    per_task = task_states(run)
    failed = sorted({s for s in per_task.values() if s in FAILED_STATES})
    if failed:
        counts = ", ".join(f"{sum(1 for s in per_task.values() if s == f)} {f}" for f in failed)
        raise RejectedError(
            f"--after {key}: sweep {run.id} has tasks that already ended without success ({counts}), so a job "
            "after it would never start",
            hint=f"hpcx sweep --retry-failed {run.id}, then --after {run.id} waits for the retries too",
        )
    if all(s == "COMPLETED" for s in per_task.values()):
        return []
    arrays = [str(c["job_id"]) for c in run.job["chunks"]]
    states = get_scheduler(run.job.get("scheduler", "slurm")).status([JobRef(j, run.dir) for j in arrays])
    active = [
        w
        for j in dict.fromkeys(arrays)
        if j in states and not states[j].finished
        for w in _array_waits(run, j, states[j])
    ]
    if not active:  # every array has ended, yet not every task is known to have completed
        unknown = sorted({s for s in per_task.values() if s != "COMPLETED"})
        raise RejectedError(
            f"--after {key}: sweep {run.id} has ended, but hpcx cannot tell that all its tasks completed "
            f"({', '.join(unknown)})",
            hint=f"check `hpcx status {run.id}`, then submit without --after if they did",
        )
    return active
