"""The report's summary: hpcx's numbers from the ranks beside Slurm's accounting, the state, memory and energy
each with where it came from, the GPUs at a glance, the slowest rank, and the one line for grep."""

from __future__ import annotations

import statistics
from typing import Any

from hpcx.reports.sharing import is_jobs_own


def summarize(
    ranks: list[dict[str, Any]],
    acct: dict[str, Any] | None,
    res: dict[str, Any],
    nodes: list[dict[str, Any]],
    comm: dict[str, Any] | None,
) -> dict[str, Any]:
    """The summary: hpcx's numbers from the ranks (None without records) beside Slurm's, and the best of
    the two for state, elapsed time and memory, each with where it came from."""
    cpus_per_task = int(res.get("cpus_per_task") or 1)
    wall = max((r["wall_s"] for r in ranks), default=None)
    energies = own_energies(nodes)
    mem_peak, where, mem_source = _memory_peak(ranks, acct, res)
    return {
        **_rank_figures(ranks, acct or {}, cpus_per_task, wall),
        **_outcome(ranks, acct, wall),
        "time_limit_s": int(res["time_min"]) * 60 if res.get("time_min") else None,
        "cpus_per_task": cpus_per_task,
        "mem_req_mb": _mem_request(res, acct),
        "mem_peak_mb": mem_peak,
        "mem_peak_where": where,
        "mem_peak_source": mem_source,
        "energy_j": sum(energies) if energies else None,
        "energy_kwh": sum(energies) / 3.6e6 if energies else None,
        "comm_share": comm["share"] if comm else None,
    }


def own_energies(nodes: list[dict[str, Any]]) -> list[float]:
    """The job's own measured energy figures of its nodes (not RAPL's whole package on a shared node)."""
    return [e["energy_j"] for n in nodes for k, e in n["energy"].items() if is_jobs_own(k, e)]


def _rank_figures(
    ranks: list[dict[str, Any]], a: dict[str, Any], cpus_per_task: int, wall: float | None
) -> dict[str, Any]:
    """Wall and CPU time, CPU efficiency, peaks and failed ranks from the ranks, Slurm's ``a`` without any."""
    cpu = sum(r["cpu_s"] for r in ranks) if ranks else None
    # CPU efficiency against what was allocated: ranks x cpus per task x wall time.
    alloc = len(ranks) * cpus_per_task * (wall or 0)
    return {
        "ranks": len(ranks),
        "nodes": sorted({r["node"] for r in ranks if r["node"]}),
        "wall_s": wall if wall is not None else a.get("elapsed_s"),
        "cpu_s": cpu if cpu is not None else a.get("total_cpu_s"),
        "cpu_efficiency": cpu / alloc if cpu is not None and alloc > 0 else None,
        "cpu_efficiency_slurm": a.get("cpu_efficiency"),
        "peak_rss_mb_max": max((r["peak_rss_mb"] for r in ranks), default=None),
        "peak_rss_mb_sum": sum(r["peak_rss_mb"] for r in ranks) if ranks else None,
        "all_finished": bool(ranks) and all(r["finished"] for r in ranks),
        "failed_ranks": [r["rank"] for r in ranks if r["exit_code"] not in (0, None)],
    }


def _outcome(ranks: list[dict[str, Any]], acct: dict[str, Any] | None, wall: float | None) -> dict[str, Any]:
    """State, whether finished, exit code and elapsed time: Slurm's when it has them, else the ranks'."""
    a = acct or {}
    exits = [r["exit_code"] for r in ranks if r["exit_code"] is not None]
    state, state_source = run_state(ranks, acct)
    return {
        "state": state,
        "state_source": state_source,
        "finished": a["finished"] if acct else bool(ranks) and all(r["finished"] for r in ranks),
        "exit_code": a["exit_code"] if acct else max(exits, default=None),
        "elapsed_s": a.get("elapsed_s") if a.get("elapsed_s") is not None else wall,
    }


def run_state(ranks: list[dict[str, Any]], acct: dict[str, Any] | None) -> tuple[str, str]:
    """Slurm's state when it has one; else what the records say: every rank ended (COMPLETED or FAILED by
    the exit codes), or UNFINISHED (still running, or killed before the ranks wrote their end)."""
    if acct is not None:
        return acct["state"], "sacct"
    if not ranks or not all(r["finished"] for r in ranks):
        return "UNFINISHED", "profile"
    return ("COMPLETED" if all(r["exit_code"] == 0 for r in ranks) else "FAILED"), "profile"


def _mem_request(res: dict[str, Any], acct: dict[str, Any] | None) -> float | None:
    """Memory per node asked for: the request, else what Slurm allocated (AllocTRES mem over nodes)."""
    if res.get("mem_mb"):
        return float(res["mem_mb"])
    if acct and acct["alloc_mem_mb"] and acct["alloc_nodes"]:
        return acct["alloc_mem_mb"] / acct["alloc_nodes"]
    return None


