"""What the report draws and judges beyond the per-rank totals: node and GPU timelines, GPU statistics, regions
per rank with their imbalance, communication by message size, and the profiler's own cost.

Read from the profile directory on the login side (no MPI, no NVML); every figure keeps how it was obtained:
``sampled`` gauges (memory, power, utilisation), ``derived`` rates (network bytes and RAPL energy over time).
Timelines are thinned to at most ``max_points`` for reading; statistics use every sample.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hpcx.rundir.layout import REGION_RECORDS, process_files
from hpcx.rundir.records import current_attempt, read_records, region_spans

IDLE_UTIL_PCT = 5.0  # a GPU sample below this utilisation counts as idle
# NVML clocks-event reasons that slow a busy GPU down: SW power cap 0x4, HW slowdown 0x8, SW thermal 0x20,
# HW thermal 0x40, HW power brake 0x80. Not throttling: GPU idle 0x1, application clocks 0x2, sync boost 0x10,
# display clock setting 0x100.
THROTTLE_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80
# Added cost of one traced MPI call (benchmarks/mpi_call_added_us.py, docs/performance.md): the estimate of
# communication tracing's cost in a job, labelled as an estimate.
TRACED_CALL_US = 0.58
# Below this much allocated CPU time, the sampler's share of it is noise (its start-up alone is tens of ms):
# the report gives the sampler's CPU seconds only.
MIN_SHARE_ALLOC_S = 10.0


def _stride(n: int, max_points: int) -> int:
    return -(-n // max_points) or 1


def rates(t: list[float], counter: list[float | None], scale: float) -> list[float | None]:
    """A counter's rate between consecutive points (the first point has none), ``scale`` per second."""
    out: list[float | None] = [None] if t else []
    for i in range(1, len(t)):
        a, b, dt = counter[i - 1], counter[i], t[i] - t[i - 1]
        out.append(round((b - a) / dt * scale, 3) if a is not None and b is not None and dt > 0 else None)
    return out


def node_timeline(records: Iterable[dict[str, Any]], max_points: int) -> dict[str, Any]:
    """One node file's series: memory used (sampled), network receive and send rates in MB/s (2^20 bytes; derived from
    the byte counters), CPU package power in W (derived from RAPL energy between window edges) and per GPU
    power, utilisation, memory and SM clock (sampled), each as ``[seconds since start, ...]`` columns."""
    start: dict[str, Any] = {}
    samples: list[dict[str, Any]] = []
    for rec in records:
        if rec.get("type") == "start":  # a requeued job appends a new attempt: the last one is drawn
            start, samples = rec, []
        elif rec.get("type") == "sample":
            samples.append(rec)
    t0 = start.get("t", samples[0]["t"] if samples else 0.0)
    picked = samples[:: _stride(len(samples), max_points)]
    if samples and picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    t = [round(s["t"] - t0, 3) for s in picked]
    net = [s.get("network") or {} for s in picked]
    edges = [s for s in samples if isinstance(s.get("rapl"), dict) and "package_j" in s["rapl"]]
    edges = edges[:: _stride(len(edges), max_points)] if edges else []
    rapl_t = [round(s["t"] - t0, 3) for s in edges]
    gpus: dict[int, dict[str, list[Any]]] = {}
    for i, s in enumerate(picked):
        for g in s.get("nvml") or []:
            row = gpus.setdefault(
                g["index"], {"t": [], "power_w": [], "util_pct": [], "mem_used_mb": [], "sm_mhz": []}
            )
            row["t"].append(t[i])
            for key in ("power_w", "util_pct", "mem_used_mb", "sm_mhz"):
                row[key].append(g.get(key))
    return {
        "t": t,
        "mem_used_mb": [(s.get("memory") or {}).get("used_mb") for s in picked],
        # MB = 2^20 bytes, as everywhere
        "net_rx_mb_s": rates(t, [n.get("rx_bytes") for n in net], 1 / 2**20),
        "net_tx_mb_s": rates(t, [n.get("tx_bytes") for n in net], 1 / 2**20),
        "cpu_power_t": rapl_t,
        "cpu_power_w": rates(rapl_t, [s["rapl"]["package_j"] for s in edges], 1.0),
        "gpus": [{"index": i, **cols} for i, cols in sorted(gpus.items())],
        "methods": {
            "mem_used_mb": "sampled",
            "net_rx_mb_s": "derived",
            "net_tx_mb_s": "derived",
            "cpu_power_w": "derived",
            "gpu": "sampled",
        },
    }


