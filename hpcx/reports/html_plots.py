"""The report page's plots: matplotlib on the Agg backend, each figure an inline SVG in the page kit's
figure (hpcx.reports.page), drawn from report.json alone: node and GPU timelines, the rank x time heatmap,
communication by call and message size, regions per rank, each rank's I/O over time (its processes' counters,
checkpoints marked) and the I/O through hpcx.io per rank."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from hpcx.reports.page import figure

MAX_NODE_LINES = 12  # more nodes than this are drawn as their median with the min-max band
MAX_HEATMAP_BINS = 300
MAX_REGIONS = 10
MAX_CALLS = 10


class _Plots:
    """matplotlib on the Agg backend, each figure saved as SVG text with its own id salt and its ids prefixed
    (several inline SVGs in one page must not share ids) and no date, so the same report renders to the same
    bytes."""

    def __init__(self) -> None:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        self.plt = plt
        # parse_math off: a region or call name with a $ is text, not TeX (which could fail to parse).
        self.rc = {
            "text.parse_math": False,
            "svg.fonttype": "none",
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }

    def svg(self, name: str, draw: Callable[[Any], Any], size: tuple[float, float]) -> str:
        with self.plt.rc_context({**self.rc, "svg.hashsalt": f"hpcx-{name}"}):
            fig = self.plt.figure(figsize=size)
            try:
                draw(fig)
                fig.tight_layout()
                buf = io.StringIO()
                fig.savefig(buf, format="svg", metadata={"Date": None})
            finally:
                self.plt.close(fig)
        return figure(buf.getvalue(), name, anchor=f"fig-{name}")


def _lines(ax: Any, series: list[tuple[str, list[float], list[float | None]]], unit: str, title: str) -> None:
    """One line per series, or with many the median and the min-max band over a common time grid."""
    import numpy as np

    clean = []
    for label, t, y in series:
        pts = [(a, b) for a, b in zip(t, y) if b is not None]
        if pts:
            clean.append((label, [p[0] for p in pts], [p[1] for p in pts]))
    if not clean:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes, color="#8a93a3")
    elif len(clean) <= MAX_NODE_LINES:
        for label, times, values in clean:
            ax.plot(times, values, lw=1.1, label=label)
        if len(clean) > 1:
            ax.legend(fontsize=7, loc="best", ncol=2 if len(clean) > 4 else 1)
    else:
        end = max(t[-1] for _, t, _ in clean)
        grid = np.linspace(0, end, 200)
        stack = np.array([np.interp(grid, t, y) for _, t, y in clean])
        ax.fill_between(grid, stack.min(0), stack.max(0), alpha=0.25, label=f"min-max of {len(clean)}")
        ax.plot(grid, np.median(stack, 0), lw=1.2, label="median")
        ax.legend(fontsize=7)
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_title(title)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel(unit)


Series = list[tuple[str, list[float], list[float | None]]]


def _fig_nodes(p: _Plots, report: dict[str, Any]) -> str:
    nodes = report.get("node_timelines") or []
    if not nodes:
        return ""
    panels = _node_panels(nodes)

    def draw(fig: Any) -> None:
        for i, (title, unit, series) in enumerate(panels):
            _lines(fig.add_subplot(len(panels), 1, i + 1), series, unit, title)

    return p.svg("nodes", draw, (10, 2.4 * len(panels)))


def _node_panels(nodes: list[dict[str, Any]]) -> list[tuple[str, str, Series]]:
    """Memory, CPU package power (where RAPL had it) and network, one series per node."""
    tl = [(n["node"], n["timeline"]) for n in nodes]
    mem: Series = [
        (node, t["t"], [None if v is None else v / 1024 for v in t["mem_used_mb"]]) for node, t in tl
    ]
    panels = [("node memory used (sampled)", "GiB", mem)]
    power: Series = [
        (node, t["cpu_power_t"], t["cpu_power_w"])
        for node, t in tl
        if any(v is not None for v in t["cpu_power_w"])
    ]
    if power:
        panels.append(("CPU package power (derived from RAPL energy)", "W", power))
    net: Series = [
        (
            node,
            t["t"],
            [None if a is None or b is None else a + b for a, b in zip(t["net_rx_mb_s"], t["net_tx_mb_s"])],
        )
        for node, t in tl
    ]
    panels.append(("network receive + send (derived)", "MB/s", net))
    return panels


def _fig_gpus(p: _Plots, report: dict[str, Any]) -> str:
    gpus = [
        (f"{n['node']} GPU {g['index']}", g)
        for n in report.get("node_timelines") or []
        for g in n["timeline"]["gpus"]
    ]
    if not gpus:
        return ""
    panels = [
        ("GPU power (sampled)", "W", "power_w", 1.0),
        ("GPU utilisation (sampled)", "%", "util_pct", 1.0),
        ("GPU memory used, whole device (NVML, sampled)", "GiB", "mem_used_mb", 1 / 1024),
    ]

    def draw(fig: Any) -> None:
        for i, (title, unit, key, scale) in enumerate(panels):
            series = [
                (label, g["t"], [None if v is None else v * scale for v in g[key]]) for label, g in gpus
            ]
            _lines(fig.add_subplot(len(panels), 1, i + 1), series, unit, title)

    return p.svg("gpus", draw, (10, 7.2))


def heatmap_grid(ranks: list[dict[str, Any]], bins: int = MAX_HEATMAP_BINS) -> tuple[Any, Any, Any]:
    """Per rank, CPU cores busy (CPU seconds over wall seconds between samples) and RSS in GiB, averaged
    into common time bins: arrays (ranks x bins) with NaN where a rank has no sample, and the bin edges."""
    import numpy as np

    # Timelines count from their own rank's start: put them on the job's clock (a rank that ran an earlier
    # step as well as the last one starts before the others).
    first = min((r["start_t"] for r in ranks if r.get("start_t") is not None), default=0.0)
    shift = [(r["start_t"] - first) if r.get("start_t") is not None else 0.0 for r in ranks]
    end = max((r["timeline"][-1][0] + d for r, d in zip(ranks, shift) if r["timeline"]), default=0.0)
    n = max(1, min(bins, max(len(r["timeline"]) for r in ranks)))
    edges = np.linspace(0.0, end if end > 0 else 1.0, n + 1)
    cpu = np.full((len(ranks), n), np.nan)
    rss = np.full((len(ranks), n), np.nan)
    for i, r in enumerate(ranks):
        tl = np.array(r["timeline"], dtype=float).reshape(-1, 3)
        if len(tl):
            tl[:, 0] += shift[i]
            _bin_rank(tl, edges, cpu[i], rss[i])
    return cpu, rss, edges


def _bin_rank(tl: Any, edges: Any, cpu: Any, rss: Any) -> None:
    """One rank's samples (t, RSS MB, CPU s) averaged into the bins: ``cpu`` and ``rss`` filled in place."""
    import numpy as np

    n = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, tl[:, 0], side="right") - 1, 0, n - 1)
    count = np.bincount(idx, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        rss[:] = np.bincount(idx, tl[:, 1], minlength=n) / 1024 / count
        if len(tl) > 1:
            dt, dc = np.diff(tl[:, 0]), np.diff(tl[:, 2])
            busy = np.where(dt > 0, dc / np.where(dt > 0, dt, 1), np.nan)
            mid = (tl[1:, 0] + tl[:-1, 0]) / 2  # a rate belongs to the middle of its interval
            j = np.clip(np.searchsorted(edges, mid, side="right") - 1, 0, n - 1)
            ok = ~np.isnan(busy)
            cpu[:] = np.bincount(j[ok], busy[ok], minlength=n) / np.bincount(j[ok], minlength=n)


def _fig_heatmap(p: _Plots, report: dict[str, Any]) -> str:
    ranks = [r for r in report.get("ranks") or [] if r.get("timeline")]
    if not ranks:
        return ""
    cpu, rss, edges = heatmap_grid(ranks)
    labels = [r["rank"] for r in ranks]
    panels = (
        (cpu, "CPU cores busy per rank (derived)", "cores"),
        (rss, "memory (RSS) per rank (sampled)", "GiB"),
    )

    def draw(fig: Any) -> None:
        for i, (grid, title, unit) in enumerate(panels):
            ax = fig.add_subplot(2, 1, i + 1)
            extent = (edges[0], edges[-1], len(labels) - 0.5, -0.5)
            img = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis", extent=extent)
            fig.colorbar(img, ax=ax, label=unit, fraction=0.04, pad=0.01)
            ax.set_title(title)
            ax.set_xlabel("seconds since the rank started")
            ax.set_ylabel("rank")
            ax.grid(False)
            if len(labels) <= 16:
                ax.set_yticks(range(len(labels)), [str(x) for x in labels])

    height = 2 * min(6.0, 1.2 + 0.12 * len(ranks))
    return p.svg("heatmap", draw, (10, max(4.0, height)))


def bucket_label(bucket: int) -> str:
    if bucket <= 0:
        return "0 B"
    for unit, scale in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if bucket >= scale:
            return f"{bucket // scale}{unit}"
    return f"{bucket}B"


def _fig_comm(p: _Plots, comm: dict[str, Any] | None) -> str:
    if not comm or not comm.get("calls"):
        return ""
    calls = comm["calls"][:MAX_CALLS]

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 2, 1)
        names = [f"{c['call']} ({c['lib']})" for c in calls][::-1]
        ax.barh(names, [c["seconds"] for c in calls][::-1], color="#3b6fb6")
        ax.set_xlabel("seconds, all ranks")
        ax.set_title("time in calls")
        _by_size(fig.add_subplot(1, 2, 2), calls, comm.get("sizes") or [])

    return p.svg("comm", draw, (10, 3.6))


