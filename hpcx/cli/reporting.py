"""report."""

from __future__ import annotations

from typing import Any

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.errors import HpcxError
from hpcx.reports import build_report, render_text, write_html, write_report
from hpcx.reports.sharing import query_node_jobs
from hpcx.runs import Run, find_run_task
from hpcx.runs.provenance import record_accounting


@cli.command()
@click.argument("run")
@click.option("--task", type=click.IntRange(0), metavar="N",
              help="Report one task of an array job or sweep rank by rank (report/task-NNNNN.*).")  # fmt: skip
@click.option("--html/--no-html", default=True, show_default=True,
              help="Also write the self-contained page report/report.html (needs matplotlib).")  # fmt: skip
@click.option("--carbon-intensity", type=click.FloatRange(0, 2000), metavar="G_PER_KWH",
              help="Grid carbon intensity for the estimate, instead of the site's "
              "energy.carbon_intensity_g_per_kwh.")  # fmt: skip
@pass_ctx
def report(obj: Ctx, run: str, task: int | None, html: bool, carbon_intensity: float | None) -> None:
    """Merge RUN's per-rank records with Slurm's accounting: print a summary and advice, write
    report/report.json and report/report.html."""
    found, named = find_run_task(obj.runs_root.path, run)  # RUN_TASK names the task as --task does
    task = named if task is None else task
    energy, site_name = _site_energy(obj)
    if carbon_intensity is not None:
        energy = {
            **energy,
            "carbon_intensity_g_per_kwh": carbon_intensity,
            "carbon_source": "--carbon-intensity",
        }
    accounting = _accounting(found)
    doc = build_report(found, accounting, task=task, site_energy=energy, site_name=site_name,
                       node_jobs=query_node_jobs(accounting))  # fmt: skip
    path = write_report(found, doc)
    out: dict[str, Any] = {"report_path": str(path), "html_path": None, "html_skipped": None, "report": doc}
    if not html:
        out["html_skipped"] = "--no-html"
    else:
        try:
            out["html_path"] = str(write_html(found, doc))
        except ImportError as exc:
            out["html_skipped"] = f"{exc}: pip install 'hpcx[report]' for report.html"
    obj.emit("report", out, _text)


def _text(d: dict[str, Any]) -> str:
    lines = [render_text(d["report"]), "", f"report: {d['report_path']}"]
    if d["html_path"]:
        lines.append(f"page:   {d['html_path']}")
    elif d["html_skipped"]:
        lines.append(f"page:   not written ({d['html_skipped']})")
    return "\n".join(lines)


def _site_energy(obj: Ctx) -> tuple[dict[str, Any], str | None]:
    """The site's energy block (carbon intensity, PUE); a report never fails for want of a site file."""
    try:
        return dict(obj.site.energy), obj.site.name
    except (HpcxError, OSError):
        return {}, None


def _accounting(run: Run) -> dict[str, Any] | None:
    """Slurm's own record of the job, kept beside ours; a report never fails for want of it (no sacct, no
    slurmdbd, an unwritable run directory): it is then built from what is there."""
    try:
        return record_accounting(run)
    except (HpcxError, OSError):
        return None