def gpu_stats(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per GPU over every sample of the last attempt: mean utilisation, the share of samples idle (below
    5%), mean and peak power, NVML's peak memory used (the whole device), mean SM clock and the share of
    samples throttled (power cap, thermal or hardware slowdown)."""
    per_gpu: dict[int, list[dict[str, Any]]] = {}
    for rec in records:
        if rec.get("type") == "start":
            per_gpu = {}
        elif rec.get("type") == "sample":
            for g in rec.get("nvml") or []:
                per_gpu.setdefault(g["index"], []).append(g)
    out = []
    for index, rows in sorted(per_gpu.items()):
        util = [r["util_pct"] for r in rows if r.get("util_pct") is not None]
        power = [r["power_w"] for r in rows if r.get("power_w") is not None]
        mem = [r["mem_used_mb"] for r in rows if r.get("mem_used_mb") is not None]
        clock = [r["sm_mhz"] for r in rows if r.get("sm_mhz") is not None]
        throttle = [r["throttle"] for r in rows if r.get("throttle") is not None]
        out.append(
            {
                "index": index,
                "samples": len(rows),
                "util_mean_pct": statistics.fmean(util) if util else None,
                "idle_share": sum(u < IDLE_UTIL_PCT for u in util) / len(util) if util else None,
                "power_mean_w": statistics.fmean(power) if power else None,
                "power_max_w": max(power, default=None),
                "mem_used_peak_mb": max(mem, default=None),
                "sm_mhz_mean": statistics.fmean(clock) if clock else None,
                "throttled_share": sum(bool(x & THROTTLE_MASK) for x in throttle) / len(throttle)
                if throttle
                else None,
                "method": "sampled",
            }
        )
    return out


def node_details(merged: dict[str, dict[str, Any]], max_points: int) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (node, n-th job step on it) (from :func:`hpcx.rundir.records.read_nodes`): ``node`` (its label: the node, or
    ``node step S`` when several steps read it), ``timeline`` and ``gpus``."""
    out = {}
    for name, node in sorted(merged.items()):
        steps = node.get("steps") or [node]
        for i, step in enumerate(steps):
            records = [step["start"], *step["samples"]]
            sid = step["start"].get("step")
            label = name if len(steps) == 1 or sid is None else f"{name} step {sid}"
            out[(name, i)] = {
                "node": label,
                "timeline": node_timeline(records, max_points),
                "gpus": gpu_stats(records),
            }
    return out


def regions(
    profile_dir: Path, all_ranks: Iterable[int] = (), since: dict[int, float] | None = None
) -> dict[str, Any] | None:
    """Per region name, each rank's count and seconds (all its processes), and the imbalance across ranks:
    the slowest rank's seconds over the mean, minus one (0 is perfect balance; a rank of ``all_ranks``
    without the region counts as 0 s). Also torch's CUDA allocator peaks per rank (``cuda_memory``
    records). ``since``: per rank, the start of its last attempt (older process files are left out). None
    without regions files."""
    files = process_files(profile_dir, REGION_RECORDS)
    if not files:
        return None
    per: dict[str, dict[int, list[float]]] = {}
    cuda: dict[int, dict[str, Any]] = {}
    ranks: set[int] = set(all_ranks)
    for path in files:
        records = list(read_records(path))
        anchor = next((r for r in records if r.get("type") == "anchor"), None)
        if anchor is None:
            continue
        rank = int(anchor["rank"])
        if not current_attempt(since, rank, records[-1]["t"]):
            continue  # a requeued job's earlier attempt
        ranks.add(rank)
        for span in region_spans(records):
            row = per.setdefault(span["name"], {}).setdefault(rank, [0, 0.0])
            row[0] += 1
            row[1] += span["dur_s"]
        for rec in records:
            if rec.get("type") == "cuda_memory":
                best = cuda.setdefault(
                    rank,
                    {
                        "rank": rank,
                        "device": rec.get("device"),
                        "allocated_peak_mb": 0.0,
                        "reserved_peak_mb": 0.0,
                    },
                )
                for key in ("allocated_peak_mb", "reserved_peak_mb"):
                    best[key] = max(best[key], rec.get(key) or 0.0)
    names = []
    for name, by_rank in sorted(per.items(), key=lambda kv: -sum(v[1] for v in kv[1].values())):
        seconds = {rank: by_rank.get(rank, [0, 0.0])[1] for rank in sorted(ranks)}
        mean = statistics.fmean(seconds.values())
        slowest = max(seconds, key=lambda r: seconds[r])
        fastest = min(seconds, key=lambda r: seconds[r])
        names.append(
            {
                "name": name,
                "calls": sum(v[0] for v in by_rank.values()),
                "seconds_mean": mean,
                "seconds_max": seconds[slowest],
                "seconds_min": seconds[fastest],
                "slowest_rank": slowest,
                "fastest_rank": fastest,
                "imbalance": seconds[slowest] / mean - 1 if mean > 0 else None,
                "per_rank": [
                    {"rank": r, "calls": by_rank.get(r, [0, 0.0])[0], "seconds": s}
                    for r, s in seconds.items()
                ],
            }
        )
    return {"regions": names, "cuda_memory": [cuda[r] for r in sorted(cuda)]}


def profiler_cost(
    ranks: list[dict[str, Any]],
    profile_dir: Path,
    comm_calls: int | None,
    since: dict[int, float] | None = None,
) -> dict[str, Any]:
    """hpcx's own cost in this job: the sampler threads' CPU seconds (measured; one thread per rank, which
    also reads the node sensors on local rank 0) against the CPU time allocated to the ranks, hpcx.run's peak
    memory, the bytes of records written, and the time communication tracing added (estimated: calls times
    the benchmarked cost of one traced call). The share is None below :data:`MIN_SHARE_ALLOC_S` of allocated
    CPU: a share of a near-zero denominator is no finding."""
    cpu = [r["sampler_cpu_s"] for r in ranks if r.get("sampler_cpu_s") is not None]
    alloc = sum(r["wall_s"] * (r.get("cpus_allowed") or 1) for r in ranks)
    rss = [r["sampler_rss_mb"] for r in ranks if r.get("sampler_rss_mb") is not None]
    wall = sum(r["wall_s"] for r in ranks)
    added, method = _tracing_added(profile_dir, comm_calls, since)
    return {
        "sampler_cpu_s": sum(cpu) if cpu else None,
        "sampler_share": sum(cpu) / alloc if cpu and alloc >= MIN_SHARE_ALLOC_S else None,
        "sampler_method": "measured (the sampler thread's CPU time)"
        if cpu
        else "unavailable (no end records)",
        "wrapper_rss_mb_max": max(rss, default=None),
        "record_bytes": sum(p.stat().st_size for p in profile_dir.glob("*.jsonl"))
        if profile_dir.is_dir()
        else 0,
        "comm_calls": comm_calls,
        "comm_added_s": added,
        "comm_added_share": added / wall if added is not None and wall > 0 else None,
        "comm_method": method,
    }


def _tracing_added(
    profile_dir: Path, comm_calls: int | None, since: dict[int, float] | None
) -> tuple[float | None, str | None]:
    """Seconds communication tracing added, and how that was obtained: each process's calls times the cost
    per call it measured at start-up (hpcx.reports.comm.tracing_cost); calls of a kind no process measured
    at :data:`TRACED_CALL_US` (the benchmark's figure), and the method says how many. ``since``: per rank,
    the start of its last attempt (a requeued job's earlier processes count nothing, as in ``comm_calls``)."""
    if not comm_calls:
        return None, None
    from hpcx.reports.comm import comm_files, tracing_cost

    cost = tracing_cost(profile_dir, comm_files(profile_dir, since)) if profile_dir.is_dir() else None
    if not cost or not cost["cost_us"]:
        return comm_calls * TRACED_CALL_US / 1e6, (
            f"estimated ({TRACED_CALL_US} us per traced call, benchmarks/mpi_call_added_us.py)"
        )
    kinds = ", ".join(f"{kind} {us:.2f} us" for kind, us in cost["cost_us"].items())
    method = f"measured at start-up on the job's nodes ({kinds} per call, median of the processes)"
    added = cost["added_s"]
    if cost["unmeasured_calls"]:
        added += cost["unmeasured_calls"] * TRACED_CALL_US / 1e6
        method += f"; {cost['unmeasured_calls']} calls of unmeasured kinds at {TRACED_CALL_US} us (estimated)"
    return added, method


def carbon(
    energy_j: float | None, site_energy: dict[str, Any], site_name: str | None, shared_j: float = 0.0
) -> dict[str, Any]:
    """The carbon estimate: the job's measured energy x the site's PUE x its grid intensity, or why there is
    none. ``shared_j``: RAPL energy left out as the node's, not the job's (other jobs shared the node)."""
    intensity = site_energy.get("carbon_intensity_g_per_kwh")
    pue = float(site_energy.get("pue", 1.0))
    if energy_j is None and shared_j:
        return {
            "status": "unavailable",
            "reason": f"the only energy measured, {shared_j:.0f} J of RAPL, is the whole package of nodes "
            "shared with other jobs: not this job's",
        }
    if energy_j is None:
        return {"status": "unavailable", "reason": "no energy was measured (no RAPL or NVML counter)"}
    if intensity is None:
        return {
            "status": "unavailable",
            "reason": f"site {site_name or '?'} sets no energy.carbon_intensity_g_per_kwh",
        }
    kwh = energy_j / 3.6e6 * pue
    return {
        "status": "estimated",
        "g_co2e": kwh * float(intensity),
        "facility_kwh": kwh,
        "intensity_g_per_kwh": float(intensity),
        "pue": pue,
        "source": site_energy.get("carbon_source") or f"site {site_name or '?'}",
        "method": "measured energy x PUE x grid intensity; covers only the sources measured"
        + (
            f"; leaves out {shared_j:.0f} J of RAPL on nodes shared with other jobs (whole package, not this "
            "job's)"
            if shared_j
            else ""
        ),
    }
