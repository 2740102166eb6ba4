"""report/report.html: one self-contained page from report.json (no network: CSS, the script and every plot
are inline; plots are matplotlib SVG). Pure over the report document, so a report.json copied elsewhere can be
rendered again (``hpcx report RUN`` writes both).

Sections: summary, advice, energy and carbon, node and GPU timelines, a rank x time heatmap of CPU use and
memory, communication by call and message size, regions per rank with their imbalance, I/O, array tasks, the
profiler's own cost, the ranks, and the manifest's provenance. A section without data says why in one line.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Sequence
from typing import Any

from hpcx.reports.advice import gib, hms
from hpcx.reports.once import unavailable_energy
from hpcx.reports.terminal import comm_energy_text, count, param_text, pct, size, task_params

MAX_NODE_LINES = 12  # more nodes than this are drawn as their median with the min-max band
MAX_HEATMAP_BINS = 300
MAX_REGIONS = 10
MAX_CALLS = 10

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;padding:0 16px 48px;
color:#1d2430;background:#fff}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;
padding-bottom:3px}
.sub{color:#5a6475;margin:0 0 12px}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));
gap:8px}
.card{border:1px solid #d8dde6;border-radius:6px;padding:8px 10px}.card b{display:block;font-size:17px}
.card span{color:#5a6475;font-size:12px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}th,td{padding:3px 9px;border-bottom:1px solid #e6e9ef;
text-align:left;vertical-align:top}
th{background:#f3f5f8;cursor:default}th.sortable{cursor:pointer}td.n{text-align:right;font-variant-numeric:tabular-nums}
.advice li{margin:4px 0}.na{color:#8a93a3}.bad{color:#b42318}figure{margin:8px 0}figure svg{max-width:100%;height:auto}
code,pre{font:12px ui-monospace,monospace}pre{background:#f3f5f8;padding:8px;overflow-x:auto}
"""

