"""The terminal view of a comparison document: the headline, the group and comparison tables, the notes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpcx.compare import stats
from hpcx.reports.terminal import count as _count


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _p(value: float | None, exact: bool = False) -> str:
    """A p-value for a table; below 1e-4 the terminal says so, the written reports give its size."""
    if value is None:
        return "-"
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.2e}" if exact else "<1e-4"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def group_table(doc: dict[str, Any]) -> list[list[str]]:
    stat = doc["settings"]["statistic"].upper()
    head = ["GROUP", "N", f"{stat} [{doc['settings']['ci']['level']:.0%} CI]", "STD", "MEDIAN", "IQM"]
    return [head] + [
        [
            g["name"],
            str(g["n"]),
            f"{_num(g[doc['settings']['statistic']])} [{_num(g['ci']['low'])}, {_num(g['ci']['high'])}]",
            _num(g["std"]),
            _num(g["median"]),
            _num(g["iqm"]),
        ]
        for g in doc["groups"]
    ]


def comparison_table(doc: dict[str, Any]) -> list[list[str]]:
    head = [
        "A",
        "B",
        "A - B",
        "CI",
        "WELCH P",
        "MWU P",
        f"P ({doc['settings']['correction'].upper()})",
        "COHEN D",
        "CLIFF",
        "SEEDS",
    ]
    return [head] + [
        [
            c["a"],
            c["b"],
            _num(c["difference"]),
            f"[{_num(c['ci']['low'])}, {_num(c['ci']['high'])}]",
            _p(c["welch"]["p"]),
            _p(c["mann_whitney"]["p"]),
            _p(c["p_adjusted"]),
            _num(c["cohens_d"], 3),
            _num(c["cliffs_delta"], 3),
            str(c["seeds_needed"]["n"] or f">{stats.MAX_SEEDS}"),
        ]
        for c in doc["comparisons"]
    ]


def headline(doc: dict[str, Any]) -> str:
    m, ci = doc["metric"], doc["settings"]["ci"]
    how = f"rank 0's {m['reduce']} value" if m["source"] == "logged" else "from the run reports"
    n, runs = sum(g["n"] for g in doc["groups"]), len(doc["runs"])
    tasks = any(r["task"] is not None for g in doc["groups"] for r in g["replicates"])
    where = (
        f"tasks of sweep run {doc['runs'][0]}"
        if tasks and runs == 1
        else f"tasks of {runs} runs"
        if tasks
        else _count(runs, "run")
    )
    interval = f"{ci['level']:.0%} {ci['method']} intervals"
    if ci["method"] != "t":
        interval += f" ({ci['resamples']} resamples, seed {ci['seed']})"
    left = len(doc.get("left_out") or [])
    dropped = f"; {left} not completed, left out" if left else ""
    return (
        f"{m['name']} ({how}): {_count(n, 'replicate')} in {_count(len(doc['groups']), 'group')} "
        f"({where}{dropped}); {interval}"
    )


def render_text(doc: dict[str, Any]) -> str:
    """The terminal view: the groups, then the comparisons, then the notes."""
    lines = [headline(doc), "", *_table(group_table(doc))]
    if doc["comparisons"]:
        s = doc["settings"]
        against = f"against baseline {s['baseline']}" if s["baseline"] else "all pairs"
        lines += [
            "",
            f"{against}: difference of the {s['statistic']}; seeds per group for power "
            f"{s['power']} at alpha {s['alpha']}",
            *_table(comparison_table(doc)),
        ]
    lines += [f"note: {n}" for n in doc["notes"]]
    return "\n".join(lines)
