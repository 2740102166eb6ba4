"""The dashboard's three pages as HTML shells in the report's page kit: the headings and empty places the script
(static/app.js) fills from the JSON routes. A run id is the only value from a run in a shell, escaped; everything
else arrives as JSON and is set as text by the script, never as HTML."""

from __future__ import annotations

from hpcx.reports.page import document, esc

SCRIPTS = '<script src="/static/plotly.min.js"></script>\n<script src="/static/app.js"></script>'
NAV = '<nav class="top"><a href="/">runs</a></nav>'


def _shell(title: str, page: str, parts: list[str], run_id: str = "") -> str:
    run = f' data-run="{esc(run_id)}"' if run_id else ""
    return document(
        title,
        head='<link rel="icon" href="data:,">\n<link rel="stylesheet" href="/static/ui.css">',
        body=[
            NAV,
            f'<main id="app" data-page="{page}"{run}>',
            *parts,
            '<p class="sub" id="updated">loading</p>',
            "</main>",
            SCRIPTS,
        ],
    )


def runs_page() -> str:
    """The runs list: filters (state, name, sweep, age), a sortable table the script keeps up to date."""
    return _shell(
        "hpcx runs",
        "runs",
        [
            '<h1>Runs</h1>\n<p class="sub" id="root"></p>',
            '<form id="filters" class="filters" autocomplete="off">'
            '<label>state <select name="state"><option value="">any</option><option>ACTIVE</option>'
            "<option>FINISHED</option><option>RUNNING</option><option>PENDING</option><option>COMPLETED</option>"
            "<option>STOPPED</option><option>FAILED</option><option>CANCELLED</option><option>TIMEOUT</option>"
            "</select></label>"
            '<label>name <input name="name" size="14"></label>'
            '<label>sweep <input name="sweep" size="14"></label>'
            '<label>age <select name="age"><option value="">any</option><option value="3600">1 hour</option>'
            '<option value="86400">1 day</option><option value="604800">7 days</option>'
            '<option value="2592000">30 days</option></select></label></form>',
            '<table id="runs" class="runs"><thead></thead><tbody></tbody></table>',
            '<p class="sub" id="count"></p>',
        ],
    )


def run_page(run_id: str) -> str:
    """A run: headline, live cards, learning curves (a sweep's tasks overlaid), timelines, the report."""
    return _shell(
        f"hpcx run {run_id}",
        "run",
        [
            f'<h1 id="title">{esc(run_id)}</h1>\n<p class="sub" id="headline"></p>',
            '<div class="grid" id="cards"></div>',
            '<p class="note" id="notice" hidden></p>',
            '<section id="tasks-section" hidden><h2>Tasks</h2><p class="sub" id="sweep-link"></p>'
            '<table id="tasks" class="runs"><thead></thead><tbody></tbody></table></section>',
            '<h2>Learning curves</h2><div id="curves"><p class="sub">no metrics logged yet</p></div>',
            '<h2>Timelines <span class="sub" id="timelines-of"></span></h2><div id="timelines"><p class="sub">no profile records yet</p></div>',
            '<section id="report-section" hidden><h2>Report</h2><p id="report-line"></p>'
            '<div class="grid" id="report-cards"></div><ul class="advice" id="advice"></ul>'
            '<p id="report-link"></p></section>',
        ],
        run_id,
    )


def sweep_page(run_id: str) -> str:
    """A sweep: each parameter against the main metric, the best tasks."""
    return _shell(
        f"hpcx sweep {run_id}",
        "sweep",
        [
            f'<h1 id="title">{esc(run_id)}</h1>\n<p class="sub" id="headline"></p>',
            '<div class="grid" id="cards"></div>',
            '<h2>Best tasks</h2><table id="best" class="runs"><thead></thead><tbody></tbody></table>',
            '<h2>Parameters against the metric</h2><div id="scatter" class="plots">'
            '<p class="sub">no task has logged its metric yet</p></div>',
        ],
        run_id,
    )


def study_page(run_id: str) -> str:
    """A tuning study (hpcx tune): the best value so far over time, every trial's values at the rungs (stopped
    ones marked where they stopped), each parameter against the objective, the Pareto front, the trials."""
    return _shell(
        f"hpcx study {run_id}",
        "study",
        [
            f'<h1 id="title">{esc(run_id)}</h1>\n<p class="sub" id="headline"></p>',
            '<div id="study-plots" class="plots"><p class="sub">no trial has ended yet</p></div>',
            '<h2>Trials</h2><table id="trials" class="runs"><thead></thead><tbody></tbody></table>',
        ],
        run_id,
    )
