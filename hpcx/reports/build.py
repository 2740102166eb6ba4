"""Merge per-rank profile records into report.json. Pure over the records; the I/O is at the two ends."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hpcx.errors import UsageError
from hpcx.fsutil import atomic_write_json
from hpcx.records import node_series, read_io_totals, read_records
from hpcx.runs import Run

REPORT_SCHEMA = "hpcx.report/1"


def summarize_rank(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One rank's numbers from its records: the last attempt's start and end, samples in between."""
    start: dict[str, Any] = {}
    end: dict[str, Any] | None = None
    samples: list[dict[str, Any]] = []
    for rec in records:
        if rec["type"] == "start":  # a requeued job appends a new attempt: keep only the last one
            start, end, samples = rec, None, []
        elif rec["type"] == "sample":
            samples.append(rec)
        elif rec["type"] == "end":
            end = rec
    last_t = (end or (samples[-1] if samples else start)).get("t", start.get("t", 0.0))
    # hwm_mb (format 2) is the kernel's peak, so a spike between two samples still counts after a kill -9.
    peak = max(
        [max(s["rss_mb"], s.get("hwm_mb", 0.0)) for s in samples] + [end["peak_rss_mb"] if end else 0.0]
    )
    cpu = end["cpu_s"] if end else (samples[-1]["cpu_s"] if samples else 0.0)
    return {
        "rank": start.get("rank"),
        "node": start.get("node"),
        "host": start.get("host"),
        "attempt": start.get("attempt", 0),
        "start_t": start.get("t"),
        "wall_s": end["wall_s"] if end else last_t - start.get("t", last_t),
        "cpu_s": cpu,
        "peak_rss_mb": peak,
        "exit_code": end["exit_code"] if end else None,
        "finished": end is not None,
        "samples": len(samples),
        "cpus_allowed": start.get("cpus_allowed"),
        "timeline": [
            [round(s["t"] - start.get("t", s["t"]), 3), round(s["rss_mb"], 2), round(s["cpu_s"], 3)]
            for s in samples
        ],
    }


def build_report(run: Run) -> dict[str, Any]:
    """The report document of ``run`` from its profile records and manifest (raises if it has no records)."""
    files = sorted((run.dir / "profile").glob("rank-*.jsonl"))
    ranks = [r for r in (summarize_rank(read_records(f)) for f in files) if r["rank"] is not None]
    if not ranks:
        raise UsageError(
            f"run {run.id} has no profile records in {run.dir / 'profile'}",
            hint="the job has not started yet, or it ran without `python -m hpcx.run`",
        )
    ranks.sort(key=lambda r: r["rank"])
    manifest, job = run.manifest, run.job
    res = {k: v["value"] for k, v in manifest.get("resources", {}).items()}
    wall = max(r["wall_s"] for r in ranks)
    cpu = sum(r["cpu_s"] for r in ranks)
    # CPU efficiency against what was allocated: ranks x cpus per task x wall time.
    cpus_alloc = len(ranks) * int(res.get("cpus_per_task") or 1)
    exits = [r["exit_code"] for r in ranks]
    return {
        "schema": REPORT_SCHEMA,
        "run_id": run.id,
        "job_id": job.get("job_id"),
        "kind": manifest.get("kind", {}).get("value"),
        "command": manifest.get("command"),
        "resources": res,
        "summary": {
            "ranks": len(ranks),
            "nodes": sorted({r["node"] for r in ranks if r["node"]}),
            "wall_s": wall,
            "cpu_s": cpu,
            "cpu_efficiency": cpu / (cpus_alloc * wall) if wall > 0 else None,
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in ranks),
            "peak_rss_mb_sum": sum(r["peak_rss_mb"] for r in ranks),
            "all_finished": all(r["finished"] for r in ranks),
            "failed_ranks": [r["rank"] for r in ranks if r["exit_code"] not in (0, None)],
            "exit_code": max((c for c in exits if c is not None), default=None),
        },
        "ranks": ranks,
        "io": summarize_io(run.dir / "profile", [r["rank"] for r in ranks]),
        "nodes": summarize_nodes(run.dir / "profile"),
    }


def summarize_nodes(profile_dir: Path) -> list[dict[str, Any]]:
    """Per node (records of its lowest local rank): each sensor's status (with the reason when unavailable)
    and each energy figure with its method, window and coverage. Empty for runs recorded before format 2."""
    rows = []
    for path in sorted(profile_dir.glob("node-*.jsonl")):
        node = node_series(read_records(path))
        sources = {
            name: {k: rec[k] for k in ("status", "reason") if k in rec}
            for name, rec in node["sources"].items()
        }
        rows.append({"node": node["start"].get("node"), "sources": sources, "energy": node["energy"]})
    return rows


def summarize_io(profile_dir: Path, ranks: list[int]) -> dict[str, Any]:
    """Bytes, seconds and rate per rank and in all, read and write (hpcx.io.metrics records), and each HDF5
    file's layout as the writer chose it (mpio, per-rank fallback, serial) with the reason."""
    per_rank = read_io_totals(profile_dir)
    rows = []
    for rank in ranks:
        entry = per_rank.get(rank, {})
        row: dict[str, Any] = {"rank": rank}
        for op in ("read", "write"):
            t = entry.get(op, {"bytes": 0, "seconds": 0.0, "calls": 0})
            row[op] = {**t, "mb_per_s": t["bytes"] / 2**20 / t["seconds"] if t["seconds"] > 0 else None}
        rows.append(row)
    total = {
        op: {k: sum(r[op][k] for r in rows) for k in ("bytes", "seconds", "calls")}
        for op in ("read", "write")
    }
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(profile_dir.glob("io-rank-*.jsonl")):
        for record in read_records(path):
            if record.get("type") == "hdf5_open" and record.get("rank") == 0:
                files[record["path"]] = {k: record.get(k) for k in ("layout", "reason", "ranks", "fs_type")}
    return {"ranks": rows, "total": total, "hdf5_files": files}


def write_report(run: Run, report: dict[str, Any]) -> Path:
    """Write report/report.json atomically; return its path."""
    (run.dir / "report").mkdir(exist_ok=True)
    return atomic_write_json(run.dir / "report" / "report.json", report)
