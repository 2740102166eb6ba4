"""The terminal summary of a report: a few lines a person reads at a glance, then one row per rank."""

from __future__ import annotations

from typing import Any

from hpcx.reports.advice import gib, hms
from hpcx.reports.curves import curve_line
from hpcx.reports.launch import gpu_memory_line, launch_line
from hpcx.reports.once import unavailable_energy


def pct(x: float | None) -> str:
    """A share as a whole percentage, ``n/a`` when unknown."""
    return "n/a" if x is None else f"{100 * x:.0f}%"


def count(n: int, noun: str) -> str:
    """``1 rank``, ``2 ranks``: a number with its noun."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def render_text(report: dict[str, Any]) -> str:
    """The summary, Slurm's record, I/O, energy, communication, advice, the greppable line, then the ranks."""
    s = report["summary"]
    lines = [
        f"run {report['run_id']}  job {report['job_id']}  kind {report['kind']}",
        f"  state {s['state']} ({_state_note(s, report.get('accounting'))}), "
        f"exit code {'-' if s['exit_code'] is None else s['exit_code']}"
        + (f", failed ranks: {s['failed_ranks']}" if s["failed_ranks"] else ""),
        *_failure_lines(s.get("failure")),
        *([f"  {line}"] if (line := launch_line(report.get("launch"))) else []),
        *_time_lines(s),
        *([f"  {line}"] if (line := curve_line(report.get("curves"))) else []),
        f"  CPU efficiency: hpcx {pct(s['cpu_efficiency'])}, Slurm {pct(s['cpu_efficiency_slurm'])}"
        f" ({count(s['cpus_per_task'], 'CPU')} per task)",
        *_memory_lines(s),
        *_io_lines(report.get("io")),
        *_energy_lines(report.get("nodes", []), s),
        *_comm_lines(report.get("comm")),
        *_region_lines(report.get("regions")),
        *_gpu_lines(s),
        *([f"  {line}"] if (line := gpu_memory_line(report.get("ranks") or [])) else []),
        *_carbon_lines(report.get("carbon")),
        *_slowest_lines(s),
        *_profiler_lines(report.get("profiler")),
        "",
        *(["advice:", *(f"  - {a['text']}" for a in report["advice"]), ""] if report["advice"] else []),
        report["line"],
        *_rank_lines(report),
    ]
    return "\n".join(lines)


def _state_note(s: dict[str, Any], acct: dict[str, Any] | None = None) -> str:
    source = "from sacct" if s["state_source"] == "sacct" else "from hpcx's records; no Slurm accounting"
    counts = (acct or {}).get("state_counts") or {}
    if s["state_source"] == "sacct" and len(counts) > 1:  # an array's tasks, a sweep's chunks
        source += ": " + ", ".join(f"{n} {state}" for state, n in counts.items())
    stopped = s.get("stopped")
    if stopped:
        source += f"; stopped on request of {stopped['requested_by'] or '?'} at step {stopped['step']}"
    return source if s["finished"] else f"{source}; partial: the job has not finished"


def _failure_lines(f: dict[str, Any] | None) -> list[str]:
    """Why it failed, first thing after the state: Slurm's reason, then the end of the stderr log."""
    if not f:
        return []
    who = f"task {f['task']} {f['state']}: " if f.get("task") is not None else ""
    rank = f", rank {f['rank']}" if f.get("rank") is not None else ""
    lines = [f"  {who}Slurm's reason: {f['reason']}"]
    if f["stderr_tail"]:
        lines.append(f"  last lines of stderr ({f['log']}{rank}):")
        lines += [f"    | {line}" for line in f["stderr_tail"]]
    elif f.get("log"):
        lines.append(f"  stderr ({f['log']}) is empty")
    else:
        lines.append("  no stderr log found (the run's logs/, or where the script's own -e/-o put it)")
    return lines


def _time_lines(s: dict[str, Any]) -> list[str]:
    limit = f" of {hms(s['time_limit_s'])} requested" if s["time_limit_s"] else ""
    elapsed = "n/a" if s["elapsed_s"] is None else hms(s["elapsed_s"])
    cpu = "n/a" if s["cpu_s"] is None else f"{s['cpu_s']:.1f} s"
    return [f"  elapsed {elapsed}{limit}   CPU time {cpu}"]


