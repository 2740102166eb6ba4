"""`hpcx stop`: ask a running job (or a sweep's running tasks) to end at its next step boundary, saving a
checkpoint and without requeueing; its waiting tasks are cancelled.

The request is a file in the run's ``control/`` (``control/task-NNNNN/`` for one task; hpcx.rundir.layout names
them), written atomically: who asked, when, and the grace. The ranks see it at ``preempt.should_stop()``, agree,
save, and rank 0 acknowledges in ``stopped.json`` beside it (hpcx.runtime.control). With a grace, the command
waits that long for the acknowledgement, polling, then sends the job the early signal (the one Slurm sends before
the time limit) the way Slurm sends it: a job that never calls ``should_stop()`` ends as on a preemption warning.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.errors import UsageError
from hpcx.fsutil import atomic_write_json
from hpcx.rundir.layout import SCRIPT_FILE, control_dir, stop_request_file, stopped_file
from hpcx.runs import Run, id_ranges, job_refs, task_ids, task_job_id
from hpcx.schedulers import FINISHED_STATES, JobRef, Scheduler, get_scheduler

REQUEST_VERSION = 1
# A run or task that ended COMPLETED after acknowledging a stop request, as status, runs and report show it
# (Slurm's own STOPPED, a job held by SIGSTOP, is an active state that squeue shows as ST).
STOPPED = "STOPPED"
POLL_S = 0.5  # how often the grace wait looks for acknowledgements
STATUS_EVERY_S = 5.0  # how often it asks the scheduler whether a job ended without acknowledging
DEFAULT_SIGNAL = "USR2"  # hpcx's early warning (job_templates/base.sbatch.j2) when the script names none
WAITING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"})  # not started: cancelled instead
_SIGNAL_LINE = re.compile(r"^#SBATCH\s+--signal=(?P<batch>B:)?(?P<name>[A-Z0-9]+)", re.MULTILINE)


@dataclass
class Target:
    """One job or task that `hpcx stop` acts on, and what became of it."""

    task: int | None
    job_id: str
    state: str
    action: str = ""  # "stop" (a request written), "cancel" (it had not started), "none" (already stopping)
    outcome: str = ""  # requested, stopped, signalled, ended, cancelled
    step: int | None = None  # the step the job acknowledged stopping at
    ended: str | None = None  # the state a job ended in without acknowledging

    def doc(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "job_id": self.job_id,
            "state": self.state,
            "action": self.action,
            "outcome": self.outcome,
            "step": self.step,
            "ended": self.ended,
        }


def stop_record(run_dir: Path, task: int | None) -> dict[str, Any] | None:
    """The job's acknowledgement of a stop (``control/[task-NNNNN/]stopped.json``, parsed): request_id,
    requested_by, requested_at, step, stopped_at, task, ranks, job_id; None when absent or torn. A run that ends
    COMPLETED with one stopped on request (STOPPED)."""
    try:
        doc = json.loads(stopped_file(run_dir, task).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def stopped_states(run_dir: Path, states: dict[Any, str]) -> dict[Any, str]:
    """``states`` (task or None -> state) with STOPPED for each job or task that completed after acknowledging a
    stop request (its stopped.json): one look at control/ for the run, then one read per completed task only
    where a stop was ever asked, so a run never stopped costs one stat."""
    if "COMPLETED" not in states.values() or not control_dir(run_dir).is_dir():
        return states
    return {
        task: STOPPED if state == "COMPLETED" and stop_record(run_dir, task) is not None else state
        for task, state in states.items()
    }


def stop_run(
    run: Run,
    tasks: Sequence[int] = (),
    grace_s: float | None = None,
    *,
    by: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Stop ``run`` (or its ``tasks``): a request for each running job or task, a cancel for each one still
    waiting; with ``grace_s``, wait that long for the acknowledgements, then send the early signal to those that
    gave none. Returns `hpcx stop`'s document. UsageError for a run never submitted, a finished run or task, and
    a run with nothing running."""
    targets = _targets(run, tasks)
    request: dict[str, Any] = {
        "version": REQUEST_VERSION,
        "id": secrets.token_hex(8),
        "by": by or getpass.getuser(),
        "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "grace_s": grace_s,
    }
    scheduler = get_scheduler(run.job.get("scheduler", "slurm"))
    waiting = [JobRef(t.job_id, run.dir) for t in targets if t.state in WAITING]
    if waiting:  # first, so that no task starts in the place of one that stops
        scheduler.cancel_waiting_tasks(waiting)
    for target in targets:
        _act(run, target, request)
    signal = early_signal(run)
    asked = [t for t in targets if t.action == "stop"]
    if grace_s is not None and asked:
        _wait(run, asked, request["id"], grace_s, sleep)
        _signal_late(run, scheduler, asked, signal)
    return _document(run, scheduler.name, request, signal, targets)


