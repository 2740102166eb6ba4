"""Preemption and time limits: a signal only sets a flag; ranks agree at a step boundary, save, and requeue.

Slurm sends the early warning (``#SBATCH --signal=B:USR2@T``) to the batch shell, which forwards it to the
ranks (see job_templates/base.sbatch.j2). A job that is close to its time limit stops the same way, without
waiting for a signal. ``python -m hpcx.run`` forwards signals to the command it runs.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hpcx import _proc
from hpcx.errors import CommandError
from hpcx.runtime.collective import Collective

DEFAULT_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)
DEFAULT_MAX_RESTARTS = 5


@dataclass
class Preemption:
    """The flag the handlers set, and what is needed to decide, together, to stop."""

    signals: tuple[int, ...]
    margin_s: float
    deadline: float | None
    received: list[int] = field(default_factory=list)
    _previous: dict[int, Any] = field(default_factory=dict)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received.append(signum)  # only a flag: no I/O, no collectives, no locks in a signal handler
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)  # the user's own handler still runs

    @property
    def requested(self) -> bool:
        """This rank saw a signal, or the time limit is within the margin."""
        return bool(self.received) or (
            self.deadline is not None and time.time() > self.deadline - self.margin_s
        )

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)


def install(signals: tuple[int, ...] = DEFAULT_SIGNALS, *, margin_s: float | None = None) -> Preemption:
    """Install flag-only handlers for ``signals`` (chaining any handler already there).

    ``margin_s``: stop this long before the job's time limit ($HPCX_DEADLINE, set by the job script);
    default $HPCX_STOP_MARGIN_S or 120 s.
    """
    deadline = float(os.environ["HPCX_DEADLINE"]) if os.environ.get("HPCX_DEADLINE") else None
    margin = margin_s if margin_s is not None else float(os.environ.get("HPCX_STOP_MARGIN_S", 120))
    state = Preemption(tuple(signals), margin, deadline)
    for signum in signals:
        state._previous[signum] = signal.getsignal(signum)
        signal.signal(signum, state._handle)
    return state


def should_stop(state: Preemption, comm: Any = None, *, step: int | None = None, every: int = 1) -> bool:
    """True on every rank if any rank was asked to stop: call it at the same step boundary on all ranks.

    With ``step`` and ``every`` the ranks talk only every ``every`` steps (an MPI allreduce costs more than a
    small model's step); in between it answers False on every rank alike, so they never disagree.
    """
    if step is not None and every > 1 and step % every:
        return False
    local = state.requested
    if comm is None:
        return local
    return Collective(comm).any_true(local)


def requeue(
    comm: Any = None, *, max_restarts: int | None = None, log: Callable[[str], None] | None = None
) -> bool:
    """Rank 0 asks Slurm to requeue this job (after everyone saved); False when the restart cap is reached.

    The cap is $HPCX_MAX_RESTARTS (default 5) against $SLURM_RESTART_COUNT. Slurm then ends this run of the
    job and starts it again, so callers exit right after.
    """
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    cap = (
        max_restarts
        if max_restarts is not None
        else int(os.environ.get("HPCX_MAX_RESTARTS", DEFAULT_MAX_RESTARTS))
    )
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    job_id = os.environ.get("SLURM_JOB_ID")
    ranks = Collective(comm)
    ranks.barrier()  # every rank finished saving before anyone asks for the requeue
    if job_id is None:
        if ranks.rank == 0:
            say("hpcx: stopping: not a Slurm job, so nothing to requeue; run again to resume")
        return False
    if restarts >= cap:
        if ranks.rank == 0:
            say(f"hpcx: not requeuing job {job_id}: it restarted {restarts} times (HPCX_MAX_RESTARTS={cap})")
        return False
    return ranks.rank != 0 or _ask_slurm_to_requeue(job_id, f"restart {restarts + 1} of at most {cap}", say)


def _ask_slurm_to_requeue(job_id: str, which: str, say: Callable[[str], None]) -> bool:
    say(f"hpcx: requeuing job {job_id} ({which})")
    try:
        _proc.run(["scontrol", "requeue", job_id], timeout_s=30)
    except CommandError as exc:
        # Most often the job is being requeued or cancelled already (an admin's `scontrol requeue`, or a
        # preemption): the checkpoint is saved, so nothing is lost either way.
        say(
            f"hpcx: could not requeue job {job_id} ({exc}); if it is already being requeued or cancelled, "
            "the saved checkpoint is where it resumes"
        )
        return False
    return True
