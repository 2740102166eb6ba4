"""report/report.html: one self-contained page from report.json (no network: CSS, the script and every plot
are inline; plots are matplotlib SVG). Pure over the report document, so a report.json copied elsewhere can be
rendered again (``hpcx report RUN`` writes both).

Sections: summary, advice, the learning curves of the logged metrics, energy and carbon, node and GPU timelines, a rank x time heatmap of CPU use and
memory, communication by call and message size, regions per rank with their imbalance, I/O (every byte of the
ranks' processes over time, the checkpoints, what went through hpcx.io), array tasks, the
profiler's own cost, the ranks, and the manifest's provenance. A section without data says why in one line.
"""

from __future__ import annotations

from typing import Any

from hpcx.reports.advice import gib, hms
from hpcx.reports.curves import curve_caption
from hpcx.reports.html_plots import (
    _fig_comm,
    _fig_curves,
    _fig_gpus,
    _fig_heatmap,
    _fig_io,
    _fig_io_time,
    _fig_nodes,
    _fig_regions,
    _Plots,
    bucket_label,
    heatmap_grid,
)
from hpcx.reports.launch import launch_line
from hpcx.reports.methods import methods_table
from hpcx.reports.once import unavailable_energy
from hpcx.reports.page import SORT_JS, document, esc, pairs_table, table
from hpcx.reports.terminal import comm_energy_text, count, param_text, pct, size, task_params

__all__ = ["bucket_label", "esc", "heatmap_grid", "render_html"]


def _num(value: float | None, fmt: str = "{:.2f}", na: str = "n/a") -> str:
    return na if value is None else fmt.format(value)


# --- sections ----------------------------------------------------------------------------------------------


def _cards(report: dict[str, Any]) -> str:
    """The summary as cards: what, the value, and where it came from."""
    cards = [*_job_cards(report), *_use_cards(report), _profiler_card(report)]
    return (
        '<div class="grid">'
        + "".join(
            f'<div class="card"><span>{esc(k)}</span><b>{esc(v)}</b><span>{esc(note)}</span></div>'
            for k, v, note in cards
        )
        + "</div>"
    )