# Makes the rank and task tables sortable by a click on a column header; nothing else runs.
_JS = """
(function(){
  function key(td){var t=td.getAttribute('data-v');if(t===null)t=td.textContent;var x=parseFloat(t);
    return isNaN(x)?t:x;}
  document.querySelectorAll('table.sort').forEach(function(table){
    table.querySelectorAll('th').forEach(function(th,col){
      th.classList.add('sortable');
      th.addEventListener('click',function(){
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows),up=th.dataset.dir!=='up';
        rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
          return (x<y?-1:x>y?1:0)*(up?1:-1);});
        th.dataset.dir=up?'up':'down';rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
  document.documentElement.setAttribute('data-hpcx','ready');
})();
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: float | None, fmt: str = "{:.2f}", na: str = "n/a") -> str:
    return na if value is None else fmt.format(value)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], sortable: bool = False) -> str:
    """A table; a cell given as ``(text, number)`` shows the text and sorts by the number."""
    cls = ' class="sort"' if sortable else ""
    out = [f"<table{cls}><thead><tr>", *(f"<th>{esc(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>")
        for cell in row:
            if isinstance(cell, tuple):
                text, value = cell
                out.append(f'<td class="n" data-v="{esc(value)}">{esc(text)}</td>')
            elif isinstance(cell, (int, float)):
                out.append(f'<td class="n">{esc(cell)}</td>')
            else:
                out.append(f"<td>{esc(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# --- plots -------------------------------------------------------------------------------------------------


class _Plots:
    """matplotlib on the Agg backend, each figure saved as SVG text with its own id salt (several inline
    SVGs in one page must not share ids) and no date, so the same report renders to the same bytes."""

    def __init__(self) -> None:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        self.plt = plt
        # parse_math off: a region or call name with a $ is text, not TeX (which could fail to parse).
        self.rc = {"text.parse_math": False, "svg.fonttype": "none", "font.size": 9, "axes.titlesize": 10, "axes.grid": True,
                   "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}  # fmt: skip

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
        text = buf.getvalue()
        text = re.sub(r"\s*<metadata>.*?</metadata>", "", text[text.index("<svg") :], count=1, flags=re.S)
        return f'<figure id="fig-{esc(name)}">{text}</figure>'


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
        for label, t, y in clean:
            ax.plot(t, y, lw=1.1, label=label)
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


def _fig_nodes(p: _Plots, report: dict[str, Any]) -> str:
    nodes = report.get("node_timelines") or []
    if not nodes:
        return ""
    panels: list[tuple[str, str, list[tuple[str, list[float], list[float | None]]]]] = []
    mem = [(n["node"], n["timeline"]["t"], [None if v is None else v / 1024 for v in n["timeline"]["mem_used_mb"]])
           for n in nodes]  # fmt: skip
    panels.append(("node memory used (sampled)", "GiB", mem))
    power = [(n["node"], n["timeline"]["cpu_power_t"], n["timeline"]["cpu_power_w"]) for n in nodes
             if any(v is not None for v in n["timeline"]["cpu_power_w"])]  # fmt: skip
    if power:
        panels.append(("CPU package power (derived from RAPL energy)", "W", power))
    net = [(n["node"], n["timeline"]["t"],
            [None if a is None or b is None else a + b
             for a, b in zip(n["timeline"]["net_rx_mb_s"], n["timeline"]["net_tx_mb_s"])]) for n in nodes]  # fmt: skip
    panels.append(("network receive + send (derived)", "MB/s", net))

    def draw(fig: Any) -> None:
        for i, (title, unit, series) in enumerate(panels):
            _lines(fig.add_subplot(len(panels), 1, i + 1), series, unit, title)

    return p.svg("nodes", draw, (10, 2.4 * len(panels)))


def _fig_gpus(p: _Plots, report: dict[str, Any]) -> str:
    gpus = [(f"{n['node']} GPU {g['index']}", g) for n in report.get("node_timelines") or [] for g in
            n["timeline"]["gpus"]]  # fmt: skip
    if not gpus:
        return ""
    panels = [("GPU power (sampled)", "W", "power_w", 1.0), ("GPU utilisation (sampled)", "%", "util_pct", 1.0),
              ("GPU memory used, whole device (NVML, sampled)", "GiB", "mem_used_mb", 1 / 1024)]  # fmt: skip

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
        if len(tl) == 0:
            continue
        tl[:, 0] += shift[i]
        idx = np.clip(np.searchsorted(edges, tl[:, 0], side="right") - 1, 0, n - 1)
        count = np.bincount(idx, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            rss[i] = np.bincount(idx, tl[:, 1], minlength=n) / 1024 / count
            if len(tl) > 1:
                dt, dc = np.diff(tl[:, 0]), np.diff(tl[:, 2])
                busy = np.where(dt > 0, dc / np.where(dt > 0, dt, 1), np.nan)
                mid = (tl[1:, 0] + tl[:-1, 0]) / 2  # a rate belongs to the middle of its interval
                j = np.clip(np.searchsorted(edges, mid, side="right") - 1, 0, n - 1)
                ok = ~np.isnan(busy)
                cpu[i] = np.bincount(j[ok], busy[ok], minlength=n) / np.bincount(j[ok], minlength=n)
    return cpu, rss, edges


def _fig_heatmap(p: _Plots, report: dict[str, Any]) -> str:
    ranks = [r for r in report.get("ranks") or [] if r.get("timeline")]
    if not ranks:
        return ""
    cpu, rss, edges = heatmap_grid(ranks)
    labels = [r["rank"] for r in ranks]

    def draw(fig: Any) -> None:
        for i, (grid, title, unit) in enumerate(((cpu, "CPU cores busy per rank (derived)", "cores"),
                                                  (rss, "memory (RSS) per rank (sampled)", "GiB"))):  # fmt: skip
            ax = fig.add_subplot(2, 1, i + 1)
            img = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis",
                            extent=(edges[0], edges[-1], len(labels) - 0.5, -0.5))  # fmt: skip
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
    sizes = comm.get("sizes") or []
    top = [(c["lib"], c["call"]) for c in calls[:5]]
    buckets = sorted({s["bucket"] for s in sizes if (s["lib"], s["call"]) in top})

    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 2, 1)
        names = [f"{c['call']} ({c['lib']})" for c in calls][::-1]
        ax.barh(names, [c["seconds"] for c in calls][::-1], color="#3b6fb6")
        ax.set_xlabel("seconds, all ranks")
        ax.set_title("time in calls")
        ax2 = fig.add_subplot(1, 2, 2)
        if buckets:
            x = list(range(len(buckets)))
            bottom = [0.0] * len(buckets)
            for lib, call in top:
                ys = [sum(s["seconds"] for s in sizes if (s["lib"], s["call"], s["bucket"]) == (lib, call, b))
                      for b in buckets]  # fmt: skip
                ax2.bar(x, ys, bottom=bottom, label=f"{call} ({lib})")
                bottom = [a + b for a, b in zip(bottom, ys)]
            ax2.set_xticks(x, [bucket_label(b) for b in buckets], rotation=45)
            ax2.legend(fontsize=7)
        ax2.set_xlabel("message size (power-of-two bucket)")
        ax2.set_ylabel("seconds, all ranks")
        ax2.set_title("time by message size")

    return p.svg("comm", draw, (10, 3.6))


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
                ax.annotate(f"rank {r['slowest_rank']}: +{100 * r['imbalance']:.0f}%", (max(xs), y),
                            xytext=(6, -3), textcoords="offset points", fontsize=8)  # fmt: skip
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


# --- sections ----------------------------------------------------------------------------------------------


def _cards(report: dict[str, Any]) -> str:
    s = report["summary"]
    limit = f" of {hms(s['time_limit_s'])}" if s.get("time_limit_s") else ""
    eff = s["cpu_efficiency_slurm"] if s["cpu_efficiency_slurm"] is not None else s["cpu_efficiency"]
    mem = "n/a" if s["mem_peak_mb"] is None else gib(s["mem_peak_mb"])
    req = f" of {gib(s['mem_req_mb'])}" if s.get("mem_req_mb") else ""
    cards = [
        ("state", s["state"], f"from {s['state_source']}, exit code {'-' if s['exit_code'] is None else s['exit_code']}" + "".join(
            f", {n} {k}" for k, n in ((report.get("accounting") or {}).get("state_counts") or {}).items()
            if len((report.get("accounting") or {}).get("state_counts") or {}) > 1)),
        ("elapsed", "n/a" if s["elapsed_s"] is None else hms(s["elapsed_s"]), f"requested{limit}" if limit else ""),
        ("CPU efficiency", pct(eff), f"{count(s['cpus_per_task'], 'CPU')} per task"),
        ("memory peak per node", f"{mem}{req}", s.get("mem_peak_where") or s.get("mem_peak_source") or ""),
        ("energy", "n/a" if s["energy_kwh"] is None else f"{s['energy_kwh']:.4f} kWh",
         "measured counters" if s["energy_j"] is not None else "RAPL only, of nodes shared with other jobs"
         if s.get("energy_shared_j") else "no energy counter"),
        ("carbon", "n/a" if s.get("carbon_g") is None else f"{s['carbon_g']:.1f} g CO2e",
         (report.get("carbon") or {}).get("source") or (report.get("carbon") or {}).get("reason", "")),
        ("communication", pct(s["comm_share"]), "of rank time in traced calls"),
        ("slowest rank", "n/a" if s.get("slowest_rank") is None else str(s["slowest_rank"]),
         "" if s.get("slowest_rank") is None else f"{s['slowest_rank_busy_s']:.1f} s outside comm, median "
         f"{s['median_rank_busy_s']:.1f} s"),
        ("GPUs", str(s.get("gpus") or 0), "" if s.get("gpu_util_mean_pct") is None
         else f"mean utilisation {s['gpu_util_mean_pct']:.0f}%"),
        _profiler_card(report),
    ]  # fmt: skip
    return (
        '<div class="grid">'
        + "".join(
            f'<div class="card"><span>{esc(k)}</span><b>{esc(v)}</b><span>{esc(note)}</span></div>'
            for k, v, note in cards
        )
        + "</div>"
    )


def _profiler_card(report: dict[str, Any]) -> tuple[str, str, str]:
    """The sampler's share of the allocated CPU, or its CPU seconds alone where the job was too short for a
    share to mean anything."""
    s, p = report["summary"], report.get("profiler") or {}
    if s.get("profiler_share") is None and p.get("sampler_cpu_s") is not None:
        return ("profiler overhead", f"{p['sampler_cpu_s']:.2f} s CPU", "sampler CPU time (too short a job for a "
                "share)")  # fmt: skip
    return ("profiler overhead", _num(None if s.get("profiler_share") is None else 100 * s["profiler_share"],
                                      "{:.2f}%"), "sampler CPU over allocated CPU")  # fmt: skip


def _failure(report: dict[str, Any]) -> str:
    """Why the job failed, right under its state: Slurm's reason and the end of the stderr log."""
    f = report["summary"].get("failure")
    if not f:
        return ""
    who = f"task {f['task']} {f['state']}: " if f.get("task") is not None else ""
    rank = f", rank {f['rank']}" if f.get("rank") is not None else ""
    out = f'<p class="bad">{esc(who)}Slurm\'s reason: {esc(f["reason"])}</p>'
    if f["stderr_tail"]:
        out += (f'<p class="sub">last lines of stderr ({esc(f["log"])}{esc(rank)}):</p>'
                f'<pre>{esc(chr(10).join(f["stderr_tail"]))}</pre>')  # fmt: skip
    return out


