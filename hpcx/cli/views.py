"""Text renderings of the job commands' documents (the JSON form is the document itself), and the logs' tails.

`hpcx status` shows the live columns (step/total, main metric, rate, ETA, heartbeat: hpcx.runs.live) only when some
row has live state, so a status of jobs that log nothing reads as it always did. ``--watch`` on a terminal redraws
a rich table that fits its width (rich is imported there, not when hpcx.cli is)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.table import Table

LIVE_HEADER = ("STEP", "METRIC", "RATE", "ETA", "BEAT")


def render_status(doc: dict[str, Any]) -> str:
    runs = doc["runs"]
    if not runs:
        return "no runs yet: submit one with `hpcx submit KIND -- CMD`"
    live = any(r.get("live") for r in runs)
    head = f"{'STEP':<13} {'METRIC':<24} {'RATE':>8} {'ETA':>7} {'BEAT':<12} " if live else ""
    lines = [f"{'RUN':<24} {'JOB':<14} {'KIND':<10} {'STATE':<12} {'EXIT':>4}  {head}NODES / REASON"]
    for r in runs:
        code = "" if r["exit_code"] is None else str(r["exit_code"])
        step, metric, rate, eta, beat = live_cells(r)
        cells = f"{step:<13} {metric:<24} {rate:>8} {eta:>7} {beat:<12} " if live else ""
        lines.append(
            f"{row_name(r):<24} {str(r['job_id'] or '-'):<14} {str(r['kind'] or '-'):<10} "
            f"{r['state']:<12} {code:>4}  {cells}{where_text(r)}"
        )
        if r.get("study"):
            from hpcx.tune.summary import summary_text

            lines.append("  " + summary_text(r["study"]))
    return "\n".join(lines)


def row_name(row: dict[str, Any]) -> str:
    return row["run_id"] if row.get("task") is None else f"{row['run_id']}_{row['task']}"


def where_text(row: dict[str, Any]) -> str:
    """A sweep's task counts (``3 running, 2 pending``), else the nodes or the reason it waits."""
    tasks = row.get("tasks")
    where = ", ".join(f"{n} {s.lower()}" for s, n in sorted(tasks.items())) if tasks else ""
    return where or row.get("nodes") or row.get("reason") or ""


