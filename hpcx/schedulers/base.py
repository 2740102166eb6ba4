"""What every scheduler backend answers: submit a script, report job states, cancel jobs."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# REQUEUED and PREEMPTED are deliberately absent: such a job will run again.
FINISHED_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "LOST",
    }
)


# Slurm's states of a job that has not ended: it waits, runs, or will run again (REQUEUED). Status, runs, report
# and compare all read this set; a set of jobs with one of them has not ended either. (PREEMPTED is neither here
# nor in FINISHED_STATES: with requeue the job runs again, without it the state says how it ended.)
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "RESIZING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
    }
)
# Of those, the states of a job that holds its nodes (has started and not yet given them back).
_BUSY = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "RESIZING", "SUSPENDED"})


# The states in which the scheduler (or the node, or the kernel's OOM killer) ended the job, not the program: its
# numbers say nothing of the program, and Slurm's disagree (one TIMEOUT: squeue 143, sacct's job row 0:0).
ENDED_BY_SCHEDULER = frozenset(
    {"TIMEOUT", "CANCELLED", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "LOST"}
)


def exit_code_of(state: str, code: int | None, signal: int | None = 0) -> int | None:
    """The exit code hpcx shows for a job in ``state``: what status, runs and report all read. None until the
    job has finished, and when the scheduler ended it (ENDED_BY_SCHEDULER: the state says why); 128 + signal for
    a program killed by a signal (the shell's convention, as squeue's wait status gives it); else its own code."""
    if state not in FINISHED_STATES or state in ENDED_BY_SCHEDULER:
        return None
    if signal:
        return 128 + signal
    return code


def parse_exit(text: str) -> tuple[int | None, int]:
    """sacct's ``code:signal`` (ExitCode) as the raw code (None when not a number) and signal (0 for none)."""
    code, _, signal = text.strip().partition(":")
    return (int(code) if code.isdigit() else None), (int(signal) if signal.isdigit() else 0)


@dataclass(frozen=True)
class JobRef:
    """A submitted job: its scheduler id and the run directory it writes to."""

    job_id: str
    run_dir: Path


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # Slurm's vocabulary: PENDING, RUNNING, COMPLETED, FAILED, ...
    exit_code: int | None = None  # the program's code as the scheduler gives it (see shown_exit_code)
    reason: str | None = None
    nodes: str | None = None
    elapsed_s: int | None = None
    source: str = ""  # which query answered: squeue, sacct, local, ...
    tasks: dict[str, int] | None = None  # job arrays: how many tasks are in each state
    pending_tasks: int = 0  # an array's not-yet-started tasks that Slurm lists as one record
    task_states: dict[int, str] | None = None  # job arrays: array index -> state, for the tasks Slurm listed
    signal: int = 0  # the signal that killed the program (0: none), as the scheduler gives it
    # job arrays: the state of Slurm's record for "the rest of the array", the tasks it never listed one by one
    # (pending tasks cancelled together, e.g. by `hpcx stop`, end as one CANCELLED record); None without one
    rest_state: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def shown_exit_code(self) -> int | None:
        """The exit code status, runs and report show (exit_code_of: the one rule)."""
        return exit_code_of(self.state, self.exit_code, self.signal)

    def to_dict(self) -> dict[str, Any]:
        """The row status shows: ``exit_code`` as shown_exit_code."""
        doc = {**asdict(self), "finished": self.finished, "exit_code": self.shown_exit_code}
        del doc["pending_tasks"], doc["task_states"], doc["signal"], doc["rest_state"]
        return doc


def overall_state(states: Iterable[str]) -> str:
    """One state for several jobs or tasks (an array's tasks, a sweep's chunks, their accounting rows), the same
    whichever order they come in: status, runs and report all read it. The one state they share; else RUNNING
    while any holds its nodes (running, suspended, completing); else PENDING while any waits or will run again
    (ACTIVE_STATES: PENDING, REQUEUED); else ``ended_state``. ``states`` may be a dict of counts."""
    distinct = set(states)
    if len(distinct) == 1:
        return distinct.pop()
    if distinct & _BUSY:
        return "RUNNING"
    if distinct & ACTIVE_STATES:
        return "PENDING"
    return ended_state(distinct)


def ended_state(states: Iterable[str]) -> str:
    """One state for jobs or tasks that have all ended, the same whichever order they come in (status and report
    both use it): COMPLETED when all completed, STOPPED when the others stopped on request or were cancelled (a
    stopped sweep), else FAILED when any failed, else the first other state by name."""
    others = sorted({s for s in states if s != "COMPLETED"})
    if not others:
        return "COMPLETED"
    if "STOPPED" in others and set(others) <= {"STOPPED", "CANCELLED"}:
        return "STOPPED"  # a stopped sweep: its running tasks stopped on request, the waiting ones cancelled
    return "FAILED" if "FAILED" in others else others[0]