def _energy(report: dict[str, Any]) -> str:
    rows = []
    for n in report.get("nodes") or []:
        for name, e in n["energy"].items():
            if e.get("status") == "measured":
                status = f"measured; {e['scope']}: not the job's" if "scope" in e else "measured"
                rows.append([n["node"], name, (f"{e['energy_j'] / 1000:.3f}", e["energy_j"]), e["method"],
                             pct(e.get("coverage")), status])  # fmt: skip
    for where, reasons in unavailable_energy(
        report.get("nodes") or []
    ):  # each reason once, for all its nodes
        rows += [[where, names, "", "", "", f"unavailable: {why}"] for names, why in reasons]
    if rows:
        out = [_table(["node", "source", "kJ", "method", "coverage", "status"], rows)]
    elif report.get("tasks"):
        out = [
            '<p class="na">node sensor records are per task: the energy column of the array tasks below, '
            "and <code>hpcx report RUN --task N</code> for one task's nodes</p>"
        ]
    else:
        out = ['<p class="na">no node sensor records (submit with --profile)</p>']
    c = report.get("carbon") or {}
    if c.get("status") == "estimated":
        out.append(f"<p>carbon: <b>{c['g_co2e']:.1f} g CO2e</b> = {c['facility_kwh']:.5f} kWh (measured x PUE "
                   f"{c['pue']:g}) x {c['intensity_g_per_kwh']:g} g/kWh ({esc(c['source'])}); "
                   f"{esc(c['method'])}</p>")  # fmt: skip
    elif c:
        out.append(f'<p class="na">carbon: {esc(c.get("reason"))}</p>')
    line = comm_energy_text((report.get("comm") or {}).get("energy"))
    if line:
        out.append(f"<p>{esc(line)}</p>")
    return "".join(out)