def _signal_late(run: Run, scheduler: Scheduler, asked: list[Target], signal: tuple[str, bool]) -> None:
    """The early signal to the jobs that did not acknowledge in time (a job that never calls should_stop(), or
    one stuck in a long step)."""
    late = [t for t in asked if t.outcome == "requested"]
    if late:
        scheduler.signal([JobRef(t.job_id, run.dir) for t in late], signal[0], batch=signal[1])
        for t in late:
            t.outcome = "signalled"


def _document(
    run: Run, scheduler: str, request: dict[str, Any], signal: tuple[str, bool], targets: list[Target]
) -> dict[str, Any]:
    """`hpcx stop`'s JSON document (its keys are what scripts read)."""
    return {
        "run_id": run.id,
        "run_dir": str(run.dir),
        "scheduler": scheduler,
        "requested_by": request["by"],
        "requested_at": request["at"],
        "request_id": request["id"],
        "grace_s": request["grace_s"],
        "signal": signal[0],
        "signal_to": "batch" if signal[1] else "steps",
        "tasks": [t.doc() for t in targets],
    }


def _act(run: Run, target: Target, request: dict[str, Any]) -> None:
    """Write ``target``'s request (or mark it for cancelling, or as already stopping)."""
    if target.state in WAITING:
        target.action, target.outcome = "cancel", "cancelled"
        return
    earlier = stop_record(run.dir, target.task)
    pending = _request_id(run.dir, target.task)
    if earlier is not None and pending is not None and earlier.get("request_id") == pending:
        # An earlier `hpcx stop` was acknowledged and the job is on its way out: nothing more to ask.
        target.action, target.outcome, target.step = "none", "stopped", earlier.get("step")
        return
    path = stop_request_file(run.dir, target.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {**request, "task": target.task})
    target.action, target.outcome = "stop", "requested"


