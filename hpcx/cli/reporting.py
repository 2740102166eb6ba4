"""report."""

from __future__ import annotations

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.provenance import record_accounting
from hpcx.reports import build_report, render_text, write_report
from hpcx.runs import find_run


@cli.command()
@click.argument("run")
@pass_ctx
def report(obj: Ctx, run: str) -> None:
    """Merge RUN's per-rank records: print a summary and write report/report.json."""
    found = find_run(obj.runs_root[0], run)
    if found.job.get("scheduler") == "slurm":
        record_accounting(found)  # Slurm's own record of the job, kept beside ours
    doc = build_report(found)
    path = write_report(found, doc)
    obj.emit(
        "report",
        {"report_path": str(path), "report": doc},
        lambda d: f"{render_text(d['report'])}\n\nreport: {d['report_path']}",
    )