def _comm_table(comm: dict[str, Any] | None) -> str:
    if not comm:
        return '<p class="na">no communication records (--profile traces MPI and torch.distributed)</p>'
    rows = [[c["lib"], c["call"], c["calls"], size(c["bytes"]), (f"{c['seconds']:.3f}", c["seconds"]),
             _num(c.get("busbw_gbs"))] for c in comm["calls"]]  # fmt: skip
    head = f"<p>{comm['seconds']:.2f} s in traced calls, {pct(comm['share'])} of rank time</p>"
    return head + _table(["library", "call", "calls", "bytes", "seconds", "bus GB/s"], rows)


def _regions_table(regions: dict[str, Any] | None) -> str:
    if not regions or not regions.get("regions"):
        return '<p class="na">no regions (mark code with hpcx.region("name"))</p>'
    rows = [[r["name"], r["calls"], _num(r["seconds_mean"], "{:.3f}"), _num(r["seconds_min"], "{:.3f}"),
             _num(r["seconds_max"], "{:.3f}"), r["slowest_rank"], pct(r["imbalance"])]
            for r in regions["regions"]]  # fmt: skip
    out = _table(["region", "calls", "mean s", "min s", "max s", "slowest rank", "imbalance"], rows)
    if regions.get("cuda_memory"):
        out += _table(["rank", "device", "allocated peak MB (torch)", "reserved peak MB (torch)"],
                      [[c["rank"], c["device"], _num(c["allocated_peak_mb"], "{:.0f}"),
                        _num(c["reserved_peak_mb"], "{:.0f}")] for c in regions["cuda_memory"]])  # fmt: skip
    return out


def _io_table(io_doc: dict[str, Any] | None) -> str:
    if not io_doc or not any(io_doc["total"][op]["calls"] for op in ("read", "write")):
        return (
            '<p class="na">no I/O through hpcx.io (counted: files written with hpcx.io.hdf5.create and read '
            "with hpcx.io's training reader; h5py and open() calls of your own are not)</p>"
        )
    t = io_doc["total"]
    rows = [
        [op, size(t[op]["bytes"]), t[op]["calls"], _num(t[op]["seconds"], "{:.2f}")]
        for op in ("read", "write")
    ]
    out = _table(["operation", "bytes", "calls", "rank-seconds"], rows)
    files = io_doc.get("hdf5_files") or {}
    if files:
        out += _table(
            ["HDF5 file", "layout", "why"], [[k, v.get("layout"), v.get("reason")] for k, v in files.items()]
        )
    return out