def _request_id(run_dir: Path, task: int | None) -> str | None:
    try:
        doc = json.loads(stop_request_file(run_dir, task).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc.get("id") if isinstance(doc, dict) else None


def _wait(
    run: Run, asked: list[Target], request_id: str, grace_s: float, sleep: Callable[[float], None]
) -> None:
    """Poll for the acknowledgements of ``request_id`` until each target gave one or ended, or ``grace_s``
    passed (asking the scheduler whether a job ended every STATUS_EVERY_S)."""
    deadline = time.monotonic() + grace_s
    next_status = time.monotonic() + STATUS_EVERY_S
    while True:
        for t in asked:
            done = stop_record(run.dir, t.task) if t.outcome == "requested" else None
            if done is not None and done.get("request_id") == request_id:
                t.outcome, t.step = "stopped", done.get("step")
        open_ = [t for t in asked if t.outcome == "requested"]
        if not open_ or time.monotonic() >= deadline:
            return
        if time.monotonic() >= next_status:
            next_status = time.monotonic() + STATUS_EVERY_S
            _mark_ended(run, open_)
        sleep(max(0.0, min(POLL_S, deadline - time.monotonic())))


def _mark_ended(run: Run, targets: list[Target]) -> None:
    """Targets whose job ended without acknowledging (it finished, failed, or was cancelled meanwhile)."""
    now = {t.task: t.state for t in _targets(run, [], quiet=True)}
    for t in targets:
        state = now.get(t.task)
        if state in FINISHED_STATES:
            t.outcome, t.ended = "ended", state


def early_signal(run: Run) -> tuple[str, bool]:
    """The signal the job expects before its time limit and whether it goes to the batch shell: its script's
    ``#SBATCH --signal=[B:]SIG[@T]`` (hpcx's own is ``B:USR2``), else USR2 to the batch shell."""
    script = run.dir / SCRIPT_FILE
    text = script.read_text(errors="replace") if script.is_file() else ""
    found = _SIGNAL_LINE.findall(text)
    if not found:
        return DEFAULT_SIGNAL, True
    batch, name = found[-1]  # as sbatch, the last one counts
    return name.removeprefix("SIG"), bool(batch)


def _targets(run: Run, tasks: Sequence[int], *, quiet: bool = False) -> list[Target]:
    """What to act on: the run's job, or its tasks (those asked for), each with its state now. Unless
    ``quiet``, UsageError when there is nothing running to stop."""
    if not run.job.get("job_id"):
        raise UsageError(f"run {run.id} was never submitted: there is nothing to stop")
    every = _states(run)
    chosen = [t for t in every if not tasks or t.task in tasks]
    if quiet:
        return chosen
    _check(run, every, chosen, tasks)
    return [t for t in chosen if t.state not in FINISHED_STATES]


def _states(run: Run) -> list[Target]:
    """The run's job (task None), or each task of its sweep or array, with the scheduler's state now (one
    batched query)."""
    scheduler = get_scheduler(run.job.get("scheduler", "slurm"))
    answer = scheduler.status(job_refs(run))
    if "chunks" in run.job:
        from hpcx.submit.sweep_submit import task_states  # the one reading of a sweep's tasks

        return [Target(t, task_job_id(run, t), s) for t, s in sorted(task_states(run, answer).items())]
    job_id = str(run.job["job_id"])
    state = answer.get(job_id)
    known = task_ids(run)
    if not known and not (state and state.task_states):
        return [Target(None, job_id, state.state if state else "UNKNOWN")]
    listed = (state.task_states or {}) if state else {}
    waiting = "PENDING" if state is None or not state.finished else (state.rest_state or state.state)
    return [Target(t, f"{job_id}_{t}", listed.get(t, waiting)) for t in (known or sorted(listed))]


def _check(run: Run, every: list[Target], chosen: list[Target], tasks: Sequence[int]) -> None:
    """Refuse a stop that has nothing to act on, saying why and what to do instead."""
    missing = sorted(set(tasks) - {t.task for t in every})
    if missing:
        raise UsageError(
            f"run {run.id} has no task {missing[0]}: its tasks are {_ranges(every)}",
            hint=f"`hpcx status {run.id}` lists them",
        )
    for t in chosen:
        if tasks and t.state in FINISHED_STATES:
            raise UsageError(
                f"task {t.task} of run {run.id} has already finished ({_shown(run, t)}){_stopped_words(run, t.task)}: "
                "there is nothing to stop",
                hint=f"`hpcx status {run.id}_{t.task}` shows how it ended",
            )
    if all(t.state in FINISHED_STATES for t in every):
        state = _shown(run, every[0]) if len(every) == 1 else "all its tasks"
        raise UsageError(
            f"run {run.id} has already finished ({state}){_stopped_words(run, every[0].task)}: there is nothing "
            "to stop",
            hint=f"`hpcx status {run.id}` shows how it ended",
        )
    if not any(t.state not in FINISHED_STATES and t.state not in WAITING for t in chosen):
        counts = ", ".join(f"{n} {s}" for s, n in sorted(_count(chosen).items()))
        raise UsageError(
            f"run {run.id} has nothing running to stop ({counts}): a stop asks running jobs to save and end",
            hint=f"`hpcx cancel {run.id}` takes jobs that have not started out of the queue",
        )


def _ranges(targets: list[Target]) -> str:
    known = [t.task for t in targets if t.task is not None]
    return id_ranges(known) if known else "none: it is one job"


def _count(targets: list[Target]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in targets:
        counts[t.state] = counts.get(t.state, 0) + 1
    return counts


def _shown(run: Run, target: Target) -> str:
    """A finished job's or task's state as status shows it: STOPPED for one that completed after a stop."""
    return stopped_states(run.dir, {target.task: target.state})[target.task]


def _stopped_words(run: Run, task: int | None) -> str:
    """ ", stopped at step N on request of USER" when the job acknowledged a stop, else nothing."""
    done = stop_record(run.dir, task)
    if done is None:
        return ""
    return f", stopped at step {done.get('step')} on request of {done.get('requested_by')}"
