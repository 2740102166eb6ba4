"""`hpcx compare`: runs (or a sweep's tasks) grouped by their parameters, seeds as replicates, one metric per
replicate, and the statistics of hpcx.compare.stats over the groups. Reads run directories only; prints or writes.

A replicate is one sweep task (its row of tasks.jsonl) or one single run (its manifest's ``--set`` variables).
Its parameters, minus the replicate keys (seed, repeat, rep), name its group. Its value is a metric logged by
the job (``hpcx.runtime.log``: rank 0's records, reduced to one number) or a number from its report.
docs/compare.md describes the document this package returns.

Modules, in the order a comparison runs: replicates (each replicate's value and where it was read), grouping,
completion (which replicates ran to completion), comparison (the document), stats (the numbers, scipy's),
text (the terminal view), markdown, html_page and plots (what --out writes; outputs writes them all).
"""

from __future__ import annotations

from hpcx.compare import stats
from hpcx.compare.comparison import COMPARE_SCHEMA, FEW_REPLICATES_NOTE, collect, compare
from hpcx.compare.completion import (
    _left_out_why,
    leave_out_unfinished,
    left_out_notes,
    replicate_states,
)
from hpcx.compare.grouping import Group, find_baseline, group_of, group_replicates
from hpcx.compare.html_page import PLOT_CAPTIONS, render_html
from hpcx.compare.markdown import render_markdown, replicate_table, report_comparison_table, settings_rows
from hpcx.compare.outputs import write_outputs
from hpcx.compare.plots import PLOT_STYLE, axis_label, plot, plot_labels
from hpcx.compare.replicates import (
    REDUCTIONS,
    REPLICATE_KEYS,
    REPORT_FIELDS,
    REPORT_METRICS,
    REPORT_UNITS,
    SUFFIX_UNITS,
    Options,
    Replicate,
    logged_values,
    metric_source,
    metric_unit,
    metrics_file,
    reduce_values,
    replicates,
    report_summary,
    value_of,
    value_source,
)
from hpcx.compare.text import comparison_table, group_table, headline, render_text

__all__ = [
    "COMPARE_SCHEMA",
    "FEW_REPLICATES_NOTE",
    "PLOT_CAPTIONS",
    "PLOT_STYLE",
    "REDUCTIONS",
    "REPLICATE_KEYS",
    "REPORT_FIELDS",
    "REPORT_METRICS",
    "REPORT_UNITS",
    "SUFFIX_UNITS",
    "Group",
    "Options",
    "Replicate",
    "_left_out_why",
    "axis_label",
    "collect",
    "compare",
    "comparison_table",
    "find_baseline",
    "group_of",
    "group_replicates",
    "group_table",
    "headline",
    "leave_out_unfinished",
    "left_out_notes",
    "logged_values",
    "metric_source",
    "metric_unit",
    "metrics_file",
    "plot",
    "plot_labels",
    "reduce_values",
    "render_html",
    "render_markdown",
    "render_text",
    "replicate_states",
    "replicate_table",
    "replicates",
    "report_comparison_table",
    "report_summary",
    "settings_rows",
    "stats",
    "value_of",
    "value_source",
    "write_outputs",
]