def _by_size(ax: Any, calls: list[dict[str, Any]], sizes: list[dict[str, Any]]) -> None:
    """The top five calls' seconds stacked by message-size bucket."""
    top = [(c["lib"], c["call"]) for c in calls[:5]]
    buckets = sorted({s["bucket"] for s in sizes if (s["lib"], s["call"]) in top})
    if buckets:
        x = list(range(len(buckets)))
        bottom = [0.0] * len(buckets)
        for lib, call in top:
            ys = [
                sum(s["seconds"] for s in sizes if (s["lib"], s["call"], s["bucket"]) == (lib, call, b))
                for b in buckets
            ]
            ax.bar(x, ys, bottom=bottom, label=f"{call} ({lib})")
            bottom = [a + b for a, b in zip(bottom, ys)]
        ax.set_xticks(x, [bucket_label(b) for b in buckets], rotation=45)
        ax.legend(fontsize=7)
    ax.set_xlabel("message size (power-of-two bucket)")
    ax.set_ylabel("seconds, all ranks")
    ax.set_title("time by message size")


def _fig_regions(p: _Plots, regions: dict[str, Any] | None) -> str:
    rows = (regions or {}).get("regions", [])[:MAX_REGIONS]
    if not rows:
        return ""

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        for y, r in enumerate(rows):
            xs = [pr["seconds"] for pr in r["per_rank"]]
            ax.plot([min(xs), max(xs)], [y, y], color="#9aa5b8", lw=3, solid_capstyle="round")
            ax.scatter(xs, [y] * len(xs), s=10, color="#3b6fb6", zorder=3)
            ax.scatter([r["seconds_mean"]], [y], marker="|", s=200, color="#1d2430", zorder=4)
            if r["imbalance"] is not None:
                ax.annotate(
                    f"rank {r['slowest_rank']}: +{100 * r['imbalance']:.0f}%",
                    (max(xs), y),
                    xytext=(6, -3),
                    textcoords="offset points",
                    fontsize=8,
                )
        ax.set_yticks(range(len(rows)), [r["name"] for r in rows])
        ax.invert_yaxis()
        ax.set_xlabel("seconds per rank (dots: ranks, bar: mean; label: slowest rank over the mean)")
        ax.set_title("regions per rank")
        ax.margins(x=0.15)
        ax.set_xlim(left=0)  # from zero, so the gap between ranks reads at its true size

    return p.svg("regions", draw, (10, 1.2 + 0.45 * len(rows)))


