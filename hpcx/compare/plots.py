"""The plots: groups.{svg,pdf} and differences.{svg,pdf}, with matplotlib imported when they are drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpcx.compare.grouping import _fmt
from hpcx.compare.replicates import metric_unit
from hpcx.compare.text import _p
from hpcx.errors import UsageError

# Vector output that journals take (TrueType, not Type 3, fonts in the PDF; glyphs as paths in the SVG, so no
# font is needed to view it), readable sizes at a column's width, and fixed ids and no timestamps: the same
# comparison writes the same bytes. Text from the runs is never read as mathtext ($ in a parameter).
PLOT_STYLE = {
    "svg.hashsalt": "hpcx",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "font.size": 9,
    "axes.labelsize": 9,
    "axes.titlesize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "0.9",
    "grid.linewidth": 0.6,
    "text.parse_math": False,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.04,
}
_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}


def axis_label(doc: dict[str, Any]) -> str:
    """The metric's name with its unit where known (``wall_s (s)``)."""
    m = doc["metric"]
    return f"{m['name']} ({m['unit']})" if m.get("unit") else m["name"]


def plot_labels(groups: Sequence[dict[str, Any]], width: int = 40) -> dict[str, str]:
    """Group name -> its label on a plot: the parameters that differ between groups (those every group shares
    are in the tables), cut to ``width`` characters."""
    keys = list(dict.fromkeys(k for g in groups for k in g["params"]))
    varying = [k for k in keys if len({_fmt(g["params"].get(k)) for g in groups}) > 1]
    labels = {}
    for g in groups:
        short = ",".join(f"{k}={_fmt(g['params'].get(k))}" for k in varying if k in g["params"]) or g["name"]
        labels[g["name"]] = short if len(short) <= width else short[: width - 3] + "..."
    return labels


def plot(doc: dict[str, Any], out_dir: Path, curves: dict[str, Any] | None = None) -> list[Path]:
    """groups.{svg,pdf}: each replicate as a point, the statistic with its interval beside it;
    differences.{svg,pdf}: each comparison's difference with its interval, against zero; with ``curves``
    (:func:`hpcx.compare.outputs.group_curves`) curves.{svg,pdf}: each group's mean over steps in its
    interval's band."""
    try:
        import matplotlib
    except ImportError as exc:
        raise UsageError("--out needs matplotlib", hint="pip install 'hpcx[report]'") from exc
    matplotlib.use("Agg")
    with matplotlib.rc_context(PLOT_STYLE):
        written = _groups_plot(doc, out_dir / "groups")
        if doc["comparisons"]:
            written += _differences_plot(doc, out_dir / "differences")
        if curves:
            written += _curves_plot(doc, curves, out_dir / "curves")
    return written


_POINT = {"s": 14, "color": "0.5", "edgecolors": "none", "zorder": 2}
_INTERVAL = {"fmt": "o", "color": "C0", "markersize": 5, "capsize": 3}
_LEGEND = {
    "loc": "lower left",
    "bbox_to_anchor": (0, 1.01),
    "ncols": 2,
    "frameon": False,
    "borderaxespad": 0,
    "handletextpad": 0.3,
    "columnspacing": 1.2,
}


