"""What `hpcx report RUN` does: join the run's records with Slurm's accounting, write report.json and, when
matplotlib is there, report.html; the CLI only prints the result."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hpcx.errors import HpcxError
from hpcx.reports.build import build_report, write_html, write_report
from hpcx.reports.sharing import query_node_jobs
from hpcx.runs import Run
from hpcx.runs.provenance import record_accounting

if TYPE_CHECKING:
    from hpcx.site import Site


def produce_for_site(
    run: Run, *, task: int | None, site: Callable[[], Site], carbon_intensity: float | None, html: bool
) -> dict[str, Any]:
    """:func:`produce` with the energy block (carbon intensity, PUE) and name of the site ``site()`` returns,
    asked for only now; a report never fails for want of a site file (none, then, and no name)."""
    energy, site_name = _site_energy(site)
    return produce(
        run, task=task, site_energy=energy, site_name=site_name, carbon_intensity=carbon_intensity, html=html
    )


def _site_energy(site: Callable[[], Site]) -> tuple[dict[str, Any], str | None]:
    try:
        chosen = site()
        return dict(chosen.energy), chosen.name
    except (HpcxError, OSError):
        return {}, None


def produce(
    run: Run,
    *,
    task: int | None,
    site_energy: dict[str, Any],
    site_name: str | None,
    carbon_intensity: float | None,
    html: bool,
) -> dict[str, Any]:
    """The report of ``run`` (one task of an array with ``task``) written beside it: the document, where it was
    written, and where the page was written or why not. ``carbon_intensity`` overrides the site's."""
    energy = dict(site_energy)
    if carbon_intensity is not None:
        energy.update(carbon_intensity_g_per_kwh=carbon_intensity, carbon_source="--carbon-intensity")
    accounting = _accounting(run)
    doc = build_report(
        run,
        accounting,
        task=task,
        site_energy=energy,
        site_name=site_name,
        node_jobs=query_node_jobs(accounting),
    )
    out: dict[str, Any] = {
        "report_path": str(write_report(run, doc)),
        "html_path": None,
        "html_skipped": None,
        "report": doc,
    }
    if not html:
        out["html_skipped"] = "--no-html"
        return out
    try:
        out["html_path"] = str(write_html(run, doc))
    except ImportError as exc:
        out["html_skipped"] = f"{exc}: pip install 'hpcx[report]' for report.html"
    return out


def _accounting(run: Run) -> dict[str, Any] | None:
    """Slurm's own record of the job, kept beside ours; a report never fails for want of it (no sacct, no
    slurmdbd, an unwritable run directory): it is then built from what is there."""
    try:
        return record_accounting(run)
    except (HpcxError, OSError):
        return None
