"""sweep: a parameter sweep as job arrays."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.cli.complete import complete_run
from hpcx.cli.jobs import PROFILE_HELP
from hpcx.runs import find_run
from hpcx.submit.command_line import spec_path, sweep_preview, sweep_with_profile
from hpcx.submit.sweep_submit import load_spec, prepare, retry_failed, submit_sweep

PREVIEW_ROWS = 20
PREVIEW_COMMANDS = 5  # each task's command as hpcx.run will run it, for the first few tasks


@cli.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the task table, the first tasks' commands and the script; submit nothing.",
)
@click.option("--max-parallel", type=click.IntRange(min=1), help="At most N tasks running at once.")
@click.option(
    "--retry-failed",
    "retry",
    metavar="RUN",
    shell_complete=complete_run,
    help="Resubmit the tasks of sweep RUN that ended without completing (failed, timed out, "
    "cancelled, ...), into the same run.",
)
@click.option("--profile/--no-profile", default=None, help=PROFILE_HELP)
@pass_ctx
def sweep(
    obj: Ctx,
    spec: str | None,
    dry_run: bool,
    max_parallel: int | None,
    retry: str | None,
    profile: bool | None,
) -> None:
    """Run the parameter sweep SPEC.yaml as job arrays: one task table, one run directory.

    \b
    Example spec:
      name: lr-scan
      kind: serial
      resources: {time: "00:20:00"}
      command: [python, train.py, --lr, "{lr}", --seed, "{seed}"]
      parameters:
        grid: {lr: [0.1, 0.01, 0.001], model: [small, large]}
        repeats: 3
      exclude: [{lr: 0.1, model: large}]
    """
    if retry:
        doc = retry_failed(find_run(obj.runs_root.path, retry), obj.site.allow_env)
        obj.emit("sweep.retry", doc, _retry_text)
        return
    ps = sweep_with_profile(prepare(*load_spec(spec_path(spec)), obj.site, obj.user, max_parallel), profile)
    if dry_run:
        obj.emit("sweep", sweep_preview(ps, Path.cwd(), obj.runs_root.path), _preview_text)
        return
    doc = submit_sweep(ps, Path.cwd(), obj.runs_root.path, _progress(len(ps.tasks)))
    obj.emit("sweep", doc, _submitted_text)


def _submitted_text(doc: dict[str, Any]) -> str:
    return (
        f"submitted sweep {doc['run_id']}: {doc['tasks']} tasks as {doc['arrays']} array job(s) "
        f"{', '.join(doc['job_ids'])} (partition {doc['partition']})\n  run directory: {doc['run_dir']}"
    )


def _retry_text(doc: dict[str, Any]) -> str:
    """What --retry-failed did, by the states the tasks ended in (a cancelled task is not a failed one)."""

    def counted(counts: dict[str, int]) -> str:
        return ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))

    if not doc["retried"]:
        return f"nothing to resubmit: no task of {doc['run_id']} ended without completing ({counted(doc['states'])})"
    return (
        f"resubmitted {len(doc['retried'])} task(s) of {doc['run_id']} ({counted(doc['retried_states'])}) "
        f"as job(s) {', '.join(doc['job_ids'])}"
    )


def _preview_text(doc: dict[str, Any]) -> str:
    tasks = doc["tasks"]
    lines = [
        f"{len(tasks)} tasks in {len(doc['arrays'])} array(s): {' '.join(doc['arrays'])}",
        "",
        f"{'TASK':>6}  {'SEED':>10}  NAME",
    ]
    shown = tasks if len(tasks) <= PREVIEW_ROWS else tasks[: PREVIEW_ROWS // 2] + tasks[-PREVIEW_ROWS // 2 :]
    for i, t in enumerate(shown):
        if len(tasks) > PREVIEW_ROWS and i == PREVIEW_ROWS // 2:
            lines.append(f"{'...':>6}  ({len(tasks) - PREVIEW_ROWS} more)")
        lines.append(f"{t['task']:>6}  {t['seed']:>10}  {t['name']}")
    first = tasks[:PREVIEW_COMMANDS]
    lines += ["", f"commands of the first {len(first)} of {len(tasks)} task(s):"]
    lines += [f"{t['task']:>6}  {shlex.join(t['command'])}" for t in first]
    return "\n".join(lines) + "\n\n" + doc["script"].rstrip()


def _progress(n_tasks: int) -> Any:
    """A progress bar on stderr while writing large task tables (only on a terminal)."""
    if n_tasks < 5000 or not sys.stderr.isatty():
        return None
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task("writing task table", total=n_tasks)
    bar.start()

    def advance(n: int) -> None:
        bar.advance(task, n)
        if bar.tasks[0].completed >= n_tasks - 999:
            bar.stop()

    return advance
