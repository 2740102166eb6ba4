"""report."""

from __future__ import annotations

from typing import Any

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.errors import HpcxError
from hpcx.provenance import record_accounting
from hpcx.reports import build_report, render_text, write_report
from hpcx.runs import Run, find_run


@cli.command()
@click.argument("run")
@pass_ctx
def report(obj: Ctx, run: str) -> None:
    """Merge RUN's per-rank records with Slurm's accounting: print a summary and advice, write
    report/report.json."""
    found = find_run(obj.runs_root[0], run)
    doc = build_report(found, _accounting(found))
    path = write_report(found, doc)
    obj.emit(
        "report",
        {"report_path": str(path), "report": doc},
        lambda d: f"{render_text(d['report'])}\n\nreport: {d['report_path']}",
    )


def _accounting(run: Run) -> dict[str, Any] | None:
    """Slurm's own record of the job, kept beside ours; a report never fails for want of it (no sacct, no
    slurmdbd, an unwritable run directory): it is then built from what is there."""
    try:
        return record_accounting(run)
    except (HpcxError, OSError):
        return None