def _groups_plot(doc: dict[str, Any], stem: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    stat, ci_s = doc["settings"]["statistic"], doc["settings"]["ci"]
    interval = f"{stat}, {ci_s['level']:.0%} {ci_s['method']} interval"
    groups = doc["groups"]
    labels = plot_labels(groups)
    names = [labels[g["name"]] for g in groups]
    rotate = len(groups) > 3 or max(len(n) for n in names) > 12
    fig, ax = plt.subplots(figsize=(max(3.5, 0.9 * len(groups) + 1.5), 3.2))
    ax.grid(axis="x", visible=False)
    for i, g in enumerate(groups):
        _draw_group(ax, i, g, stat, interval)
    ax.set_xticks(range(len(groups)), names, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel(axis_label(doc))
    ax.legend(**_LEGEND)
    return _save(fig, stem)


def _draw_group(ax: Any, i: int, g: dict[str, Any], stat: str, interval: str) -> None:
    """Group ``i``'s replicates as grey points (spread a little), its statistic and interval beside them."""
    values = [r["value"] for r in g["replicates"]]
    step = min(0.04, 0.2 / max(len(values), 1))
    jitter = [(k - (len(values) - 1) / 2) * step for k in range(len(values))]
    ax.scatter([i - 0.12 + j for j in jitter], values, label="replicate" if i == 0 else None, **_POINT)
    centre, ci = g[stat], g["ci"]
    if centre is not None and ci["low"] is not None and ci["high"] is not None:
        yerr = [[centre - ci["low"]], [ci["high"] - centre]]
        ax.errorbar(
            [i + 0.12], [centre], yerr=yerr, zorder=3, label=interval if i == 0 else None, **_INTERVAL
        )


def _differences_plot(doc: dict[str, Any], stem: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    stat, ci_s, corr = doc["settings"]["statistic"], doc["settings"]["ci"], doc["settings"]["correction"]
    rows = doc["comparisons"]
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(rows) + 1.3))
    ax.grid(axis="y", visible=False)
    for i, c in enumerate(rows):
        _draw_difference(ax, i, c, corr)
    ax.axvline(0, color="0.4", linewidth=0.8, linestyle="--")
    labels = plot_labels(doc["groups"])
    names = [f"{labels.get(c['a'], c['a'])} - {labels.get(c['b'], c['b'])}" for c in rows]
    ax.set_yticks(range(len(rows)), names)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(f"difference of the {stat}: {axis_label(doc)}")
    ax.set_title(f"A - B with {ci_s['level']:.0%} {ci_s['method']} interval", loc="left")
    return _save(fig, stem)


def _draw_difference(ax: Any, i: int, c: dict[str, Any], corr: str) -> None:
    """Comparison ``i``'s difference with its interval, and its corrected Welch p at the right."""
    diff, lo, hi = c["difference"], c["ci"]["low"], c["ci"]["high"]
    if diff is not None and lo is not None and hi is not None:
        ax.errorbar([diff], [i], xerr=[[diff - lo], [hi - diff]], **_INTERVAL)
    ax.annotate(
        f"p ({corr}) {_p(c['p_adjusted'])}",
        xy=(1.02, i),
        xycoords=("axes fraction", "data"),
        va="center",
        ha="left",
        fontsize=8,
        color="0.3",
    )


def _curves_plot(doc: dict[str, Any], curves: dict[str, Any], stem: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    labels = plot_labels(doc["groups"])
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for i, g in enumerate(curves["groups"]):
        color = f"C{i % 10}"
        label = f"{labels.get(g['name'], g['name'])} (n={g['replicates']})"
        ax.plot(g["step"], g["mean"], color=color, linewidth=1.2, label=label)
        band = [
            (s, lo, hi)
            for s, lo, hi in zip(g["step"], g["low"], g["high"])
            if lo is not None and hi is not None
        ]
        if band:
            steps, low, high = zip(*band)
            ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("step")
    unit = metric_unit(f"metric.{curves['metric']}")  # a logged name, whatever it looks like
    ax.set_ylabel(f"{curves['metric']} ({unit})" if unit else curves["metric"])
    ax.set_title(f"mean over replicates, {curves['level']:.0%} t interval", loc="left")
    ax.legend(frameon=False)
    return _save(fig, stem)


def _save(fig: Any, stem: Path) -> list[Path]:
    import io

    import matplotlib.pyplot as plt

    from hpcx.fsutil import atomic_write

    paths = []
    try:
        for ext in ("svg", "pdf"):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, metadata=_METADATA[ext])
            paths.append(atomic_write(stem.with_suffix(f".{ext}"), buf.getvalue()))
    finally:
        plt.close(fig)
    return paths
