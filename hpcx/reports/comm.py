"""Communication records (profile/comm-rank-*.jsonl, hpcx.comm/1) as the report's share of time in calls.

Lives on the login side beside the merge (hpcx.profiling.comm writes the files and must not be imported here).
Each file's last record holds its process's cumulative totals; a rank is the sum of its processes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hpcx.records import read_records

_RANK = re.compile(r"comm-rank-(\d+)")


def read_comm(profile_dir: Path) -> dict[int, list[dict[str, Any]]]:
    """Per rank, the entries of each of its processes' last ``comm`` record."""
    per_rank: dict[int, list[dict[str, Any]]] = {}
    for path in sorted(profile_dir.glob("comm-rank-*.jsonl")):
        last = None
        for record in read_records(path):
            if record.get("type") == "comm":
                last = record
        m = _RANK.match(path.name)
        if last is not None and m:
            per_rank.setdefault(int(m.group(1)), []).extend(last.get("entries", []))
    return per_rank


def summarize_comm(profile_dir: Path, wall_by_rank: dict[int, float]) -> dict[str, Any] | None:
    """Seconds in traced calls per rank and in all, their share of the ranks' wall time, and per call the
    calls, bytes, seconds and bus bandwidth (bytes x nccl-tests' factor over seconds). None without
    records."""
    per_rank = read_comm(profile_dir)
    if not per_rank:
        return None
    calls: dict[tuple[str, str], dict[str, Any]] = {}
    for entries in per_rank.values():
        for e in entries:
            fresh = {"lib": e["lib"], "call": e["call"], "calls": 0, "bytes": 0, "seconds": 0.0, "_bus": 0.0}
            row = calls.setdefault((e["lib"], e["call"]), fresh)
            row["calls"] += e["calls"]
            row["bytes"] += e["bytes"]
            row["seconds"] += e["seconds"]
            row["_bus"] += (e.get("busbw_gbs") or 0.0) * e["seconds"]
    rows = sorted(calls.values(), key=lambda r: -r["seconds"])
    for row in rows:
        bus = row.pop("_bus")
        row["busbw_gbs"] = bus / row["seconds"] if bus > 0 and row["seconds"] > 0 else None
    seconds = {rank: sum(e["seconds"] for e in entries) for rank, entries in per_rank.items()}
    wall = sum(wall_by_rank.get(rank, 0.0) for rank in seconds)
    total = sum(seconds.values())
    return {
        "seconds": total,
        "share": total / wall if wall > 0 else None,
        "ranks": [{"rank": rank, "seconds": s} for rank, s in sorted(seconds.items())],
        "calls": rows,
    }
