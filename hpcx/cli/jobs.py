"""render, submit, status, logs, cancel, runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hpcx import submission
from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.cli.views import LOG_TAIL_LINES, job_states, render_runs, render_status, tail_logs
from hpcx.runs import find_run, list_runs
from hpcx.schedulers import JobRef, get_scheduler
from hpcx.site import runs_root
from hpcx.submission import Request, parse_sets, render_preview, resolve

RESOURCE_OPTIONS = [
    click.option("--partition", "-p", help="Partition (default: the site's default_partition)."),
    click.option("--nodes", "-N", help="Number of nodes."),
    click.option("--ntasks-per-node", help="Tasks (ranks) per node."),
    click.option("--cpus-per-task", "-c", help="CPUs per task."),
    click.option("--gpus-per-node", help="GPUs per node."),
    click.option("--mem", help="Memory per node: 4000M, 4G, ..."),
    click.option("--time", "-t", help="Wall-clock limit: MM, HH:MM:SS or D-HH:MM:SS."),
    click.option("--account", "-A", help="Account to charge."),
    click.option("--qos", help="Quality of service."),
    click.option("--name", "-J", help="Job name."),
    click.option(
        "--set", "sets", multiple=True, metavar="NAME=VALUE", help="Template variable (repeatable)."
    ),
]
_RESOURCE_KEYS = (
    "partition",
    "nodes",
    "ntasks_per_node",
    "cpus_per_task",
    "gpus_per_node",
    "mem",
    "time",
    "account",
    "qos",
    "name",
)


def resource_options(fn: Any) -> Any:
    for option in reversed(RESOURCE_OPTIONS):
        fn = option(fn)
    return fn


def _request(kind: str | None, command: tuple[str, ...], opts: dict[str, Any]) -> Request:
    options = {k: opts[k] for k in _RESOURCE_KEYS}
    return Request(
        kind=kind, options=options, variables=parse_sets(opts["sets"]), command=command, workdir=Path.cwd()
    )


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("kind")
@resource_options
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def render(obj: Ctx, kind: str, command: tuple[str, ...], **opts: Any) -> None:
    """Print the job script for KIND with RESOURCES; nothing is submitted.

    Example: hpcx render mpi -N 2 --ntasks-per-node 1 -- python train.py
    """
    prep = resolve(_request(kind, command, opts), obj.site)
    rendered = render_preview(prep, Path.cwd())
    obj.emit(
        "render",
        {"script": rendered.text, "partition": prep.partition.name, "sources": prep.sources},
        lambda d: d["script"].rstrip("\n"),
    )


@cli.command()
@click.argument("kind")
@resource_options
@click.option("--dry-run", is_flag=True, help="Check and render, print the script, submit nothing.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def submit(obj: Ctx, kind: str, command: tuple[str, ...], dry_run: bool, **opts: Any) -> None:
    """Check, render and submit KIND with RESOURCES; prints the run id and job id.

    Example: hpcx submit mpi -N 2 --ntasks-per-node 1 -- python examples/allreduce_hdf5.py
    """
    prep = resolve(_request(kind, command, opts), obj.site)
    if dry_run:
        rendered = render_preview(prep, Path.cwd())
        obj.emit(
            "submit",
            {"dry_run": True, "script": rendered.text, "partition": prep.partition.name},
            lambda d: d["script"].rstrip("\n"),
        )
        return
    result = submission.submit(prep, Path.cwd())
    obj.emit(
        "submit",
        result,
        lambda d: (
            f"submitted run {d['run_id']} as {d['scheduler']} job {d['job_id']} "
            f"(partition {d['partition']})\n  run directory: {d['run_dir']}"
        ),
    )


@cli.command()
@click.argument("runs", nargs=-1)
@click.option("--all", "show_all", is_flag=True, help="Every run, not only the 20 newest.")
@pass_ctx
def status(obj: Ctx, runs: tuple[str, ...], show_all: bool) -> None:
    """State of RUN ... (run ids, prefixes or job ids); without RUN, the newest runs."""
    root, _ = runs_root(obj.site)
    if runs:
        chosen = [find_run(root, r) for r in runs]
    else:
        chosen = list_runs(root) if show_all else list_runs(root)[-20:]
    obj.emit("status", {"runs": job_states(chosen)}, render_status)


@cli.command()
@click.argument("run")
@click.option(
    "--lines", "-n", default=LOG_TAIL_LINES, show_default=True, help="Lines from the end of each log."
)
@pass_ctx
def logs(obj: Ctx, run: str, lines: int) -> None:
    """Print the end of RUN's stdout and stderr logs."""
    found = find_run(runs_root(obj.site)[0], run)
    obj.emit(
        "logs",
        tail_logs(found, lines),
        lambda d: (
            "\n".join(f"==> {f['path']} <==\n{f['text']}" for f in d["files"])
            or f"run {found.id} has no logs yet"
        ),
    )


@cli.command()
@click.argument("runs", nargs=-1, required=True)
@pass_ctx
def cancel(obj: Ctx, runs: tuple[str, ...]) -> None:
    """Cancel the jobs of RUN ..."""
    root, _ = runs_root(obj.site)
    found = [find_run(root, r) for r in runs]
    by_scheduler: dict[str, list[JobRef]] = {}
    for run in found:
        job = run.job
        by_scheduler.setdefault(job.get("scheduler", "slurm"), []).append(JobRef(str(job["job_id"]), run.dir))
    for name, refs in by_scheduler.items():
        get_scheduler(name).cancel(refs)
    obj.emit(
        "cancel",
        {"cancelled": [r.id for r in found]},
        lambda d: "\n".join(f"cancelled {r}" for r in d["cancelled"]),
    )


@cli.command("runs")
@pass_ctx
def runs_cmd(obj: Ctx) -> None:
    """List the run directories under the runs root."""
    root, source = runs_root(obj.site)
    obj.emit(
        "runs",
        {
            "root": str(root),
            "root_source": source,
            "runs": [{"run_id": r.id, "run_dir": str(r.dir), **r.job} for r in list_runs(root)],
        },
        render_runs,
    )