def summarize_array(job_id: str, members: Sequence[JobState]) -> JobState:
    """One state for a job array from its tasks' states: running while any task runs, pending while any waits,
    COMPLETED when all completed, else the first failure; ``tasks`` counts the tasks in each state."""
    if len(members) == 1 and members[0].job_id == job_id and not members[0].pending_tasks:
        return members[0]
    counts: dict[str, int] = {}
    for m in members:
        counts[m.state] = counts.get(m.state, 0) + (m.pending_tasks or 1)
    state = overall_state(counts)
    codes = [c for c in (m.shown_exit_code for m in members) if c is not None]  # each task's, as report's
    per_task = {int(i): m.state for m in members for i in [m.job_id.partition("_")[2]] if i.isdigit()}
    # Slurm's record for the rest: the array's own id (its last pending tasks ended together) or ID_[2-5%2]
    rest = [m.state for m in members if m.job_id == job_id or m.job_id.partition("_")[2].startswith("[")]
    return JobState(
        job_id,
        state,
        exit_code=max(codes) if codes else None,
        source=members[0].source,
        tasks=counts,
        task_states=per_task,
        rest_state=rest[0] if rest else None,
    )


# What hpcx sets inside a job for that job alone. A job submitted from inside another one (a sweep task, a
# pipeline step) must not inherit them: HPCX_TASK_OFFSET would shift an array's task ids, HPCX_RUN_DIR and
# HPCX_PROFILE_DIR would send its records into the parent's run, HPCX_PROFILE would decide its profiling.
JOB_SCOPED_ENV = frozenset(
    {
        "HPCX_RUN_ID",
        "HPCX_RUN_DIR",
        "HPCX_TASK_ID",
        "HPCX_TASK_NAME",
        "HPCX_TASK_OFFSET",
        "HPCX_SEED",
        "HPCX_RANK",
        "HPCX_WORLD_SIZE",
        "HPCX_RANK_SEED",
        "HPCX_DEADLINE",
        "HPCX_KIND",
        "HPCX_PROFILE",
        "HPCX_PROFILE_COMM",
        "HPCX_PROFILE_DIR",
    }
)
JOB_SCOPED_PREFIXES = ("HPCX_PARAM_", "HPCX_VAR_")


def scrubbed_env(allowed: Sequence[str] = ()) -> dict[str, str]:
    """Our environment without inherited SBATCH_*/SLURM_*/SALLOC_* variables, which would silently change a
    submission (SBATCH_PARTITION overrides the script's own #SBATCH line), and without the variables hpcx set
    for the job this runs in, if any (JOB_SCOPED_ENV); SLURM_CONF and ``allowed`` stay."""
    keep = {"SLURM_CONF", *allowed}
    return {
        k: v
        for k, v in os.environ.items()
        if k in keep
        or not (k.startswith(("SBATCH_", "SLURM_", "SALLOC_", *JOB_SCOPED_PREFIXES)) or k in JOB_SCOPED_ENV)
    }


class Scheduler(ABC):
    name: str

    # Every backend spells this signature out again: that repetition is the interface, not copied logic.
    @abstractmethod
    def submit(
        self,
        script: Path,
        run_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> str:
        """Submit ``script`` (already written in ``run_dir``) with extra sbatch ``args`` from directory ``cwd``
        (the job's submission directory; default ``run_dir``); return the job id."""

    @abstractmethod
    def status(self, jobs: Sequence[JobRef]) -> dict[str, JobState]:
        """States of ``jobs`` by job id, in one batched query; unknown jobs are absent."""

    @abstractmethod
    def cancel(self, jobs: Sequence[JobRef]) -> None:
        """Cancel ``jobs``; cancelling a finished job is not an error."""

    def cancel_waiting_tasks(self, jobs: Sequence[JobRef]) -> None:
        """Cancel array tasks (``JOBID_INDEX``) that have not started yet: `hpcx stop` of a sweep. A task that
        started meanwhile is cancelled too, as by ``cancel``."""
        self.cancel(jobs)

    def signal(self, jobs: Sequence[JobRef], signal_name: str, *, batch: bool = True) -> None:
        """Send ``signal_name`` (USR2, ...) to running ``jobs`` as Slurm sends its warning before the time limit:
        to the batch shell (``batch``, ``--signal=B:``), which passes it on, or to every job step."""
        raise NotImplementedError(f"the {self.name} backend cannot signal a job")
