"""Communication records (profile/comm-rank-*.jsonl, hpcx.comm/1) as the report's share of time in calls, and
the node energy spent in them.

Lives on the login side beside the merge (hpcx.profiling.comm writes the files and must not be imported here).
Each file's last record holds its process's cumulative totals; a rank is the sum of its processes. The
records before it (one every 5 s while the totals change) give the cumulative seconds in calls over time,
which :func:`comm_energy` joins with the node energy counters' edge windows.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from hpcx.rundir.layout import COMM_RECORDS, process_files, rank_of_process_file
from hpcx.rundir.records import (
    UNAVAILABLE,
    current_attempt,
    last_attempt_steps,
    rank_files,
    read_nodes,
    read_records,
)

CommFiles = dict[int, list[list[dict[str, Any]]]]  # per rank, per process file, its ``comm`` records


def comm_files(profile_dir: Path, since: dict[int, float] | None = None) -> CommFiles:
    """Per rank, each of its process files' ``comm`` records, every file read once. ``since``: per rank, the
    start of its last attempt; a process file whose last record is older belongs to an earlier attempt of a
    requeued job and is left out (each attempt's processes have their own files)."""
    out: CommFiles = {}
    for path in process_files(profile_dir, COMM_RECORDS):
        rank = rank_of_process_file(path, COMM_RECORDS)
        records = [r for r in read_records(path) if r.get("type") == "comm"]
        if rank is not None and records and current_attempt(since, rank, records[-1]["t"]):
            out.setdefault(rank, []).append(records)
    return out


def read_comm(
    profile_dir: Path, since: dict[int, float] | None = None, files: CommFiles | None = None
) -> dict[int, list[dict[str, Any]]]:
    """Per rank, the entries of each of its processes' last ``comm`` record (cumulative totals)."""
    files = comm_files(profile_dir, since) if files is None else files
    return {
        rank: [e for records in per_file for e in records[-1].get("entries", [])]
        for rank, per_file in files.items()
    }


def comm_sizes(per_rank: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Calls, bytes and seconds per (library, call, message-size bucket) over all ranks, as the comm records
    bucket them (a call of n bytes in 2^floor(log2 n))."""
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for entries in per_rank.values():
        for e in entries:
            key = (e["lib"], e["call"], int(e.get("bucket") or 0))
            row = rows.setdefault(
                key, {"lib": key[0], "call": key[1], "bucket": key[2], "calls": 0, "bytes": 0, "seconds": 0.0}
            )
            row["calls"] += e["calls"]
            row["bytes"] += e["bytes"]
            row["seconds"] += e["seconds"]
    return sorted(rows.values(), key=lambda r: (r["lib"], r["call"], r["bucket"]))


def summarize_comm(
    profile_dir: Path,
    wall_by_rank: dict[int, float],
    lives: dict[int, tuple[str, float, float]] | None = None,
    nodes: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """Seconds in traced calls per rank and in all, their share of the ranks' wall time, per call the
    calls, bytes, seconds and bus bandwidth (bytes x nccl-tests' factor over seconds), the same by message
    size (``sizes``) and the energy spent in calls; the comm files are read once for all of it. None without
    records. ``lives``: per rank its node, start and end (the report has them; else the rank files are
    read); only the processes of each rank's last attempt count."""
    if lives is None:
        lives = _rank_lives(profile_dir)
    files = comm_files(profile_dir, {rank: life[1] for rank, life in lives.items()})
    per_rank = read_comm(profile_dir, files=files)
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
        "sizes": comm_sizes(per_rank),
        "energy": comm_energy(profile_dir, lives, nodes, files),
        "ddp": summarize_ddp(files),
    }


def summarize_ddp(files: CommFiles) -> dict[str, Any] | None:
    """DistributedDataParallel's bucket communication (hpcx.profiling.comm_ddp) over the ranks: per bucket index
    its calls, bytes and seconds; the gradient bytes each rank sends per backward pass; how much of the
    communication ran while the backward pass was still computing (hidden) and after it (exposed); the hooks
    that timed it, and those that could not be (not covered). None when no process saw a DDP model."""
    hooks: dict[str, int] = {}
    buckets: dict[int, dict[str, Any]] = {}
    steps = hidden = exposed = 0.0
    per_step: list[float] = []
    timing = None
    for per_file in files.values():
        rank_bytes = rank_steps = 0
        for records in per_file:
            ddp = records[-1].get("ddp")
            if not isinstance(ddp, dict):
                continue
            timing = ddp.get("timing", timing)
            for name, n in (ddp.get("hooks") or {}).items():
                hooks[name] = hooks.get(name, 0) + n
            for b in ddp.get("buckets") or []:
                row = buckets.setdefault(
                    b["index"], {"index": b["index"], "calls": 0, "bytes": 0, "seconds": 0.0}
                )
                row["calls"] += b["calls"]
                row["bytes"] += b["bytes"]
                row["seconds"] += b["seconds"]
                rank_bytes += b["bytes"]
            rank_steps += ddp.get("steps", 0)
            steps += ddp.get("steps", 0)
            hidden += ddp.get("hidden_s", 0.0)
            exposed += ddp.get("exposed_s", 0.0)
        if rank_steps:
            per_step.append(rank_bytes / rank_steps)
    if not hooks:
        return None
    return {
        "hooks": hooks,
        "not_covered": sorted(h for h in hooks if h.endswith("(not covered)")),
        "buckets": [buckets[i] for i in sorted(buckets)],
        "backward_passes": int(steps),
        "bytes_per_step": sum(per_step) / len(per_step) if per_step else None,
        "hidden_s": hidden,
        "exposed_s": exposed,
        "hidden_share": hidden / (hidden + exposed) if hidden + exposed > 0 else None,
        "overlap_timing": timing,
    }


def _kind(entry: dict[str, Any]) -> str:
    return "ddp" if entry["call"] == "ddp_bucket_allreduce" else str(entry["lib"])


def tracing_cost(profile_dir: Path, files: CommFiles | None = None) -> dict[str, Any] | None:
    """What tracing added to the job: each process's calls of each kind (mpi, torch, ddp) times the cost per
    call that process measured at start-up on its node (hpcx.profiling.comm_cost). ``cost_us`` per kind is
    the median over the processes that measured it; calls of a kind whose cost no process measured are
    ``unmeasured_calls``. None without comm records."""
    files = comm_files(profile_dir) if files is None else files
    added, calls, unmeasured = 0.0, 0, 0
    measured: dict[str, list[float]] = {}
    for per_file in files.values():
        for records in per_file:
            last = records[-1]
            raw = last.get("cost_us")
            cost: dict[str, Any] = raw if isinstance(raw, dict) else {}
            for kind, us in cost.items():
                measured.setdefault(kind, []).append(float(us))
            for e in last.get("entries", []):
                calls += e["calls"]
                us = cost.get(_kind(e))
                if us is None:
                    unmeasured += e["calls"]
                else:
                    added += e["calls"] * float(us) / 1e6
    if not files:
        return None
    return {
        "added_s": added,
        "calls": calls,
        "unmeasured_calls": unmeasured,
        "cost_us": {kind: statistics.median(v) for kind, v in sorted(measured.items())},
    }


# ---------------------------------------------------------------- energy spent in communication

ENERGY_RULE = (
    "per energy-counter edge window of a node, the window's energy times the share of the node's rank-time in "
    "traced calls: (seconds in calls of the node's ranks within the window, from their cumulative comm records "
    "interpolated linearly at the window edges) / (seconds the node's ranks ran within the window), at most 1"
)


def comm_curves(
    profile_dir: Path, since: dict[int, float] | None = None, files: CommFiles | None = None
) -> dict[int, list[list[tuple[float, float]]]]:
    """Per rank, per process file, the cumulative seconds in traced calls over time: ``[(t, seconds), ...]``,
    from 0 when tracing started in the process (the first record's ``t - wall_s``) through every record.

    A call is counted when it ends, so a call longer than the interval between two records would put all its
    seconds after the earlier record; the curve is therefore made to rise at most 1 s per second (a process is
    in one call at a time), moving the excess before the earlier record."""
    files = comm_files(profile_dir, since) if files is None else files
    curves: dict[int, list[list[tuple[float, float]]]] = {}
    for rank, per_file in files.items():
        for records in per_file:
            first = records[0]
            points = [(first["t"] - first.get("wall_s", 0.0), 0.0)]
            points += [(r["t"], float(r["seconds"])) for r in records if r["t"] > points[-1][0]]
            curves.setdefault(rank, []).append(_at_most_one_per_second(points))
    return curves


def _at_most_one_per_second(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Lift earlier points so the curve never rises faster than time passes (see :func:`comm_curves`)."""
    out = list(points)
    for i in range(len(out) - 2, -1, -1):
        (t, s), (t_next, s_next) = out[i], out[i + 1]
        out[i] = (t, max(s, s_next - (t_next - t)))
    return out


def _at(curve: list[tuple[float, float]], t: float) -> float:
    """The curve at ``t``, linear between points; 0 before the first, the last value after the last."""
    if t <= curve[0][0]:
        return curve[0][1]
    for (t0, s0), (t1, s1) in zip(curve, curve[1:]):
        if t <= t1:
            return s0 + (s1 - s0) * (t - t0) / (t1 - t0)
    return curve[-1][1]


def _rank_lives(profile_dir: Path) -> dict[int, tuple[str, float, float]]:
    """Per rank with a rank file: its node and when it ran (start record to end record, or last sample; a
    rank several job steps ran: the first step's node, from the first start to the last end)."""
    lives = {}
    for rank, paths in rank_files(profile_dir).items():
        steps = []
        for path in paths:
            start = end = last = None
            for rec in read_records(path):
                kind = rec.get("type")
                if kind == "start":
                    start, end, last = rec, None, None  # a requeued job: the last attempt
                elif kind == "end":
                    end = rec
                elif kind == "sample":
                    last = rec
            if start is not None and start.get("node"):
                steps.append({"start": start, "stop": (end or last or start)["t"]})
        steps = last_attempt_steps(steps)
        if steps:
            lives[rank] = (steps[0]["start"]["node"], steps[0]["start"]["t"], max(s["stop"] for s in steps))
    return lives


def _unavailable(reason: str) -> dict[str, Any]:
    return {"status": UNAVAILABLE, "reason": reason, "method": "derived", "rule": ENERGY_RULE}


def comm_energy(
    profile_dir: Path,
    lives: dict[int, tuple[str, float, float]] | None = None,
    nodes: dict[str, dict[str, Any]] | None = None,
    files: CommFiles | None = None,
) -> dict[str, Any]:
    """The node energy spent in traced communication, per node and in all (method ``derived``, :data:`ENERGY_RULE`).

    Per node: ``energy_j`` (all its measured counters), per counter (``cpu_package``, ``dram``, ``gpuN``) the
    attributed ``energy_j`` beside the counter's ``node_energy_j`` over the same windows, ``comm_s`` (seconds
    in calls inside energy windows), and ``coverage`` (that over all its ranks' seconds in calls); or
    ``status`` unavailable with the ``reason`` (no energy counter on the node, no rank records): never 0 for
    a figure nobody measured."""
    profile_dir = Path(profile_dir)
    if lives is None:
        lives = _rank_lives(profile_dir)
    curves = comm_curves(profile_dir, {rank: life[1] for rank, life in lives.items()}, files)
    if not curves:
        return _unavailable("no communication records (tracing off, or no traced call was made)")
    if nodes is None:
        nodes = read_nodes(profile_dir)
    by_node: dict[str, list[int]] = {}
    for rank in sorted(curves):
        if rank in lives:
            by_node.setdefault(lives[rank][0], []).append(rank)
    out_nodes: dict[str, Any] = {}
    unplaced = sorted(set(curves) - set(lives))
    for name, ranks in sorted(by_node.items()):
        node = nodes.get(name)
        out_nodes[name] = (
            _node_comm_energy(node, ranks, curves, lives)
            if node
            else _unavailable(f"no node records for {name} (its collector, local rank 0, wrote none)")
        )
    total_s = sum(_at(c, float("inf")) for r in curves for c in curves[r])
    measured = {n: e for n, e in out_nodes.items() if e["status"] == "measured"}
    result: dict[str, Any]
    if measured:
        covered = sum(e["comm_s"] for e in measured.values())
        result = {
            "status": "measured",
            "energy_j": round(sum(e["energy_j"] for e in measured.values()), 3),
            "method": "derived",
            "rule": ENERGY_RULE,
            "coverage": round(min(covered / total_s, 1.0), 4) if total_s > 0 else None,
        }
    else:
        result = _unavailable(f"no node with an energy counter ({_once(out_nodes) or 'no rank records'})")
    if unplaced:
        result["unplaced_ranks"] = unplaced  # comm records without a rank file: their node is unknown
    result["nodes"] = out_nodes
    return result


def _once(nodes: dict[str, dict[str, Any]]) -> str:
    """Each node's reason once, with the nodes it holds for: ``n1, n2: no energy counter: ...``."""
    by_reason: dict[str, list[str]] = {}
    for name, entry in nodes.items():
        by_reason.setdefault(entry["reason"], []).append(name)
    return "; ".join(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items())


def _node_comm_energy(
    node: dict[str, Any],
    ranks: list[int],
    curves: dict[int, list[list[tuple[float, float]]]],
    lives: dict[int, tuple[str, float, float]],
) -> dict[str, Any]:
    counters: dict[str, Any] = {}
    comm_in_windows = 0.0
    reasons: dict[str, list[str]] = {}  # reason -> the counters it holds for
    for key, figure in node["energy"].items():
        if figure.get("status") != "measured":
            reasons.setdefault(figure.get("reason", "unavailable"), []).append(key)
            continue
        attributed = energy = comm_s = 0.0
        for a, b, joules in node["windows"][key]:
            comm = sum(_at(c, b) - _at(c, a) for r in ranks for c in curves[r])
            ran = sum(max(0.0, min(b, lives[r][2]) - max(a, lives[r][1])) for r in ranks)
            share = min(comm / ran, 1.0) if ran > 0 else 0.0
            attributed += joules * share
            energy += joules
            comm_s += comm
        counters[key] = {
            "energy_j": round(attributed, 3),
            "node_energy_j": round(energy, 3),
            "share": round(attributed / energy, 4) if energy > 0 else None,
        }
        comm_in_windows = max(comm_in_windows, comm_s)
    if not counters:
        return _unavailable(
            "no energy counter: " + "; ".join(f"{', '.join(k)}: {r}" for r, k in reasons.items())
        )
    all_comm = sum(_at(c, float("inf")) for r in ranks for c in curves[r])
    return {
        "status": "measured",
        "energy_j": round(sum(c["energy_j"] for c in counters.values()), 3),
        "method": "derived",
        "rule": ENERGY_RULE,
        "counters": counters,
        "comm_s": round(comm_in_windows, 6),
        "coverage": round(min(comm_in_windows / all_comm, 1.0), 4) if all_comm > 0 else None,
        "ranks": ranks,
    }
