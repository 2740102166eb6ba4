"""compare.html: one self-contained file (no script, nothing fetched), built with the page kit the report page
uses (hpcx.reports.page): the settings, the group and comparison tables, the plots inlined (the groups'
learning curves among them when the runs logged metrics), every replicate with the file and field of its value,
and the notes. Every text from the runs is HTML-escaped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpcx.compare.markdown import replicate_table, report_comparison_table, settings_rows
from hpcx.compare.text import group_table, headline
from hpcx.reports import page
from hpcx.reports.page import Raw, esc

PLOT_CAPTIONS = {
    "groups": "Each replicate of each group as a grey point; beside it the group's {stat} with its {level} "
    "{method} interval. The labels name the parameters that differ between groups.",
    "differences": "Each comparison's difference of the {stat} (A - B) with its {level} {method} interval, "
    "against zero (dashed); the corrected Welch p at the right.",
    "curves": "Each group's mean of rank 0's logged {curve_metric} at each step over the replicates that "
    "logged it (n in the legend), in its {curve_level} Student t interval (shaded, where two or more did); "
    "a requeued replicate's steps take its latest attempt's values.",
}
# The replicate table's columns: group, run, task, seed, value, file, field, how.
_REPLICATE_CLASSES = ("", "id", "num", "num", "num", "file", "file", "")


def render_html(doc: dict[str, Any], svgs: dict[str, str], curves: dict[str, Any] | None = None) -> str:
    """compare.html: the settings, the group and comparison tables, the plots (``svgs``: stem -> SVG text,
    inlined; ``curves``: the groups' curves drawn in curves.svg, for its caption), every replicate with the file and field of its value, and the notes. Self-contained: no script,
    no stylesheet or font or image fetched; every text from the runs is HTML-escaped."""
    name = doc["metric"]["name"]
    body = [
        f"<h1>Comparison: {esc(name)}</h1>",
        f"<p>{esc(headline(doc))}.</p>",
        page.pairs_table(settings_rows(doc), cls="settings"),
        '<h2 id="groups">Groups</h2>',
        _groups(doc),
        *_comparisons(doc),
        *_plots(doc, svgs, curves),
        *_replicates(doc),
        *_notes(doc),
        f"<footer>hpcx compare, {esc(doc['schema'])}: compare.json beside this file holds every number."
        "</footer>",
    ]
    return page.document(f"Comparison: {name}", body)


def _linked(doc: dict[str, Any], rows: Sequence[Sequence[str]], columns: Sequence[int]) -> list[list[Any]]:
    """The rows with each group name in ``columns`` a link to the group's replicates."""
    index = {g["name"]: i for i, g in enumerate(doc["groups"])}

    def link(text: str) -> Any:
        return Raw(f'<a href="#replicates-{index[text]}">{esc(text)}</a>') if text in index else text

    return [[link(c) if j in columns else c for j, c in enumerate(r)] for r in rows]


def _groups(doc: dict[str, Any]) -> str:
    head, *rows = group_table(doc)
    return page.table(head, _linked(doc, rows, (0,)), classes=("", "num", "num", "num", "num", "num"))


def _comparisons(doc: dict[str, Any]) -> list[str]:
    if not doc["comparisons"]:
        return []
    s = doc["settings"]
    against = f"against baseline {s['baseline']}" if s["baseline"] else "all pairs"
    head, *rows = report_comparison_table(doc)
    return [
        '<h2 id="comparisons">Comparisons</h2>',
        f"<p>{esc(against)}: difference of the {esc(s['statistic'])}; p-values corrected by "
        f"{esc(s['correction'])} over the comparisons shown; seeds needed per group for power "
        f"{esc(s['power'])} at alpha {esc(s['alpha'])}.</p>",
        page.table(head, _linked(doc, rows, (0, 1)), classes=("", "", *["num"] * 9)),
    ]


def _plots(doc: dict[str, Any], svgs: dict[str, str], curves: dict[str, Any] | None) -> list[str]:
    if not svgs:
        return []
    s = doc["settings"]
    fill = {"stat": s["statistic"], "level": f"{s['ci']['level']:.0%}", "method": s["ci"]["method"]}
    if curves:
        fill.update(curve_metric=curves["metric"], curve_level=f"{curves['level']:.0%}")
    out = ['<h2 id="plots">Plots</h2>']
    for stem, text in svgs.items():
        caption = PLOT_CAPTIONS.get(stem, stem).format(**fill)
        caption += f" Also {stem}.svg and {stem}.pdf beside this file."
        out.append(page.figure(text, stem, caption, cls="plot"))
    return out


def _replicates(doc: dict[str, Any]) -> list[str]:
    head, *rows = replicate_table(doc)
    groups, start = [], 0
    for i, g in enumerate(doc["groups"]):
        groups.append((f"replicates-{i}", rows[start : start + len(g["replicates"])]))
        start += len(g["replicates"])
    return [
        '<h2 id="replicates">Replicates</h2>',
        "<p>Every value behind the tables: the run (and sweep task) it was measured in, its seed, the exact "
        "value, and the file (relative to the run's directory, RUNS_ROOT/RUN_ID) and field it was read "
        "from.</p>",
        page.grouped_table(head, groups, classes=_REPLICATE_CLASSES, cls="replicates"),
    ]


def _notes(doc: dict[str, Any]) -> list[str]:
    if not doc["notes"]:
        return []
    return ['<h2 id="notes">Notes</h2>', *[f'<p class="note">{esc(n)}</p>' for n in doc["notes"]]]
