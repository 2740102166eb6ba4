"""What to change next time, each line backed by numbers the report measured; no data, no advice.

Every item says its rule, so a reader can check the arithmetic: memory and time get 25% headroom over what
was used, rounded up (memory to a whole GiB, time to 15 minutes), and are only suggested when that is below
what was asked. Pure over the report's summary, communication totals, GPU statistics and regions.
"""

from __future__ import annotations

import math
from typing import Any

HEADROOM = 1.25
MEM_STEP_MB = 1024
TIME_STEP_S = 900
LOW_EFFICIENCY = 0.5
SLOW_RANK = 0.2  # a rank this much slower than the median is named
COMM_SHARE = 0.1
GPU_IDLE = 0.2  # a GPU idle (below 5% utilisation) this share of its samples is named
REGION_IMBALANCE = 0.2  # a region whose slowest rank takes this much more than the mean is named


def advise(
    summary: dict[str, Any],
    comm: dict[str, Any] | None,
    nodes: dict[Any, dict[str, Any]] | None = None,
    regions: dict[str, Any] | None = None,
) -> list[dict]:
    """The advice items: ``kind``, ``text`` (with the numbers and the rule) and ``values`` (those numbers)."""
    items = [
        _memory(summary),
        _time(summary),
        _cpu(summary),
        _slow_rank(summary, comm),
        _comm(comm),
        *_gpus(nodes or {}),
        _region_imbalance(regions),
    ]
    return [i for i in items if i is not None]


def gib(mb: float) -> str:
    return f"{mb / 1024:.3g}G"