def _memory_lines(s: dict[str, Any]) -> list[str]:
    if s["mem_peak_mb"] is None:
        return ["  memory: no peak measured"]
    req = f" of {gib(s['mem_req_mb'])} requested per node" if s["mem_req_mb"] else ""
    where = f" ({s['mem_peak_where']})" if s["mem_peak_where"] else ""
    lines = [f"  memory peak {gib(s['mem_peak_mb'])}{req}{where}, from {s['mem_peak_source']}"]
    if s["peak_rss_mb_max"] is not None:
        lines.append(
            f"  peak memory {s['peak_rss_mb_max']:.0f} MB on the largest rank, "
            f"{s['peak_rss_mb_sum']:.0f} MB in all"
        )
    return lines


def _comm_lines(comm: dict[str, Any] | None) -> list[str]:
    if not comm:
        return []
    lines = [f"  communication: {comm['seconds']:.1f} s in traced calls, {pct(comm['share'])} of rank time"]
    for c in comm["calls"][:5]:
        bw = f", {c['busbw_gbs']:.2f} GB/s bus" if c["busbw_gbs"] else ""
        lines.append(
            f"    {c['lib']} {c['call']}: {c['calls']} calls, {size(c['bytes'])}, {c['seconds']:.2f} s{bw}"
        )
    lines += _ddp_lines(comm.get("ddp"))
    line = comm_energy_text(comm.get("energy"))
    return [*lines, f"    {line}"] if line else lines


def _ddp_lines(ddp: dict[str, Any] | None) -> list[str]:
    """DDP's gradient buckets: bytes per backward pass, buckets, how much hid behind the backward pass."""
    if not ddp:
        return []
    per_step = (
        f"{size(ddp['bytes_per_step'])} of gradients per backward pass" if ddp["bytes_per_step"] else ""
    )
    hidden = (
        f", {pct(ddp['hidden_share'])} of it behind the backward pass ({ddp['overlap_timing']} timing)"
        if ddp["hidden_share"] is not None
        else ""
    )
    lines = [f"    DDP: {count(len(ddp['buckets']), 'bucket')}, {per_step or 'no bucket completed'}{hidden}"]
    lines += [f"    DDP not covered: {h}" for h in ddp["not_covered"]]
    return lines


def comm_energy_text(energy: dict[str, Any] | None) -> str | None:
    """``energy in communication: 120 J (derived: ..., 93% of call time covered)`` or n/a with the reason."""
    if not energy:
        return None
    if energy.get("status") != "measured":
        reason = str(energy.get("reason"))
        if reason.startswith("no node with an energy counter ("):  # why not is said once, in the energy lines
            reason = "no node with an energy counter: see energy"
        return f"energy in communication: n/a ({reason})"
    return (
        f"energy in communication: {energy['energy_j']:.0f} J (derived: node energy per window x the "
        f"node's share of rank time in calls; {pct(energy.get('coverage'))} of call time covered)"
    )


def task_params(tasks: list[dict[str, Any]]) -> list[str]:
    """The parameter names of a sweep's tasks, in the order the sweep gave them."""
    return list(dict.fromkeys(k for t in tasks for k in t.get("params") or {}))