def _gpu_table(report: dict[str, Any]) -> str:
    rows = []
    for n in report.get("node_timelines") or []:
        for g in n["gpus"]:
            rows.append([n["node"], g["index"], _num(g["util_mean_pct"], "{:.0f}"), pct(g["idle_share"]),
                         _num(g["power_mean_w"], "{:.0f}"), _num(g["power_max_w"], "{:.0f}"),
                         _num(g["mem_used_peak_mb"], "{:.0f}"), pct(g["throttled_share"])])  # fmt: skip
    if not rows:
        return ""
    return _table(["node", "GPU", "util %", "idle", "power W (mean)", "power W (max)", "NVML used MB (peak)",
                   "throttled"], rows)  # fmt: skip


def _ranks_table(report: dict[str, Any]) -> str:
    ranks = report.get("ranks") or []
    if not ranks:
        return '<p class="na">no profile records: Slurm\'s accounting only (submit with --profile)</p>'
    rows = [[r["rank"], r["node"], (f"{r['wall_s']:.1f}", r["wall_s"]), (f"{r['cpu_s']:.1f}", r["cpu_s"]),
             (f"{r['peak_rss_mb']:.0f}", r["peak_rss_mb"]), "-" if r["exit_code"] is None else r["exit_code"],
             r["attempt"], _steps(r), r["samples"]] for r in ranks]  # fmt: skip
    return _table(
        ["rank", "node", "wall s", "CPU s", "peak MB", "exit", "attempt", "steps", "samples"],
        rows,
        sortable=True,
    )


def _steps(rank: dict[str, Any]) -> str:
    """The srun steps a rank's figures come from: several (combined), one, or none (no srun)."""
    if rank.get("steps"):
        return ", ".join("-" if s["step"] is None else str(s["step"]) for s in rank["steps"])
    return "-" if rank.get("step") is None else str(rank["step"])


def _tasks_table(tasks: list[dict[str, Any]] | None) -> str:
    if not tasks:
        return ""
    keys = task_params(tasks)
    rows = [[t["task"], *(param_text((t.get("params") or {}).get(k, "-")) for k in keys), t["state"],
             "-" if t["exit_code"] is None else t["exit_code"], t["ranks"],
             _num(t["wall_s"], "{:.1f}"), pct(t["cpu_efficiency"]), _num(t["peak_rss_mb"], "{:.0f}"),
             _num(None if t["energy_j"] is None else t["energy_j"] / 1000, "{:.3f}")] for t in tasks]  # fmt: skip
    return (
        "<h2>Array tasks</h2>"
        + _table(
            ["task", *keys, "state", "exit", "ranks", "wall s", "CPU eff.", "peak MB", "energy kJ"],
            rows,
            sortable=True,
        )
        + '<p class="sub">one task rank by rank: <code>hpcx report RUN --task N</code></p>'
    )


def _profiler(report: dict[str, Any]) -> str:
    p = report.get("profiler") or {}
    if not p:
        return ""
    rows = [
        ["sampler CPU time", _num(p.get("sampler_cpu_s"), "{:.3f} s"), p.get("sampler_method")],
        [
            "share of the ranks' allocated CPU",
            _num(None if p.get("sampler_share") is None else 100 * p["sampler_share"], "{:.2f}%"),
            "sampler CPU / (wall x CPUs)",
        ],
        ["hpcx.run peak memory", _num(p.get("wrapper_rss_mb_max"), "{:.0f} MB"), "largest rank"],
        ["records written", size(p.get("record_bytes") or 0), "profile/*.jsonl"],
        [
            "communication tracing",
            _num(p.get("comm_added_s"), "{:.4f} s"),
            p.get("comm_method") or "not traced",
        ],
    ]
    return _table(["what", "value", "how"], rows)


