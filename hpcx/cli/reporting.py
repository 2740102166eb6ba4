"""report."""

from __future__ import annotations

from typing import Any

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.reports import render_text
from hpcx.reports.produce import produce_for_site
from hpcx.runs import find_run_task


@cli.command()
@click.argument("run")
@click.option(
    "--task",
    type=click.IntRange(0),
    metavar="N",
    help="Report one task of an array job or sweep rank by rank (report/task-NNNNN.*).",
)
@click.option(
    "--html/--no-html",
    default=True,
    show_default=True,
    help="Also write the self-contained page report/report.html (needs matplotlib).",
)
@click.option(
    "--carbon-intensity",
    type=click.FloatRange(0, 2000),
    metavar="G_PER_KWH",
    help="Grid carbon intensity for the estimate, instead of the site's energy.carbon_intensity_g_per_kwh.",
)
@pass_ctx
def report(obj: Ctx, run: str, task: int | None, html: bool, carbon_intensity: float | None) -> None:
    """Merge RUN's per-rank records with Slurm's accounting: print a summary and advice, write
    report/report.json and report/report.html."""
    found, named = find_run_task(obj.runs_root.path, run)  # RUN_TASK names the task as --task does
    task = named if task is None else task
    out = produce_for_site(
        found, task=task, site=lambda: obj.site, carbon_intensity=carbon_intensity, html=html
    )
    obj.emit("report", out, _text)


def _text(d: dict[str, Any]) -> str:
    lines = [render_text(d["report"]), "", f"report: {d['report_path']}"]
    if d["html_path"]:
        lines.append(f"page:   {d['html_path']}")
    elif d["html_skipped"]:
        lines.append(f"page:   not written ({d['html_skipped']})")
    return "\n".join(lines)
