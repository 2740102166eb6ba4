"""runs: list the run directories, filtered, through the run index."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.errors import UsageError
from hpcx.runs.index import RunFilter, parse_filter
from hpcx.runs.state import list_rows

DEFAULT_LIMIT = 50


def render_runs(doc: dict[str, Any], matched: int, filtered: bool) -> str:
    where = f"under {doc['root']} ({doc['root_source']})"
    if not doc["runs"]:
        return f"no runs {where} match the filters" if filtered else f"no runs {where}"
    header = ("RUN", "JOB", "KIND", "NAME", "STATE", "CREATED", "SWEEP", "STEP", "METRIC")
    table = [header] + [
        (
            r["run_id"],
            r["job_id"] or "-",
            r["kind"] or "-",
            r["name"] or "-",
            r["state"],
            _local(r["created"]),
            r["sweep"] or "-",
            "-" if r.get("step") is None else str(r["step"]),
            _metric_text(r.get("metric")),
        )
        for r in doc["runs"]
    ]
    # A column no shown run fills is left out (SWEEP, and STEP and METRIC while no run has logged anything).
    dropped = {6} if all(r["sweep"] is None for r in doc["runs"]) else set()
    if all(r.get("step") is None and r.get("metric") is None for r in doc["runs"]):
        dropped |= {7, 8}
    table = [tuple(v for i, v in enumerate(row) if i not in dropped) for row in table]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in table]
    more = f"; --limit 0 shows all {matched}" if matched > len(doc["runs"]) else ""
    return "\n".join(lines + [f"{len(doc['runs'])} of {matched} runs {where}{more}"])


def _metric_text(metric: dict[str, Any] | None) -> str:
    """``loss=0.1234``, with ``(task N)`` for a sweep's best task; ``-`` for none."""
    if not metric:
        return "-"
    value = metric["value"]
    text = f"{metric['name']}={value:.4g}" if isinstance(value, float) else f"{metric['name']}={value}"
    return text if metric.get("task") is None else f"{text} (task {metric['task']})"


def _local(created: str | None) -> str:
    """An ISO time as the reader's local time, to the minute."""
    try:
        return _dt.datetime.fromisoformat(created or "").astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return "-"


@cli.command("runs")
@click.option("--name", metavar="TEXT", help="Job name contains TEXT, or matches it as a glob (*, ?, [...]).")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="Job state (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, ...; any case), or active / "
    "finished (repeatable).",
)
@click.option("--sweep", metavar="ID", help="Runs of the sweep ID (or an id prefix).")
@click.option(
    "--since",
    metavar="DATE",
    help="Created at or after DATE (2024-05-01, 2024-05-01T14:30) or an age (2h, 3d).",
)
@click.option(
    "--until", metavar="DATE", help="Created before DATE (a bare date includes that day), or an age."
)
@click.option(
    "--limit", default=DEFAULT_LIMIT, show_default=True, metavar="N", help="The newest N runs; 0: all."
)
@click.option(
    "--rebuild", is_flag=True, help="Discard the run index and rebuild it from the run directories."
)
@pass_ctx
def runs_cmd(
    obj: Ctx,
    name: str | None,
    states: tuple[str, ...],
    sweep: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    rebuild: bool,
) -> None:
    """List the runs under the runs root, newest last.

    Reads the run index (<runs root>/.index), refreshed from the run directories first; asks the scheduler only
    about jobs not known to have finished. See docs/runs.md.
    """
    wanted = parse_filter(name=name, states=states, sweep=sweep, since=since, until=until)
    if limit < 0:
        raise UsageError(f"--limit {limit} is negative", hint="give a number of runs, or 0 for all")
    root, source = obj.runs_root
    shown, matched = list_rows(root, wanted, limit, rebuild=rebuild)
    doc = {"root": str(root), "root_source": source, "runs": shown}
    obj.emit("runs", doc, lambda d: render_runs(d, matched, wanted != RunFilter()))