def _job_cards(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """State, elapsed time, CPU efficiency and memory."""
    s = report["summary"]
    counts = (report.get("accounting") or {}).get("state_counts") or {}
    others = "".join(f", {n} {k}" for k, n in counts.items()) if len(counts) > 1 else ""
    exit_code = "-" if s["exit_code"] is None else s["exit_code"]
    limit = f" of {hms(s['time_limit_s'])}" if s.get("time_limit_s") else ""
    eff = s["cpu_efficiency_slurm"] if s["cpu_efficiency_slurm"] is not None else s["cpu_efficiency"]
    mem = "n/a" if s["mem_peak_mb"] is None else gib(s["mem_peak_mb"])
    req = f" of {gib(s['mem_req_mb'])}" if s.get("mem_req_mb") else ""
    return [
        ("state", s["state"], f"from {s['state_source']}, exit code {exit_code}{others}"),
        (
            "elapsed",
            "n/a" if s["elapsed_s"] is None else hms(s["elapsed_s"]),
            f"requested{limit}" if limit else "",
        ),
        ("CPU efficiency", pct(eff), f"{count(s['cpus_per_task'], 'CPU')} per task"),
        ("memory peak per node", f"{mem}{req}", s.get("mem_peak_where") or s.get("mem_peak_source") or ""),
    ]


def _use_cards(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Energy, carbon, communication, the slowest rank and the GPUs."""
    s, carbon = report["summary"], report.get("carbon") or {}
    energy_how = (
        "measured counters"
        if s["energy_j"] is not None
        else "RAPL only, of nodes shared with other jobs"
        if s.get("energy_shared_j")
        else "no energy counter"
    )
    slowest = s.get("slowest_rank")
    slowest_how = (
        ""
        if slowest is None
        else (f"{s['slowest_rank_busy_s']:.1f} s outside comm, median {s['median_rank_busy_s']:.1f} s")
    )
    gpu = s.get("gpu_util_mean_pct")
    return [
        ("energy", "n/a" if s["energy_kwh"] is None else f"{s['energy_kwh']:.4f} kWh", energy_how),
        (
            "carbon",
            "n/a" if s.get("carbon_g") is None else f"{s['carbon_g']:.1f} g CO2e",
            carbon.get("source") or carbon.get("reason", ""),
        ),
        ("communication", pct(s["comm_share"]), "of rank time in traced calls"),
        ("slowest rank", "n/a" if slowest is None else str(slowest), slowest_how),
        ("GPUs", str(s.get("gpus") or 0), "" if gpu is None else f"mean utilisation {gpu:.0f}%"),
    ]


def _profiler_card(report: dict[str, Any]) -> tuple[str, str, str]:
    """The sampler's share of the allocated CPU, or its CPU seconds alone where the job was too short for a
    share to mean anything."""
    s, p = report["summary"], report.get("profiler") or {}
    if s.get("profiler_share") is None and p.get("sampler_cpu_s") is not None:
        return (
            "profiler overhead",
            f"{p['sampler_cpu_s']:.2f} s CPU",
            "sampler CPU time (too short a job for a share)",
        )
    return (
        "profiler overhead",
        _num(None if s.get("profiler_share") is None else 100 * s["profiler_share"], "{:.2f}%"),
        "sampler CPU over allocated CPU",
    )


def _failure(report: dict[str, Any]) -> str:
    """Why the job failed, right under its state: Slurm's reason and the end of the stderr log."""
    f = report["summary"].get("failure")
    if not f:
        return ""
    who = f"task {f['task']} {f['state']}: " if f.get("task") is not None else ""
    rank = f", rank {f['rank']}" if f.get("rank") is not None else ""
    out = f'<p class="bad">{esc(who)}Slurm\'s reason: {esc(f["reason"])}</p>'
    if f["stderr_tail"]:
        out += (
            f'<p class="sub">last lines of stderr ({esc(f["log"])}{esc(rank)}):</p>'
            f"<pre>{esc(chr(10).join(f['stderr_tail']))}</pre>"
        )
    return out


def _energy(report: dict[str, Any]) -> str:
    """Each node's energy sources (measured, or why not), then carbon and communication's share."""
    rows = _energy_rows(report.get("nodes") or [])
    if rows:
        out = [table(["node", "source", "kJ", "method", "coverage", "status"], rows)]
    elif report.get("tasks"):
        out = [
            '<p class="na">node sensor records are per task: the energy column of the array tasks below, '
            "and <code>hpcx report RUN --task N</code> for one task's nodes</p>"
        ]
    else:
        out = ['<p class="na">no node sensor records (submit with --profile)</p>']
    out.append(_carbon(report.get("carbon") or {}))
    line = comm_energy_text((report.get("comm") or {}).get("energy"))
    if line:
        out.append(f"<p>{esc(line)}</p>")
    return "".join(out)


def _energy_rows(nodes: list[dict[str, Any]]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for n in nodes:
        for name, e in n["energy"].items():
            if e.get("status") == "measured":
                status = f"measured; {e['scope']}: not the job's" if "scope" in e else "measured"
                kj = (f"{e['energy_j'] / 1000:.3f}", e["energy_j"])
                rows.append([n["node"], name, kj, e["method"], pct(e.get("coverage")), status])
    for where, reasons in unavailable_energy(nodes):  # each reason once, for all its nodes
        rows += [[where, names, "", "", "", f"unavailable: {why}"] for names, why in reasons]
    return rows


def _carbon(c: dict[str, Any]) -> str:
    if c.get("status") == "estimated":
        return (
            f"<p>carbon: <b>{c['g_co2e']:.1f} g CO2e</b> = {c['facility_kwh']:.5f} kWh (measured x PUE "
            f"{c['pue']:g}) x {c['intensity_g_per_kwh']:g} g/kWh ({esc(c['source'])}); "
            f"{esc(c['method'])}</p>"
        )
    return f'<p class="na">carbon: {esc(c.get("reason"))}</p>' if c else ""


def _comm_table(comm: dict[str, Any] | None) -> str:
    if not comm:
        return '<p class="na">no communication records (--profile traces MPI and torch.distributed)</p>'
    rows = [
        [
            c["lib"],
            c["call"],
            c["calls"],
            size(c["bytes"]),
            (f"{c['seconds']:.3f}", c["seconds"]),
            _num(c.get("busbw_gbs")),
        ]
        for c in comm["calls"]
    ]
    head = f"<p>{comm['seconds']:.2f} s in traced calls, {pct(comm['share'])} of rank time</p>"
    return head + table(["library", "call", "calls", "bytes", "seconds", "bus GB/s"], rows)


def _regions_table(regions: dict[str, Any] | None) -> str:
    if not regions or not regions.get("regions"):
        return '<p class="na">no regions (mark code with hpcx.region("name"))</p>'
    rows = [
        [
            r["name"],
            r["calls"],
            _num(r["seconds_mean"], "{:.3f}"),
            _num(r["seconds_min"], "{:.3f}"),
            _num(r["seconds_max"], "{:.3f}"),
            r["slowest_rank"],
            pct(r["imbalance"]),
        ]
        for r in regions["regions"]
    ]
    out = table(["region", "calls", "mean s", "min s", "max s", "slowest rank", "imbalance"], rows)
    if regions.get("cuda_memory"):
        out += table(
            ["rank", "device", "allocated peak MB (torch)", "reserved peak MB (torch)"],
            [
                [
                    c["rank"],
                    c["device"],
                    _num(c["allocated_peak_mb"], "{:.0f}"),
                    _num(c["reserved_peak_mb"], "{:.0f}"),
                ]
                for c in regions["cuda_memory"]
            ],
        )
    return out


_PROCESS_IO_HEAD = [
    "rank",
    "read",
    "read calls",
    "written",
    "write calls",
    "storage read",
    "storage written",
    "read MB/s",
    "write MB/s",
    "checkpoints",
]


def _process_io(io_doc: dict[str, Any] | None, ranks: list[dict[str, Any]]) -> str:
    """Every byte and call of the ranks' processes (/proc counters), what each column counts, what none
    sees, and the checkpoint steps on disk."""
    p = (io_doc or {}).get("process")
    if not p:
        return '<p class="na">no I/O counters in the rank records (recorded before hpcx sampled them)</p>'
    rows = [_process_io_row(r) for r in p["ranks"]]
    notes = [f"{_IO_COLUMNS[key]}: {text}" for key, text in p["labels"].items() if key in _IO_COLUMNS]
    notes += [f"not counted: {n}" for n in p["not_covered"]] + p["partial"]
    t = p["total"]
    out = f"<p>all ranks: read {_io_size(t['read_bytes'])}, written {_io_size(t['write_bytes'])}</p>"
    out += table(_PROCESS_IO_HEAD, rows, sortable=True)
    out += f'<p class="sub">{esc(p["source"])}; columns:</p><ul class="sub">'
    out += "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"
    return out + _checkpoints_table((io_doc or {}).get("checkpoints"), ranks)


_IO_COLUMNS = {
    "read_bytes": "read",
    "write_bytes": "written",
    "read_calls": "read calls",
    "write_calls": "write calls",
    "storage_read_bytes": "storage read",
    "storage_write_bytes": "storage written",
}


def _io_size(nbytes: int | None) -> str:
    return "n/a" if nbytes is None else esc(size(nbytes))


def _process_io_row(r: dict[str, Any]) -> list[Any]:
    def nbytes(key: str) -> Any:
        return "n/a" if r[key] is None else (size(r[key]), r[key])

    return [
        r["rank"],
        nbytes("read_bytes"),
        "n/a" if r["read_calls"] is None else r["read_calls"],
        nbytes("write_bytes"),
        "n/a" if r["write_calls"] is None else r["write_calls"],
        nbytes("storage_read_bytes"),
        nbytes("storage_write_bytes"),
        _num(r["read_mb_per_s"], "{:.1f}", "-"),
        _num(r["write_mb_per_s"], "{:.1f}", "-"),
        nbytes("checkpoint_bytes") if r["checkpoint_bytes"] else "-",
    ]


def _checkpoints_table(ckpt: dict[str, Any] | None, ranks: list[dict[str, Any]]) -> str:
    if not ckpt:
        return '<p class="na">no committed checkpoint step in the run\'s checkpoints/</p>'
    t0 = min((r["start_t"] for r in ranks if r.get("start_t") is not None), default=None)
    rows = [
        [
            s["step"],
            "n/a" if t0 is None else (f"+{s['t'] - t0:.1f} s", s["t"] - t0),
            (size(s["bytes"]), s["bytes"]),
            len(s["ranks"]),
            "background" if s["background"] else "in the loop",
        ]
        for s in ckpt["steps"]
    ]
    head = ["checkpoint step", "committed", "bytes", "ranks", "written"]
    return table(head, rows) + f'<p class="sub">{esc(ckpt["note"])}</p>'


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
    out = table(["operation", "bytes", "calls", "rank-seconds"], rows)
    files = io_doc.get("hdf5_files") or {}
    if files:
        out += table(
            ["HDF5 file", "layout", "why"], [[k, v.get("layout"), v.get("reason")] for k, v in files.items()]
        )
    return out


_GPU_HEAD = [
    "node",
    "GPU",
    "util %",
    "idle",
    "power W (mean)",
    "power W (max)",
    "NVML used MB (peak)",
    "throttled",
]


def _gpu_table(report: dict[str, Any]) -> str:
    rows = [
        [
            n["node"],
            g["index"],
            _num(g["util_mean_pct"], "{:.0f}"),
            pct(g["idle_share"]),
            _num(g["power_mean_w"], "{:.0f}"),
            _num(g["power_max_w"], "{:.0f}"),
            _num(g["mem_used_peak_mb"], "{:.0f}"),
            pct(g["throttled_share"]),
        ]
        for n in report.get("node_timelines") or []
        for g in n["gpus"]
    ]
    return table(_GPU_HEAD, rows) if rows else ""


def _ranks_table(report: dict[str, Any]) -> str:
    ranks = report.get("ranks") or []
    if not ranks:
        return '<p class="na">no profile records: Slurm\'s accounting only (submit with --profile)</p>'
    rows = [
        [
            r["rank"],
            r["node"],
            (f"{r['wall_s']:.1f}", r["wall_s"]),
            (f"{r['cpu_s']:.1f}", r["cpu_s"]),
            (f"{r['peak_rss_mb']:.0f}", r["peak_rss_mb"]),
            "-" if r["exit_code"] is None else r["exit_code"],
            r["attempt"],
            _steps(r),
            r["samples"],
        ]
        for r in ranks
    ]
    return table(
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
    rows = [
        [
            t["task"],
            *(param_text((t.get("params") or {}).get(k, "-")) for k in keys),
            t["state"],
            "-" if t["exit_code"] is None else t["exit_code"],
            t["ranks"],
            _num(t["wall_s"], "{:.1f}"),
            pct(t["cpu_efficiency"]),
            _num(t["peak_rss_mb"], "{:.0f}"),
            _num(None if t["energy_j"] is None else t["energy_j"] / 1000, "{:.3f}"),
        ]
        for t in tasks
    ]
    return (
        "<h2>Array tasks</h2>"
        + table(
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
    rows: list[list[Any]] = [
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
    return table(["what", "value", "how"], rows)


def _provenance(report: dict[str, Any]) -> str:
    pv = report.get("provenance") or {}
    dirty = {True: " (uncommitted changes: git.diff)", False: "", None: ""}[pv.get("git_dirty")]
    rows: list[tuple[str, Any]] = [
        ("command", " ".join(map(str, report.get("command") or []))),
        (
            "resources",
            ", ".join(f"{k}={v}" for k, v in (report.get("resources") or {}).items() if v is not None)
            or "the site's defaults",
        ),
        ("created", pv.get("created")),
        ("host", pv.get("host")),
        ("user", _user(pv.get("user"))),
        ("workdir", pv.get("workdir")),
        ("git", f"{pv.get('git_commit') or 'not a git repository'}{dirty} {pv.get('git_branch') or ''}"),
        ("remote", pv.get("git_remote")),
        ("site", f"{pv.get('site')} (sha256 {pv.get('site_sha256')})"),
        ("template", f"{pv.get('template')} (sha256 {pv.get('template_sha256')})"),
        ("python / hpcx", f"{pv.get('python')} / {pv.get('hpcx')}"),
        ("Slurm", pv.get("slurm")),
        ("modules", " ".join(pv.get("modules") or []) or "none"),
        ("variables", ", ".join(f"{k}={v}" for k, v in (pv.get("variables") or {}).items()) or "none"),
    ]
    return pairs_table(rows) + '<p class="sub">the whole record: manifest.json in the run directory</p>'


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
    task = f" task {report['task']}" if report.get("task") is not None else ""
    body = [
        *_heading(report, task),
        _failure(report),
        _cards(report),
        "<h2>Advice</h2>",
        _advice(report),
        "<h2>Learning curves</h2>",
        _curves(p, report.get("curves")),
        "<h2>Energy and carbon</h2>",
        _energy(report),
        *_over_time(p, report),
        *_work(p, report),
        "<h2>Provenance</h2>",
        _provenance(report),
    ]
    return document(f"hpcx report {report['run_id']}{task}", body, script=SORT_JS)


def _heading(report: dict[str, Any], task: str) -> list[str]:
    s = report["summary"]
    partial = "" if s["finished"] else ' <span class="bad">(partial: the job has not finished)</span>'
    return [
        f"<h1>run {esc(report['run_id'])}{esc(task)}: {esc(s['state'])}{partial}</h1>",
        f'<p class="sub">job {esc(report["job_id"])} &middot; kind {esc(report["kind"])} &middot; '
        f"{esc(_who(report))} &middot; <code>{esc(report['line'])}</code></p>",
        *([f'<p class="sub">{esc(line)}</p>'] if (line := launch_line(report.get("launch"))) else []),
    ]


def _advice(report: dict[str, Any]) -> str:
    advice = report.get("advice") or []
    if not advice:
        return '<p class="na">nothing to change: every check passed or had no data</p>'
    return '<ul class="advice">' + "".join(f"<li>{esc(a['text'])}</li>" for a in advice) + "</ul>"


def _curves(p: _Plots, curves: dict[str, Any] | None) -> str:
    if not curves:
        return '<p class="na">no metrics logged by rank 0 (hpcx.runtime.log)</p>'
    return f'<p class="sub">{esc(curve_caption(curves))}</p>' + _fig_curves(p, curves)


def _over_time(p: _Plots, report: dict[str, Any]) -> list[str]:
    """The timelines: nodes, GPUs (when the job had any), and the ranks' heatmap."""
    gpus = (
        ["<h2>GPUs</h2>", _gpu_table(report), _fig_gpus(p, report)] if report["summary"].get("gpus") else []
    )
    return [
        "<h2>Nodes</h2>",
        _fig_nodes(p, report) or _per_task(report) or '<p class="na">no node records</p>',
        *gpus,
        "<h2>Ranks over time</h2>",
        _fig_heatmap(p, report) or _per_task(report) or '<p class="na">no rank samples</p>',
    ]


def _work(p: _Plots, report: dict[str, Any]) -> list[str]:
    """Where the time went: communication, regions, I/O, the array tasks, the profiler and the ranks."""
    return [
        "<h2>Communication</h2>",
        _comm_table(report.get("comm")),
        _fig_comm(p, report.get("comm")),
        "<h2>Regions</h2>",
        _regions_table(report.get("regions")),
        _fig_regions(p, report.get("regions")),
        "<h2>I/O</h2>",
        _process_io(report.get("io"), report.get("ranks") or []),
        _fig_io_time(p, report),
        _io_table(report.get("io")),
        _fig_io(p, report.get("io")),
        _tasks_table(report.get("tasks")),
        "<h2>Profiler overhead</h2>",
        _per_task(report) or _profiler(report),
        "<h2>Ranks</h2>",
        _per_task(report) or _ranks_table(report),
        "<h2>How each number was obtained</h2>",
        methods_table(report.get("methods")),
    ]