def _fig_io(p: _Plots, io_doc: dict[str, Any] | None) -> str:
    rows = (io_doc or {}).get("ranks", [])
    if not rows or not any(r[op]["bytes"] for r in rows for op in ("read", "write")):
        return ""

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        x = [r["rank"] for r in rows]
        ax.bar([v - 0.2 for v in x], [r["read"]["bytes"] / 2**20 for r in rows], width=0.4, label="read")
        ax.bar([v + 0.2 for v in x], [r["write"]["bytes"] / 2**20 for r in rows], width=0.4, label="write")
        ax.set_xlabel("rank")
        ax.set_ylabel("MiB")
        ax.set_title("I/O per rank (hpcx.io)")
        ax.legend(fontsize=7)

    return p.svg("io", draw, (10, 3.0))


def _fig_io_time(p: _Plots, report: dict[str, Any]) -> str:
    """Bytes read and written by each rank's processes over the job (cumulative /proc counters: a burst is a
    step), the checkpoint commits marked where they happened."""
    ranks = [r for r in report.get("ranks") or [] if r.get("io_timeline")]
    if not ranks:
        return ""
    first = min((r["start_t"] for r in ranks if r.get("start_t") is not None), default=0.0)
    shift = [(r["start_t"] - first) if r.get("start_t") is not None else 0.0 for r in ranks]
    end = max(pt[0] + d for r, d in zip(ranks, shift) for pt in r["io_timeline"][-1:])
    steps = ((report.get("io") or {}).get("checkpoints") or {}).get("steps") or []
    # Steps committed outside the ranks' time (an earlier run's, kept on disk) are not this run's writes.
    marks = [(s["t"] - first, s["step"]) for s in steps if 0 <= s["t"] - first <= end + 1]
    panels: tuple[tuple[str, int, list[tuple[float, int]]], ...] = (
        ("written by the ranks' processes, every write() (counter)", 2, marks),
        ("read by the ranks' processes, every read() (counter)", 1, []),
    )

    def draw(fig: Any) -> None:
        for i, (title, col, panel_marks) in enumerate(panels):
            series: Series = [
                (
                    f"rank {r['rank']}",
                    [pt[0] + d for pt in r["io_timeline"]],
                    [pt[col] / 2**20 for pt in r["io_timeline"]],
                )
                for r, d in zip(ranks, shift)
            ]
            _io_panel(fig.add_subplot(len(panels), 1, i + 1), series, title, panel_marks)

    return p.svg("io-time", draw, (10, 5.0))


