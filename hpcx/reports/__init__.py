"""Per-job reports: merge the per-rank records of a run into one versioned document, and show it."""

from hpcx.reports.build import REPORT_SCHEMA, build_report, write_html, write_report
from hpcx.reports.terminal import render_text

__all__ = ["REPORT_SCHEMA", "build_report", "render_text", "write_html", "write_report"]
