"""compare.md, and the tables it shares with compare.html: the settings, the groups, the comparisons (both
tests, raw and corrected), and every replicate with the file and field its value was read from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpcx.compare import stats
from hpcx.compare.text import _num, _p, group_table, headline


def settings_rows(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The report's header: what was measured, how it became one number, and how the intervals were made."""
    return [*_measured_rows(doc), *_method_rows(doc), ("runs", ", ".join(doc["runs"]))]


def _measured_rows(doc: dict[str, Any]) -> list[tuple[str, str]]:
    m = doc["metric"]
    logged = m["source"] == "logged"
    return [
        ("metric", m["name"] + (f" ({m['unit']})" if m.get("unit") else "")),
        (
            "source",
            "logged by the job (rank 0's metrics file)"
            if logged
            else "the run reports (report/report.json, or the profile records)",
        ),
        (
            "reduced",
            f"{m['reduce']} of rank 0's logged values, one number per replicate"
            if logged
            else "one number per report: not reduced",
        ),
    ]


def _method_rows(doc: dict[str, Any]) -> list[tuple[str, str]]:
    s = doc["settings"]
    ci = s["ci"]
    bootstrap = ci["method"] != "t"
    unused = "" if bootstrap else " (not used: the t interval does not resample)"
    detect = f"{s['detect']:g}" if s["detect"] is not None else "the observed difference"
    by = ",".join(s["by"]) if s["by"] is not None else "all parameters but " + ", ".join(s["replicate_keys"])
    return [
        ("statistic", s["statistic"]),
        ("interval", f"{ci['method']} ({'bootstrap' if bootstrap else 'Student / Welch'})"),
        ("level", f"{ci['level']:g}"),
        ("resamples", str(ci["resamples"]) + unused),
        ("seed", str(ci["seed"]) + unused),
        ("correction", f"{s['correction']} over {len(doc['comparisons'])} comparison(s)"),
        ("seeds needed", f"power {s['power']:g} at alpha {s['alpha']:g} to detect {detect}"),
        ("compared", f"against baseline {s['baseline']}" if s["baseline"] else "all pairs"),
        ("grouped by", by),
    ]


def report_comparison_table(doc: dict[str, Any]) -> list[list[str]]:
    """The comparisons with both tests' p-values, raw and corrected (the terminal shows Welch's corrected)."""
    corr = doc["settings"]["correction"]
    head = [
        "A",
        "B",
        "A - B",
        f"{doc['settings']['ci']['level']:.0%} CI",
        "Welch p",
        f"Welch p ({corr})",
        "MWU p",
        f"MWU p ({corr})",
        "Cohen's d",
        "Cliff's delta",
        "seeds needed",
    ]
    return [head] + [_report_comparison_row(c) for c in doc["comparisons"]]


def _report_comparison_row(c: dict[str, Any]) -> list[str]:
    mwu = c["mann_whitney"]
    return [
        c["a"],
        c["b"],
        _num(c["difference"]),
        f"[{_num(c['ci']['low'])}, {_num(c['ci']['high'])}]",
        _p(c["welch"]["p"], True),
        _p(c["p_adjusted"], True),
        _p(mwu["p"], True),
        _p(mwu.get("p_adjusted"), True),
        _num(c["cohens_d"], 3),
        _num(c["cliffs_delta"], 3),
        str(c["seeds_needed"]["n"] or f">{stats.MAX_SEEDS}"),
    ]


def replicate_table(doc: dict[str, Any]) -> list[list[str]]:
    """Every replicate: its group, run id, sweep task, seed, exact value, and the file and field it came from
    (the file relative to the run's directory, RUNS_ROOT/RUN_ID)."""
    head = ["group", "run", "task", "seed", "value", "file", "field", "how"]
    rows = [head]
    for g in doc["groups"]:
        for r in g["replicates"]:
            where = r.get("source") or {}
            rows.append(
                [
                    g["name"],
                    r["run_id"],
                    "-" if r["task"] is None else str(r["task"]),
                    "-" if r["seed"] is None else str(r["seed"]),
                    repr(r["value"]),
                    where.get("file", "-"),
                    where.get("field", "-"),
                    where.get("how", "-"),
                ]
            )
    return rows


def _md_cell(text: str) -> str:
    """A Markdown table cell: pipes escaped, and ``&``, ``<``, ``>`` as entities so a parameter value such as
    ``<b>`` is shown, not interpreted as HTML by the renderer."""
    import html

    return html.escape(text, quote=False).replace("|", "\\|")


def _md_table(rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [[_md_cell(c) for c in r] for r in rows]
    return ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])] + [
        "| " + " | ".join(r) + " |" for r in cells[1:]
    ]


def render_markdown(doc: dict[str, Any], images: Sequence[str]) -> str:
    """A Markdown page: the settings, the tables, the plots, and every replicate with the run, task and file
    its value came from."""
    lines = [f"# Comparison: {_md_cell(doc['metric']['name'])}", "", _md_cell(headline(doc)) + ".", ""]
    lines += _md_table([["setting", "value"], *[list(r) for r in settings_rows(doc)]])
    lines += ["", "## Groups", ""] + _md_table(group_table(doc))
    if doc["comparisons"]:
        lines += ["", "## Comparisons", ""] + _md_table(report_comparison_table(doc))
    lines += ["", *[f"![{name}]({name})" for name in images if name.endswith(".svg")]]
    lines += ["", "## Replicates", "", "Files are relative to the run's directory (RUNS_ROOT/RUN_ID).", ""]
    lines += _md_table(replicate_table(doc))
    lines += [f"\nNote: {_md_cell(n)}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"
