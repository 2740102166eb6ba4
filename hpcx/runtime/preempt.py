"""Preemption, time limits and stop requests: a signal only sets a flag; ranks agree at a step boundary, save,
and requeue, or, when `hpcx stop` asked them to, end without requeueing.

Slurm sends the early warning (``#SBATCH --signal=B:USR2@T``) to the batch shell, which forwards it to the
ranks (see job_templates/base.sbatch.j2). A job that is close to its time limit stops the same way, without
waiting for a signal. ``python -m hpcx.run`` forwards signals to the command it runs. A stop request is a file
in the run's ``control/`` (hpcx.runtime.control); the agreement carries why the ranks stop, and a stop request
wins over a preemption signal, so every rank gets the same answer. After ``should_stop`` returned True,
``state.stopped`` says it was a stop request (``state.stop_request``: who asked, when): save and exit 0;
``requeue`` refuses to requeue a stopped job.
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
from hpcx.runtime import control
from hpcx.runtime.collective import Collective

DEFAULT_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)
DEFAULT_MAX_RESTARTS = 5
# Why the ranks stop, as the agreement carries it: the largest wins, so a stop request beats a preemption.
GO_ON, PREEMPTED, STOP_REQUESTED = 0, 1, 2


@dataclass
class Preemption:
    """The flag the handlers set, and what is needed to decide, together, to stop."""

    signals: tuple[int, ...]
    margin_s: float
    deadline: float | None
    received: list[int] = field(default_factory=list)
    watch: control.StopWatch | None = None  # where this run's stop requests appear (None outside a run)
    reason: str | None = None  # why the ranks last agreed to stop: "stop" (hpcx stop) or "preempt"
    stop_request: dict[str, Any] | None = None  # the stop request they agreed on: id, by, at, grace_s
    stop_step: int | None = None  # the step they agreed to stop at
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

    @property
    def stopped(self) -> bool:
        """The ranks agreed to stop because `hpcx stop` asked: save, then exit 0 without requeueing."""
        return self.reason == "stop"

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
    state = Preemption(tuple(signals), margin, deadline, watch=control.watch_from_env())
    for signum in signals:
        state._previous[signum] = signal.getsignal(signum)
        signal.signal(signum, state._handle)
    global _INSTALLED
    _INSTALLED = state
    return state


# The state install() made last: requeue() asks it whether the ranks stopped for a request.
_INSTALLED: Preemption | None = None


def should_stop(state: Preemption, comm: Any = None, *, step: int | None = None, every: int = 1) -> bool:
    """True on every rank if any rank was asked to stop: call it at the same step boundary on all ranks.

    With ``step`` and ``every`` the ranks talk only every ``every`` steps (an MPI allreduce costs more than a
    small model's step); in between it answers False on every rank alike, so they never disagree. Why they
    stop is agreed too: ``state.stopped`` is True on every rank when a stop request (`hpcx stop`) was seen by
    any, even if another rank saw a preemption signal; rank 0 then acknowledges it in the run's ``control/``.
    Once stopped for a request, it answers True without talking again.
    """
    if state.stopped:
        return True
    if step is not None and every > 1 and step % every:
        return False
    if comm is None:  # this process alone decides (and looks for requests itself)
        return _decide(state, _cause(state, look=True), step, rank=None, size=1)
    ranks = Collective(comm)
    # One rank looks at the control files (the agreement tells the others): one stat per job, not per rank.
    mine = _cause(state, look=ranks.rank == 0)
    if not ranks.any_true(mine[0] != GO_ON):
        return False
    cause = max(ranks.allgather(mine), key=lambda c: c[0])  # only when stopping: says why, same on all ranks
    return _decide(state, cause, step, rank=ranks.rank, size=ranks.size)


def _cause(state: Preemption, *, look: bool) -> tuple[int, dict[str, Any] | None]:
    """Why this rank would stop (GO_ON, PREEMPTED, STOP_REQUESTED) and the stop request it saw."""
    request = state.watch.request() if look and state.watch is not None else None
    if request is not None:
        return STOP_REQUESTED, request
    return (PREEMPTED if state.requested else GO_ON), None


def _decide(
    state: Preemption,
    cause: tuple[int, dict[str, Any] | None],
    step: int | None,
    *,
    rank: int | None,
    size: int,
) -> bool:
    """Record what the ranks agreed (``cause``) in ``state``; rank 0 (``rank`` None: this process's launcher
    rank) acknowledges a stop request."""
    why, request = cause
    if why == GO_ON:
        return False
    if why == PREEMPTED:
        state.reason = "preempt"
        return True
    state.reason, state.stop_request, state.stop_step = "stop", request or {}, step
    if (rank if rank is not None else _launcher_rank()) == 0 and state.watch is not None:
        control.acknowledge(state.watch, state.stop_request, step, size)
        by = state.stop_request.get("by") or "someone"
        at = f" at step {step}" if step is not None else ""
        print(
            f"hpcx: stop requested by {by} (hpcx stop): stopping{at}, without requeueing",
            file=sys.stderr,
            flush=True,
        )
    return True


def _launcher_rank() -> int:
    from hpcx.runtime.rankenv import detect

    return detect().rank


def requeue(
    comm: Any = None,
    *,
    max_restarts: int | None = None,
    log: Callable[[str], None] | None = None,
    state: Preemption | None = None,
) -> bool:
    """Rank 0 asks Slurm to requeue this job (after everyone saved); False when the restart cap is reached, and
    for a job that stopped because `hpcx stop` asked (``state``, default install()'s, is ``stopped``): it ends
    with exit status 0. The cap is $HPCX_MAX_RESTARTS (default 5) against $SLURM_RESTART_COUNT. Slurm then
    ends this run of the job and starts it again, so callers exit right after."""
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    stopped = state or _INSTALLED
    if stopped is not None and stopped.stopped:
        return _not_for_a_stop(comm, stopped, say)
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


def _not_for_a_stop(comm: Any, state: Preemption, say: Callable[[str], None]) -> bool:
    """requeue() of a job that stopped on request: no requeue, once every rank saved; rank 0 says so."""
    ranks = Collective(comm)
    ranks.barrier()  # every rank finished saving
    if ranks.rank == 0:
        say(f"hpcx: not requeuing: {_stop_words(state)}; a new run resumes from the saved checkpoint")
    return False


def _stop_words(state: Preemption) -> str:
    """What a stopped job says of itself: stopped at step N on request of USER (hpcx stop)."""
    request = state.stop_request or {}
    at = f" at step {state.stop_step}" if state.stop_step is not None else ""
    return f"stopped{at} on request of {request.get('by') or 'someone'} (hpcx stop)"