def _io_panel(ax: Any, series: Series, title: str, marks: list[tuple[float, int]]) -> None:
    """One panel of :func:`_fig_io_time`: the ranks' lines, each checkpoint commit a dashed line."""
    _lines(ax, series, "MiB", title)
    ax.set_xlabel("seconds since the first rank started")
    for t, step in marks:
        ax.axvline(t, color="#c0392b", ls="--", lw=0.9)
        ax.annotate(
            f"checkpoint {step}",
            (t, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -10),
            textcoords="offset points",
            fontsize=7,
            color="#c0392b",
        )


def _fig_curves(p: _Plots, curves: dict[str, Any] | None) -> str:
    """Every logged metric over steps (report.json's ``curves``), one panel each, two to a row; the main metric
    first."""
    metrics = [c for c in (curves or {}).get("metrics", []) if c["value"]]
    if not metrics:
        return ""
    main = (curves or {}).get("main")
    metrics.sort(key=lambda c: c["name"] != main)  # stable: the logged order after the main metric
    cols = 1 if len(metrics) == 1 else 2
    rows = -(-len(metrics) // cols)

    def draw(fig: Any) -> None:
        for i, c in enumerate(metrics):
            ax = fig.add_subplot(rows, cols, i + 1)
            ax.plot(c["step"], c["value"], lw=1.1, marker="." if len(c["step"]) < 30 else None)
            ax.set_title(c["name"] + (" (main)" if c["name"] == main else ""))
            ax.set_xlabel("step")
            ax.ticklabel_format(axis="y", useOffset=False)

    return p.svg("curves", draw, (10 if cols == 2 else 7, 2.6 * rows))