def _provenance(report: dict[str, Any]) -> str:
    pv = report.get("provenance") or {}
    dirty = {True: " (uncommitted changes: git.diff)", False: "", None: ""}[pv.get("git_dirty")]
    rows = [
        ["command", " ".join(map(str, report.get("command") or []))],
        ["resources", ", ".join(f"{k}={v}" for k, v in (report.get("resources") or {}).items()
                                if v is not None) or "the site's defaults"],
        ["created", pv.get("created")], ["host", pv.get("host")], ["user", _user(pv.get("user"))],
        ["workdir", pv.get("workdir")],
        ["git", f"{pv.get('git_commit') or 'not a git repository'}{dirty} {pv.get('git_branch') or ''}"],
        ["remote", pv.get("git_remote")], ["site", f"{pv.get('site')} (sha256 {pv.get('site_sha256')})"],
        ["template", f"{pv.get('template')} (sha256 {pv.get('template_sha256')})"],
        ["python / hpcx", f"{pv.get('python')} / {pv.get('hpcx')}"], ["Slurm", pv.get("slurm")],
        ["modules", " ".join(pv.get("modules") or []) or "none"],
        ["variables", ", ".join(f"{k}={v}" for k, v in (pv.get("variables") or {}).items()) or "none"],
    ]  # fmt: skip
    return _table(["", ""], rows) + '<p class="sub">the whole record: manifest.json in the run directory</p>'


def _user(user: str | None) -> str | None:
    """The submitting user: a name as recorded; a bare uid (no $USER at submit) as ``uid 0`` with its name
    where this host knows it."""
    if user is None or not str(user).isdigit():
        return user
    try:
        import pwd

        return f"{pwd.getpwuid(int(user)).pw_name} (uid {user})"
    except (ImportError, KeyError):
        return f"uid {user}"


def _per_task(report: dict[str, Any]) -> str:
    """For an array job or sweep, where its nodes', ranks' and profiler's records are: in each task's report
    (the run's own profile directory has none, which is no reason to say there are none)."""
    if not report.get("tasks") or report["summary"]["ranks"]:
        return ""
    return (
        '<p class="na">recorded per task: <code>hpcx report RUN --task N</code> shows one task\'s nodes, '
        "ranks and profiler overhead</p>"
    )


def _who(report: dict[str, Any]) -> str:
    """``2 ranks on 2 nodes``, or for an array job or sweep its tasks."""
    s = report["summary"]
    if report.get("tasks") and not s["ranks"]:
        return count(len(report["tasks"]), "array task") + " with records"
    return f"{count(s['ranks'], 'rank')} on {count(len(s['nodes']), 'node')}"


def render_html(report: dict[str, Any]) -> str:
    """The page. Needs matplotlib (``pip install 'hpcx[report]'``); raises ImportError without it."""
    p = _Plots()
    s = report["summary"]
    task = f" task {report['task']}" if report.get("task") is not None else ""
    partial = "" if s["finished"] else ' <span class="bad">(partial: the job has not finished)</span>'
    advice = report.get("advice") or []
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>hpcx report {esc(report['run_id'])}{esc(task)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>run {esc(report['run_id'])}{esc(task)}: {esc(s['state'])}{partial}</h1>",
        f'<p class="sub">job {esc(report["job_id"])} &middot; kind {esc(report["kind"])} &middot; '
        f"{esc(_who(report))} &middot; <code>{esc(report['line'])}</code></p>",
        _failure(report),
        _cards(report),
        "<h2>Advice</h2>",
        ('<ul class="advice">' + "".join(f"<li>{esc(a['text'])}</li>" for a in advice) + "</ul>") if advice
        else '<p class="na">nothing to change: every check passed or had no data</p>',
        "<h2>Energy and carbon</h2>", _energy(report),
        "<h2>Nodes</h2>", _fig_nodes(p, report) or _per_task(report) or '<p class="na">no node records</p>',
        *(["<h2>GPUs</h2>", _gpu_table(report), _fig_gpus(p, report)] if s.get("gpus") else []),
        "<h2>Ranks over time</h2>", _fig_heatmap(p, report) or _per_task(report)
        or '<p class="na">no rank samples</p>',
        "<h2>Communication</h2>", _comm_table(report.get("comm")), _fig_comm(p, report.get("comm")),
        "<h2>Regions</h2>", _regions_table(report.get("regions")), _fig_regions(p, report.get("regions")),
        "<h2>I/O</h2>", _io_table(report.get("io")), _fig_io(p, report.get("io")),
        _tasks_table(report.get("tasks")),
        "<h2>Profiler overhead</h2>", _per_task(report) or _profiler(report),
        "<h2>Ranks</h2>", _per_task(report) or _ranks_table(report),
        "<h2>Provenance</h2>", _provenance(report),
        f"<script>{_JS}</script></body></html>",
    ]  # fmt: skip
    return "\n".join(x for x in parts if x)
