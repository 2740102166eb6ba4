"""stop: ask a running job to save and end at its next step boundary (hpcx.runs.stop)."""

from __future__ import annotations

from typing import Any

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.cli.complete import complete_run
from hpcx.runs import find_run_task


@cli.command()
@click.argument("run", shell_complete=complete_run)
@click.option(
    "--task",
    "tasks",
    type=click.IntRange(0),
    multiple=True,
    metavar="N",
    help="Only task N of a sweep or array (repeatable); RUN_TASK says the same for one task.",
)
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(0),
    metavar="S",
    help="Wait up to S seconds for the job to confirm; then send it the early signal Slurm sends before the "
    "time limit (scancel --signal, USR2 unless the job's --signal says otherwise), as for a job that never "
    "calls should_stop().",
)
@pass_ctx
def stop(obj: Ctx, run: str, tasks: tuple[int, ...], grace_s: float | None) -> None:
    """Stop RUN cleanly: its ranks save a checkpoint at their next should_stop() check and end with exit
    status 0, without requeueing (unlike scancel, which loses the work since the last checkpoint).

    A sweep or array: every running task stops this way, and tasks still pending are cancelled (scancel).
    A job that never calls hpcx.runtime.preempt.should_stop() does not see the request: give --grace S, or
    use `hpcx cancel`.

    \b
    Examples:
      hpcx stop 20261207-101500-ab12cd            # the whole run (every running task of a sweep)
      hpcx stop 20261207-101500-ab12cd --task 3   # one task of a sweep or array
      hpcx stop 4242 --grace 120                  # by Slurm job id; the early signal after 120 s
    """
    from hpcx.runs.stop import stop_run

    found, task = find_run_task(obj.runs_root.path, run)
    for n in tasks:
        find_run_task(obj.runs_root.path, found.id, n)  # an unknown task is refused, naming the run's tasks
    chosen = sorted({*tasks, *([task] if task is not None else [])})
    obj.emit("stop", stop_run(found, chosen, grace_s), stop_text)


def stop_text(doc: dict[str, Any]) -> str:
    """`hpcx stop`'s document for a person: one line per job or task, saying what was done and what comes."""
    lines = [_line(doc, t) for t in doc["tasks"]]
    if any(t["outcome"] == "requested" for t in doc["tasks"]):
        lines.append(
            f"  not acknowledged yet: the ranks see the request at their next should_stop() check, save and end "
            f"(`hpcx status {doc['run_id']}` shows it). A job that never calls should_stop() does not stop this "
            f"way: `hpcx stop {doc['run_id']} --grace 60` sends it the early signal ({doc['signal']}) after 60 s "
            f"without an answer, `hpcx cancel {doc['run_id']}` ends it now."
        )
    return "\n".join(lines)


def _line(doc: dict[str, Any], t: dict[str, Any]) -> str:
    name = doc["run_id"] if t["task"] is None else f"{doc['run_id']} task {t['task']}"
    outcome = t["outcome"]
    if outcome == "cancelled":
        return f"cancelled {name}: it had not started ({t['state']})"
    if outcome == "stopped":
        return f"stopped {name} at step {t['step']}: its ranks save a checkpoint there and end without requeueing"
    if outcome == "ended":
        return f"{name} ended ({t['ended']}) before acknowledging the stop request"
    if outcome == "signalled":
        return (
            f"{name} did not acknowledge within {doc['grace_s']:g} s (a job that never calls should_stop()?): sent "
            f"it {doc['signal']} {_how(doc)}, the warning it gets before its time limit: a program that handles it "
            f"saves and ends; under hpcx's job script one that does not goes on running (`hpcx cancel "
            f"{doc['run_id']}` ends it), while a script of your own with no trap for it ends there, as a cancel would"
        )
    return f"asked {name} to stop (job {t['job_id']}, requested by {doc['requested_by']})"


def _how(doc: dict[str, Any]) -> str:
    if doc["scheduler"] != "slurm":
        return "through its job script"
    where = " --batch" if doc["signal_to"] == "batch" else ""
    return f"(scancel --signal={doc['signal']}{where})"
