"""Slurm's accounting rows (accounting.json) as numbers: the report's second witness beside hpcx's records.

sacct prints durations as ``[D-][HH:]MM:SS[.mmm]``, sizes as ``123K``/``1.5G`` and exit codes as
``code:signal``; the report needs seconds, MB and integers, and a job with no profile records at all (like
seff) still gets one from these alone. Pure: the rows come from :func:`hpcx.runs.provenance.record_accounting`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_SIZE = re.compile(r"^\s*([0-9.]+)\s*([KMGTP]?)\s*$", re.IGNORECASE)
_MB_PER = {"": 1 / 2**20, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2, "P": 1024.0**3}
_TRES_MB_PER = {**_MB_PER, "": 1.0}  # AllocTRES mem without a unit is already MB


def duration_s(text: str) -> float | None:
    """sacct's Elapsed/TotalCPU (``1-02:03:04``, ``02:03:04``, ``03:04.567``) in seconds; None if empty."""
    days, _, clock = text.strip().rpartition("-")
    parts = clock.split(":")
    try:
        values = [float(p) for p in parts]
        day_s = int(days) * 86400 if days else 0
    except ValueError:
        return None
    if not 1 <= len(values) <= 3:
        return None
    seconds = 0.0
    for v in values:
        seconds = seconds * 60 + v
    return seconds + day_s


def size_mb(text: str, units: dict[str, float] = _MB_PER) -> float | None:
    """A sacct size (``5242880K``, ``5.1G``; a bare number is bytes) in MB (2^20 bytes); None if empty."""
    m = _SIZE.match(text)
    return float(m.group(1)) * units[m.group(2).upper()] if m else None


def parse_tres(text: str) -> dict[str, str]:
    """``cpu=4,mem=8G,node=1,billing=4`` as a dict."""
    return dict(p.split("=", 1) for p in text.split(",") if "=" in p)


def summarize_accounting(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """State, exit code, elapsed and CPU seconds, allocated CPUs and memory, and the largest MaxRSS of any
    step, from accounting.json; None without one. Several job rows (an array, a sweep's chunks) add up:
    elapsed is from the first start to the last end, CPU time and allocations the sum, the efficiency the CPU
    time over each job's elapsed x CPUs, the exit code the largest, the state :func:`combined_state` with
    ``state_counts`` beside it; ``reason`` is sacct's Reason where it names one."""
    rows: Sequence[dict[str, str]] = (doc or {}).get("rows", [])
    jobs = [r for r in rows if "." not in r["JobID"]]
    if not jobs:
        return None
    per_job = [(r["State"].split() or ["UNKNOWN"])[0] for r in jobs]
    states = list(dict.fromkeys(per_job))
    from hpcx.schedulers.base import parse_exit  # sacct's code:signal, read as the scheduler reads it

    codes = [parse_exit(r["ExitCode"]) for r in jobs]
    tres = [parse_tres(r["AllocTRES"]) for r in jobs]
    elapsed = [duration_s(r["Elapsed"]) for r in jobs]
    cpu = [duration_s(r["TotalCPU"]) for r in jobs]
    rss = [v for v in (size_mb(r["MaxRSS"]) for r in rows) if v is not None]
    cpus = sum(int(t.get("cpu", 0)) for t in tres) or None
    mem = [size_mb(t["mem"], _TRES_MB_PER) for t in tres if "mem" in t]
    elapsed_s = _span_s(jobs) if len(jobs) > 1 else None
    if elapsed_s is None:
        elapsed_s = max((e for e in elapsed if e is not None), default=None)
    total_cpu_s = sum(c for c in cpu if c is not None) if any(c is not None for c in cpu) else None
    # Several jobs (array tasks, a sweep's chunks): each one's elapsed x its own CPUs is what was allocated.
    alloc_cpu_s = sum((e or 0) * int(t.get("cpu", 0)) for e, t in zip(elapsed, tres))
    return {
        "state": combined_state(per_job),
        "state_counts": {s: per_job.count(s) for s in states},
        "reason": next((r.get("Reason") for r in jobs if r.get("Reason") not in (None, "", "None")), None),
        "finished": bool(doc and doc.get("finished")),
        "exit_code": _exit_code(per_job, codes),
        "signal": max(c[1] for c in codes),
        "elapsed_s": elapsed_s,
        "elapsed_max_s": max((e for e in elapsed if e is not None), default=None),
        "total_cpu_s": total_cpu_s,
        "alloc_cpus": cpus,
        "alloc_mem_mb": sum(m for m in mem if m is not None) if mem else None,
        "alloc_nodes": sum(int(t.get("node", 0)) for t in tres) or None,
        "max_rss_mb": max(rss) if rss else None,
        "cpu_efficiency": _ratio(total_cpu_s, alloc_cpu_s),
        "node_list": ",".join(dict.fromkeys(r["NodeList"] for r in jobs)),
        "start": jobs[0]["Start"],
        "end": jobs[-1]["End"],
        "queried_at": (doc or {}).get("queried_at"),
    }


def combined_state(states: Sequence[str]) -> str:
    """One state for several jobs (array tasks, a sweep's chunks): status's rule,
    :func:`hpcx.schedulers.base.overall_state`, so both say the same. ``state_counts`` keeps how many had each."""
    from hpcx.schedulers.base import overall_state

    return overall_state(states)


def _span_s(jobs: Sequence[dict[str, str]]) -> float | None:
    """From the first job's start to the last one's end (sacct's ISO times), or None when one is unknown."""
    import datetime as dt

    try:
        starts = [dt.datetime.fromisoformat(r["Start"]) for r in jobs]
        ends = [dt.datetime.fromisoformat(r["End"]) for r in jobs]
    except (KeyError, ValueError):  # "Unknown", "None": not started or not ended
        return None
    return (max(ends) - min(starts)).total_seconds()


def _exit_code(states: Sequence[str], codes: Sequence[tuple[int | None, int]]) -> int | None:
    """The largest exit code of the jobs, each as status and runs show it (schedulers.base.exit_code_of: none
    for a job the scheduler ended, 128 + signal for one killed by a signal); None when no job has one."""
    from hpcx.schedulers.base import exit_code_of

    shown = [exit_code_of(s, c, sig) for s, (c, sig) in zip(states, codes)]
    return max((c for c in shown if c is not None), default=None)


def _ratio(num: float | None, den: float) -> float | None:
    return num / den if num is not None and den > 0 else None