def _memory_peak(
    ranks: list[dict[str, Any]], acct: dict[str, Any] | None, res: dict[str, Any]
) -> tuple[float | None, str | None, str | None]:
    """The largest node's peak (its ranks' peaks added: an upper bound, as they need not coincide), where,
    and its source; without records, Slurm's MaxRSS (the largest task) times the tasks per node."""
    if ranks:
        per_node: dict[str, list[dict[str, Any]]] = {}
        for r in ranks:
            per_node.setdefault(str(r["node"]), []).append(r)
        node, members = max(per_node.items(), key=lambda kv: sum(r["peak_rss_mb"] for r in kv[1]))
        top = max(members, key=lambda r: r["peak_rss_mb"])
        where = f"node {node}" + (
            f", largest rank {top['rank']}" if len(members) > 1 else f", rank {top['rank']}"
        )
        return sum(r["peak_rss_mb"] for r in members), where, "profile"
    if acct and acct["max_rss_mb"] is not None:
        tasks = int(res.get("ntasks_per_node") or 1)
        return acct["max_rss_mb"] * tasks, None, "sacct MaxRSS x tasks per node"
    return None, None, None


def grep_line(report: dict[str, Any]) -> str:
    """One line for grep and awk: ``hpcx: job=... state=...``, every field present, ``na`` when unknown."""
    s = report["summary"]
    eff = s["cpu_efficiency_slurm"] if s["cpu_efficiency_slurm"] is not None else s["cpu_efficiency"]
    fields = {
        "job": report["job_id"],
        "state": s["state"],
        "elapsed_s": _num(s["elapsed_s"], "{:.0f}"),
        "eff_cpu": _num(eff, "{:.3f}"),
        "mem_peak_mb": _num(s["mem_peak_mb"], "{:.0f}"),
        "mem_req_mb": _num(s["mem_req_mb"], "{:.0f}"),
        "energy_kwh": _num(s["energy_kwh"], "{:.6f}"),
        "comm_share": _num(s["comm_share"], "{:.3f}"),
    }
    return "hpcx: " + " ".join(f"{k}={'na' if v is None else v}" for k, v in fields.items())


def _num(value: float | None, fmt: str) -> str | None:
    return None if value is None else fmt.format(value)


def gpu_summary(
    details: dict[tuple[str, int], dict[str, Any]], region_doc: dict[str, Any] | None
) -> dict[str, Any]:
    """The GPUs at a glance: how many were sampled, their mean utilisation, the idlest one's idle share,
    NVML's peak memory used (whole device) and torch's allocator peak (the tensors the job held)."""
    # A node with several job steps has a file, and GPU statistics, per step: count each GPU once, by the
    # step that sampled it most.
    unique: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
    for (node, _step), d in details.items():
        for g in d["gpus"]:
            key = (node, g["index"])
            if key not in unique or g["samples"] > unique[key][1]["samples"]:
                unique[key] = (d["node"], g)
    gpus = list(unique.values())
    util = [g["util_mean_pct"] for _, g in gpus if g["util_mean_pct"] is not None]
    idle = [(g["idle_share"], f"{node} GPU {g['index']}") for node, g in gpus if g["idle_share"] is not None]
    mem = [g["mem_used_peak_mb"] for _, g in gpus if g["mem_used_peak_mb"] is not None]
    alloc = [c["allocated_peak_mb"] for c in (region_doc or {}).get("cuda_memory", [])]
    worst = max(idle, key=lambda x: x[0], default=(None, None))  # the first of equals, as the advice names
    return {
        "gpus": len(gpus),
        "gpu_util_mean_pct": sum(util) / len(util) if util else None,
        "gpu_idle_share_max": worst[0],
        "gpu_idle_where": worst[1],
        "gpu_mem_used_peak_mb": max(mem, default=None),
        "gpu_alloc_peak_mb": max(alloc, default=None),
    }


def slowest_rank(ranks: list[dict[str, Any]], comm: dict[str, Any] | None) -> dict[str, Any]:
    """The rank with the most time outside traced communication calls (ranks waiting for a slow one in a
    collective end together, so wall time alone hides it), its seconds and the median rank's."""
    if not ranks:
        return {"slowest_rank": None, "slowest_rank_busy_s": None, "median_rank_busy_s": None}
    in_comm = {r["rank"]: r["seconds"] for r in (comm or {}).get("ranks", [])}
    busy = {r["rank"]: r["wall_s"] - in_comm.get(r["rank"], 0.0) for r in ranks}
    rank = max(busy, key=lambda k: busy[k])
    return {
        "slowest_rank": rank,
        "slowest_rank_busy_s": busy[rank],
        "median_rank_busy_s": statistics.median(busy.values()),
    }