def hms(seconds: float) -> str:
    """``2h10m`` / ``12m30s`` / ``45s``: how a person reads a duration."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def _item(kind: str, text: str, **values: Any) -> dict[str, Any]:
    return {"kind": kind, "text": text, "values": values}


def _memory(s: dict[str, Any]) -> dict[str, Any] | None:
    peak, req = s.get("mem_peak_mb"), s.get("mem_req_mb")
    if peak is None or req is None:
        return None
    where = f" on {s['mem_peak_where']}" if s.get("mem_peak_where") else ""
    suggest_mb = max(1, math.ceil(peak * HEADROOM / MEM_STEP_MB)) * MEM_STEP_MB
    rule = "peak per node + 25%, rounded up to a whole GiB"
    head = f"requested {gib(req)} per node, peak {gib(peak)}{where}"
    if s.get("state") == "OUT_OF_MEMORY" or peak > 0.9 * req:
        suggest_mb = max(suggest_mb, math.ceil(req * 2 / MEM_STEP_MB) * MEM_STEP_MB)
        return _item(
            "memory",
            f"{head}: at the limit, next time --mem={suggest_mb // 1024}G (twice the request)",
            peak_mb=peak,
            requested_mb=req,
            suggested_mb=suggest_mb,
        )
    if suggest_mb >= req:
        return None
    return _item(
        "memory",
        f"{head}: next time --mem={suggest_mb // 1024}G ({rule})",
        peak_mb=peak,
        requested_mb=req,
        suggested_mb=suggest_mb,
    )


def _time(s: dict[str, Any]) -> dict[str, Any] | None:
    # An array's time limit holds per task: its longest task, not the whole array's span, is what to size.
    used, limit = s.get("longest_task_s") or s.get("elapsed_s"), s.get("time_limit_s")
    if used is None or limit is None:
        return None
    if s.get("state") == "TIMEOUT":
        return _item(
            "time",
            f"hit its time limit {hms(limit)} after {hms(used)}: ask for more "
            f"(-t {_slurm_time(limit * 2)}) or checkpoint and resume",
            used_s=used,
            limit_s=limit,
            suggested_s=limit * 2,
        )
    if not s.get("finished"):
        return None  # still running: the time used is not final
    suggest = max(1, math.ceil(used * HEADROOM / TIME_STEP_S)) * TIME_STEP_S
    if suggest >= limit:
        return None
    return _item(
        "time",
        f"time limit {hms(limit)}, used {hms(used)}: next time -t {_slurm_time(suggest)} "
        "(elapsed + 25%, rounded up to 15 minutes)",
        used_s=used,
        limit_s=limit,
        suggested_s=suggest,
    )


def _slurm_time(seconds: float) -> str:
    h, rest = divmod(int(seconds), 3600)
    return f"{h}:{rest // 60:02d}:00"


def _cpu(s: dict[str, Any]) -> dict[str, Any] | None:
    # Slurm's figure first; 0.0 is a figure (a job that only slept), not a missing one.
    eff = s.get("cpu_efficiency_slurm")
    if eff is None:
        eff = s.get("cpu_efficiency")
    cpus = s.get("cpus_per_task")
    if eff is None or eff >= LOW_EFFICIENCY:
        return None
    if cpus and cpus > 1:
        fewer = max(1, math.ceil(eff * cpus * HEADROOM))
        return _item(
            "cpu",
            f"CPU efficiency {eff:.0%} with {cpus} CPUs per task: ask for fewer CPUs "
            f"(-c {fewer}: the CPUs busy + 25%) or use more threads",
            efficiency=eff,
            cpus_per_task=cpus,
            suggested_cpus=fewer,
        )
    return _item(
        "cpu",
        f"CPU efficiency {eff:.0%}: the ranks mostly waited (I/O, communication or sleep)",
        efficiency=eff,
    )


def _slow_rank(s: dict[str, Any], comm: dict[str, Any] | None) -> dict[str, Any] | None:
    """The summary's slowest rank (most time outside communication: ranks that wait for a slow one in a
    collective end together, so wall time alone hides it), named when 20% above the median rank."""
    if (s.get("ranks") or 0) < 2 or s.get("slowest_rank") is None:
        return None
    rank, worst, median = s["slowest_rank"], s["slowest_rank_busy_s"], s["median_rank_busy_s"]
    if median <= 0 or worst < (1 + SLOW_RANK) * median:
        return None
    what = "outside MPI/torch.distributed calls" if (comm or {}).get("ranks") else "wall time"
    return _item(
        "imbalance",
        f"rank {rank} was {worst / median - 1:.0%} slower than the median rank "
        f"({worst:.1f} s vs {median:.1f} s {what})",
        rank=rank,
        seconds=worst,
        median_s=median,
    )


def _comm(comm: dict[str, Any] | None) -> dict[str, Any] | None:
    if not comm or comm.get("share") is None or comm["share"] < COMM_SHARE or not comm["calls"]:
        return None
    top = comm["calls"][0]
    bw = f" at {top['busbw_gbs']:.1f} GB/s bus bandwidth" if top.get("busbw_gbs") else ""
    top_share = top["seconds"] / comm["seconds"] if comm["seconds"] > 0 else 0.0
    return _item(
        "communication",
        f"{comm['share']:.0%} of run time in MPI/torch.distributed calls; "
        f"{top['call']} ({top['lib']}) took {top_share:.0%} of that{bw}",
        share=comm["share"],
        call=top["call"],
        busbw_gbs=top.get("busbw_gbs"),
    )


def _gpus(nodes: dict[Any, dict[str, Any]]) -> list[dict[str, Any]]:
    """The GPUs idle for at least 20% of their samples: the idlest named with its mean utilisation, and how
    many others were (one line, not one per GPU)."""
    idle = [
        (g["idle_share"], d["node"], g)
        for d in nodes.values()
        for g in d["gpus"]
        if g.get("idle_share") is not None and g["idle_share"] >= GPU_IDLE
    ]
    if not idle:
        return []
    share, node, g = max(idle, key=lambda x: x[0])
    others = f"; {len(idle) - 1} more GPU(s) idle at least {GPU_IDLE:.0%}" if len(idle) > 1 else ""
    return [
        _item(
            "gpu",
            f"GPU {g['index']} on {node} idle {share:.0%} of the run (mean utilisation "
            f"{g['util_mean_pct']:.0f}%){others}: feed it faster (more DataLoader workers, pinned "
            "memory) or ask for fewer GPUs",
            node=node,
            gpu=g["index"],
            idle_share=share,
            util_mean_pct=g["util_mean_pct"],
            idle_gpus=len(idle),
        )
    ]


def _region_imbalance(regions: dict[str, Any] | None) -> dict[str, Any] | None:
    """The region with the most time whose slowest rank is at least 20% above the mean rank."""
    for r in (regions or {}).get("regions", []):
        if r["imbalance"] is not None and r["imbalance"] >= REGION_IMBALANCE and len(r["per_rank"]) > 1:
            return _item(
                "imbalance",
                f"region {r['name']!r}: rank {r['slowest_rank']} took "
                f"{r['seconds_max']:.2f} s, {r['imbalance']:.0%} above the mean rank's "
                f"{r['seconds_mean']:.2f} s: balance the work it does across ranks",
                region=r["name"],
                rank=r["slowest_rank"],
                seconds=r["seconds_max"],
                mean_s=r["seconds_mean"],
                imbalance=r["imbalance"],
            )
    return None