def live_cells(row: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """STEP (step/total), METRIC (main=value; a sweep's best task in brackets), RATE, ETA and BEAT (the
    heartbeat's age, or stalled with it; a sweep's count of stalled tasks) of a status row; ``-`` for none."""
    live = row.get("live") or {}
    step = "-" if live.get("step") is None else str(live["step"])
    if live.get("total_steps"):
        step = f"{step}/{live['total_steps']}"
    metric = "-"
    if live.get("main_metric"):
        metric = f"{live['main_metric']}={number_text(live['main_value'])}"
        if live.get("best_task") is not None:
            metric += f" (task {live['best_task']})"
    rate = "-" if live.get("steps_per_s") is None else rate_text(live["steps_per_s"])
    beat = beat_text(live) if row["state"] == "RUNNING" else "-"  # a heartbeat matters while it runs
    return step, metric, rate, duration_text(live.get("eta_s")), beat


def rate_text(steps_per_s: float) -> str:
    """``9.87/s``, ``0.0123/s``; ``4790/s`` from 100 on (no exponent)."""
    return f"{steps_per_s:.0f}/s" if steps_per_s >= 100 else f"{steps_per_s:.3g}/s"


def beat_text(live: dict[str, Any]) -> str:
    stalled = live.get("stalled_tasks")
    if stalled:
        return f"{len(stalled)} stalled"
    age = live.get("heartbeat_age_s")
    if age is None:
        return "-"
    if live.get("stalled_reason") == "no new step":  # hpcx.run beats, the program logs nothing: its age then
        return f"stalled, no step {duration_text(live.get('last_log_age_s') or 0.0)}"
    return f"stalled {duration_text(age)}" if live.get("stalled") else duration_text(age)


def number_text(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def duration_text(seconds: float | None) -> str:
    """``42s``, ``5m03s``, ``2h07m``; ``-`` for None."""
    if seconds is None:
        return "-"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole // 60 % 60:02d}m"


def status_table(doc: dict[str, Any], width: int, title: str = "") -> Table:
    """`hpcx status --watch`'s rich table of ``doc`` for a terminal ``width`` columns wide (fitting_columns
    chooses the columns); a cell still too wide is cut with an ellipsis, never wrapped. Every cell is plain
    text: a run's names are never read as markup."""
    from rich.table import Table
    from rich.text import Text

    rows = [status_cells(row) for row in doc["runs"]]
    shown = fitting_columns(STATUS_COLUMNS, rows, width)
    table = Table(title=title or None, title_justify="left", box=None, padding=(0, 2, 0, 0), pad_edge=False)
    for n in shown:
        table.add_column(STATUS_COLUMNS[n], no_wrap=True, overflow="ellipsis")
    for cells in rows:
        table.add_row(*(Text(cells[n], style="bold red" if "stalled" in cells[n] else "") for n in shown))
    return table


STATUS_COLUMNS = ("RUN", "JOB", "KIND", "STATE", "EXIT", *LIVE_HEADER, "NODES / REASON")
# Left out first when the terminal is too narrow for all of them (RUN, STATE, STEP and METRIC always stay).
DROP_ORDER = ("JOB", "KIND", "EXIT", "ETA", "RATE", "NODES / REASON", "BEAT")
GAP = 2  # spaces after each column


def fitting_columns(columns: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    """The indices of ``columns`` to show for ``rows`` in ``width`` terminal columns: every column but those
    no row fills (``-`` or empty), then without DROP_ORDER's columns, in that order, until the rest fits."""
    natural = [max([len(name)] + [len(r[n]) for r in rows]) + GAP for n, name in enumerate(columns)]
    keep = [
        n
        for n, name in enumerate(columns)
        if name in ("RUN", "STATE") or any(r[n] not in ("", "-") for r in rows)
    ]
    for name in DROP_ORDER:
        if sum(natural[n] for n in keep) <= width:
            break
        keep = [n for n in keep if columns[n] != name]
    return keep


def status_cells(row: dict[str, Any]) -> tuple[str, ...]:
    code = "" if row["exit_code"] is None else str(row["exit_code"])
    job, kind = str(row["job_id"] or "-"), str(row["kind"] or "-")
    return (row_name(row), job, kind, row["state"], code, *live_cells(row), where_text(row))


def watch_status(docs: Iterable[dict[str, Any]], interval_s: float) -> None:
    """Redraw the status table in place on a terminal, one document at a time, until ``docs`` ends."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    with Live(console=console, auto_refresh=False, transient=False) as shown:
        for doc in docs:
            title = f"{time.strftime('%H:%M:%S')}  every {interval_s:g} s, Ctrl-C to stop"
            shown.update(status_table(doc, console.width, title), refresh=True)


def watch_lines(docs: Iterable[dict[str, Any]], interval_s: float) -> None:
    """--watch when stdout is not a terminal: each round's table as plain lines under its time."""
    for doc in docs:
        click.echo(
            f"{time.strftime('%H:%M:%S')}  every {interval_s:g} s, Ctrl-C to stop\n{render_status(doc)}"
        )


def logs_text(doc: dict[str, Any]) -> str:
    """The tails of `hpcx logs` (tail_logs' document), each under its path, or a line saying there are none."""
    what = f"task {doc['task']} of run {doc['run_id']}" if "task" in doc else f"run {doc['run_id']}"
    return "\n".join(f"==> {f['path']} <==\n{f['text']}" for f in doc["files"]) or f"{what} has no logs yet"


def show_log_text(path: str, text: str, first: bool) -> None:
    """One piece of `hpcx logs --follow` as text: `==> path <==` before each log's tail, then new output as is."""
    if first:
        click.echo(f"==> {path} <==\n{text}")
    else:
        click.echo(text, nl=False)