def param_text(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _task_lines(tasks: list[dict[str, Any]]) -> list[str]:
    """An array job's tasks, one line each with the sweep's parameters (``hpcx report RUN --task N`` for one
    rank by rank)."""
    keys = task_params(tasks)
    cells = [[param_text((t.get("params") or {}).get(k, "-")) for k in keys] for t in tasks]
    widths = [max([len(k), *(len(c[i]) for c in cells)]) for i, k in enumerate(keys)]
    head = "".join(f" {k:<{w}}" for k, w in zip(keys, widths))
    lines = [
        "",
        f"  {count(len(tasks), 'array task')} with records (hpcx report RUN --task N: one task rank by rank)",
        f"  {'task':>5}{head}  {'state':<11} {'exit':>4} {'ranks':>5} {'wall s':>8} {'cpu eff':>7} "
        f"{'peak MB':>8}",
    ]
    for t, row in zip(tasks, cells):
        code = "-" if t["exit_code"] is None else str(t["exit_code"])
        wall = "-" if t["wall_s"] is None else f"{t['wall_s']:.1f}"
        peak = "-" if t["peak_rss_mb"] is None else f"{t['peak_rss_mb']:.0f}"
        params = "".join(f" {c:<{w}}" for c, w in zip(row, widths))
        lines.append(
            f"  {t['task']:>5}{params}  {t['state']:<11} {code:>4} {t['ranks']:>5} {wall:>8} "
            f"{pct(t['cpu_efficiency']):>7} {peak:>8}"
        )
    return lines


def _rank_lines(report: dict[str, Any]) -> list[str]:
    s = report["summary"]
    if report.get("tasks"):
        return _task_lines(report["tasks"])
    if not report["ranks"]:
        return ["", "  no profile records (submitted with --no-profile, or not run under python -m hpcx.run)"]
    state = "finished" if s["all_finished"] else "still running or killed"
    lines = [
        "",
        f"  {count(s['ranks'], 'rank')} on {count(len(s['nodes']), 'node')} ({', '.join(s['nodes'])}), {state}",
        f"  {'rank':>4}  {'node':<10} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'exit':>5}",
    ]
    for r in report["ranks"]:
        code = "-" if r["exit_code"] is None else str(r["exit_code"])
        lines.append(
            f"  {r['rank']:>4}  {str(r['node']):<10} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} "
            f"{r['peak_rss_mb']:>8.0f} {code:>5}"
        )
    return lines


def size(nbytes: float) -> str:
    """Bytes in binary units: ``812 B``, ``4.2 KiB``, ``1.5 GiB``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes:.0f} B"


def _io_lines(io: dict[str, Any] | None) -> list[str]:
    """Every byte of the ranks' processes (the /proc counters), the checkpoints among them, then what went
    through hpcx.io and its HDF5 files."""
    lines = _process_io_lines(io.get("process"), io.get("checkpoints")) if io else []
    if not io or not any(io["total"][op]["calls"] for op in ("read", "write")):
        return lines
    parts = []
    for op in ("read", "write"):
        t = io["total"][op]
        if t["calls"]:
            rate = (
                f" at {t['bytes'] / 2**20 / t['seconds']:.0f} MiB/s per rank-second" if t["seconds"] else ""
            )
            parts.append(f"{op} {size(t['bytes'])}{rate}")
    lines.append(f"  I/O: {', '.join(parts)}")
    for path, f in io.get("hdf5_files", {}).items():
        lines.append(f"  HDF5 {path}: {f['layout']} ({f['reason']})")
    return lines


def _process_io_lines(p: dict[str, Any] | None, ckpt: dict[str, Any] | None) -> list[str]:
    """``I/O of the ranks' processes: read 128.0 MiB in 40 calls, written 256.0 MiB in 3 calls (...)``, the
    storage layer's share, the checkpoints, and the ranks counted only to their last sample."""
    if not p:
        return []
    t = p["total"]
    storage = (
        f"; storage layer: read {size(t['storage_read_bytes'])}, written {size(t['storage_write_bytes'])}"
        if t["storage_read_bytes"] is not None and t["storage_write_bytes"] is not None
        else ""
    )
    lines = [
        f"  I/O of the ranks' processes: read {_bytes_calls(t['read_bytes'], t['read_calls'])}, "
        f"written {_bytes_calls(t['write_bytes'], t['write_calls'])} (every read()/write(), /proc counters)"
        f"{storage}"
    ]
    if ckpt:
        share = f", {pct(ckpt['bytes'] / t['write_bytes'])} of the bytes written" if t["write_bytes"] else ""
        last = ckpt["steps"][-1]
        lines.append(
            f"    checkpoints: {size(ckpt['bytes'])} in {count(len(ckpt['steps']), 'committed step')} on disk"
            f"{share} (last: step {last['step']}, {size(last['bytes'])})"
        )
    lines += [f"    {note}" for note in p["partial"]]
    return lines


def _bytes_calls(nbytes: int | None, calls: int | None) -> str:
    if nbytes is None:
        return "n/a"
    return size(nbytes) + (f" in {count(calls, 'call')}" if calls is not None else "")


def _energy_lines(nodes: list[dict[str, Any]], s: dict[str, Any] | None = None) -> list[str]:
    """The job's measured total split into GPU and CPU (package and DRAM), then one line per node with what
    it measured (RAPL on a node shared with other jobs labelled as the whole package's, not in the total),
    then each reason a source was unavailable once, with the nodes it holds for (never a silent 0)."""
    measured = [
        (name, e["energy_j"])
        for n in nodes
        for name, e in n["energy"].items()
        if e.get("status") == "measured" and "scope" not in e
    ]
    lines = []
    if measured:
        gpu = sum(j for name, j in measured if name.startswith("gpu"))
        cpu = sum(j for name, j in measured if not name.startswith("gpu"))
        total = gpu + cpu
        lines.append(
            f"  energy: {total:.0f} J = {total / 3.6e6:.6f} kWh (GPU {gpu:.0f} J, CPU {cpu:.0f} J; "
            "from counters, only the job's sources measured below)"
        )
    elif s and s.get("energy_j") is not None and not nodes:  # an array's tasks, each with its own nodes
        lines.append(
            f"  energy: {s['energy_j']:.0f} J = {s['energy_kwh']:.6f} kWh (the tasks' measured "
            "counters summed; hpcx report RUN --task N for one task's nodes)"
        )
    for n in nodes:
        parts = []
        for name, e in n["energy"].items():
            if e["status"] != "unavailable":
                scope = f"; {e['scope']}: not the job's" if "scope" in e else ""
                parts.append(
                    f"{name} {e['energy_j'] / 1000:.2f} kJ ({e['method']}, {pct(e['coverage'])} "
                    f"covered{scope})"
                )
        if parts:
            lines.append(f"  energy {n['node']}: {'; '.join(parts)}")
    for where, reasons in unavailable_energy(nodes):  # one line per set of nodes, each reason once
        lines.append(
            f"  energy: unavailable on {where}: " + "; ".join(f"{names}: {why}" for names, why in reasons)
        )
    return lines


def _gpu_lines(s: dict[str, Any]) -> list[str]:
    if not s.get("gpus"):
        return []
    parts = [
        f"  GPUs: {s['gpus']} sampled, mean utilisation {s['gpu_util_mean_pct']:.0f}%"
        if s.get("gpu_util_mean_pct") is not None
        else f"  GPUs: {s['gpus']} sampled"
    ]
    if s.get("gpu_idle_share_max") is not None:
        parts.append(f"idlest {s['gpu_idle_where']} idle {pct(s['gpu_idle_share_max'])}")
    if s.get("gpu_mem_used_peak_mb") is not None:
        parts.append(f"memory peak {gib(s['gpu_mem_used_peak_mb'])} (NVML, whole device)")
    if s.get("gpu_alloc_peak_mb") is not None:
        parts.append(f"{gib(s['gpu_alloc_peak_mb'])} (torch allocator)")
    return [", ".join(parts)]


def _carbon_lines(c: dict[str, Any] | None) -> list[str]:
    if not c:
        return []
    if c["status"] != "estimated":
        return [f"  carbon: n/a ({c['reason']})"]
    return [
        f"  carbon: {c['g_co2e']:.1f} g CO2e ({c['facility_kwh']:.5f} kWh incl. PUE {c['pue']:g}, "
        f"x {c['intensity_g_per_kwh']:g} g/kWh from {c['source']}; estimated)"
    ]


def _slowest_lines(s: dict[str, Any]) -> list[str]:
    if s.get("slowest_rank") is None or (s.get("ranks") or 0) < 2:
        return []
    return [
        f"  slowest rank: {s['slowest_rank']}, {s['slowest_rank_busy_s']:.1f} s outside communication "
        f"(median rank {s['median_rank_busy_s']:.1f} s)"
    ]


def _profiler_lines(p: dict[str, Any] | None) -> list[str]:
    if not p or p.get("sampler_cpu_s") is None:
        return []
    share = "" if p["sampler_share"] is None else f" ({100 * p['sampler_share']:.2f}% of allocated CPU)"
    if p["sampler_share"] is None and p.get("sampler_method", "").startswith("measured"):
        share = " (no share: the job was too short for one to mean anything)"
    comm = (
        f", comm tracing ~{p['comm_added_s']:.4f} s ({(p.get('comm_method') or 'estimated').split(' ')[0]})"
        if p.get("comm_added_s") is not None
        else ""
    )
    return [
        f"  profiler overhead: sampler {p['sampler_cpu_s']:.2f} s CPU{share}, records "
        f"{size(p['record_bytes'])}{comm}"
    ]


def _region_lines(regions: dict[str, Any] | None) -> list[str]:
    """The regions taking most time: mean seconds per rank, and how far the slowest rank is above it."""
    rows = (regions or {}).get("regions", [])
    if not rows:
        return []
    lines = ["  regions (seconds per rank: mean, slowest rank over the mean):"]
    for r in rows[:5]:
        imb = "" if r["imbalance"] is None else f", rank {r['slowest_rank']} +{100 * r['imbalance']:.0f}%"
        lines.append(f"    {r['name']}: {r['calls']} calls, {r['seconds_mean']:.2f} s{imb}")
    return lines
