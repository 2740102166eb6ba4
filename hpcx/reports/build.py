"""Merge per-rank profile records, the comm records and Slurm's accounting into report.json (hpcx.report/2).

Pure over the records; the I/O is at the two ends."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hpcx.errors import UsageError
from hpcx.fsutil import atomic_write, read_json
from hpcx.provenance import ACCOUNTING
from hpcx.records import READABLE_VERSIONS, node_series, read_io_totals, read_records
from hpcx.reports.accounting import summarize_accounting
from hpcx.reports.advice import advise
from hpcx.reports.comm import summarize_comm
from hpcx.runs import Run

REPORT_SCHEMA = "hpcx.report/2"
# A rank's timeline in the report is for reading, not analysis (the records keep every sample): an hour at 1 s
# becomes one point every 6 s, which keeps a 256-rank report a few MB and its build linear in ranks.
MAX_TIMELINE_POINTS = 600
_START, _SAMPLE, _END = b'"type":"start"', b'"type":"sample"', b'"type":"end"'  # as RecordWriter writes them


def summarize_rank(
    records: Iterable[dict[str, Any]], max_points: int = MAX_TIMELINE_POINTS
) -> dict[str, Any]:
    """One rank's numbers from its records: the last attempt's start and end, samples in between; the
    timeline keeps every n-th sample, at most ``max_points``."""
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
    step = -(-len(samples) // max_points) or 1
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
            for s in samples[::step]
        ],
    }


def summarize_rank_file(path: Path, max_points: int = MAX_TIMELINE_POINTS) -> dict[str, Any]:
    """:func:`summarize_rank` of one rank file, parsing only what it needs: a finished rank's end record holds
    its totals and peak, so of its samples only the timeline's are decoded (parsing every line of a 256-rank
    hour is most of the report's time). Lines are told apart by how RecordWriter writes ``type``; a file that
    is not written that way, or a rank without an end record (running, killed), is parsed whole."""
    lines = path.read_bytes().splitlines()  # bytes: most lines are only searched, never decoded
    first = next((i for i in range(len(lines) - 1, -1, -1) if _START in lines[i]), None)
    last = next((i for i in range(len(lines) - 1, max(len(lines) - 4, -1), -1) if _END in lines[i]), None)
    if first is None or last is None or last < first or not list(_decode(lines[last : last + 1])):
        return summarize_rank(read_records(path), max_points)
    samples = [line for line in lines[first:last] if _SAMPLE in line]
    step = -(-len(samples) // max_points) or 1
    picked = [lines[first], *samples[::step], lines[last]]
    summary = summarize_rank(_decode(picked), max_points)
    summary["samples"] = len(samples)
    return summary


def _decode(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    """The records of whole lines; a torn one is skipped. One json.loads for them all when they parse (the
    usual case: a third of the time of one call per line)."""
    try:
        records = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:  # JSONDecodeError, or UnicodeDecodeError from a torn multi-byte character
        records = None
    if records is not None:
        yield from (r for r in records if isinstance(r, dict) and r.get("v") in READABLE_VERSIONS)
        return
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn line
        if isinstance(record, dict) and record.get("v") in READABLE_VERSIONS:
            yield record


def build_report(run: Run, accounting: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report document of ``run`` from its profile records, manifest and Slurm accounting (given, else
    accounting.json when the run has one). Either source alone makes a report; with neither (a job not yet
    started, or not a Slurm job and never profiled) it raises UsageError saying so."""
    if accounting is None and (run.dir / ACCOUNTING).exists():
        accounting = read_json(run.dir / ACCOUNTING)
    acct = summarize_accounting(accounting)
    profile = run.dir / "profile"
    files = sorted(profile.glob("rank-*.jsonl"))
    ranks = [r for r in (summarize_rank_file(f) for f in files) if r["rank"] is not None]
    if not ranks and acct is None:
        raise UsageError(
            f"run {run.id} has no profile records in {profile} and no Slurm accounting record",
            hint="the job has not started yet; submit with --profile for hpcx's own records",
        )
    ranks.sort(key=lambda r: r["rank"])
    manifest = run.manifest
    res = {k: v["value"] for k, v in manifest.get("resources", {}).items()}
    nodes = summarize_nodes(profile)
    comm = summarize_comm(profile, {r["rank"]: r["wall_s"] for r in ranks})
    summary = summarize(ranks, acct, res, nodes, comm)
    report = {
        "schema": REPORT_SCHEMA,
        "run_id": run.id,
        "job_id": run.job.get("job_id"),
        "kind": manifest.get("kind", {}).get("value"),
        "command": manifest.get("command"),
        "resources": res,
        "summary": summary,
        "accounting": acct,
        "ranks": ranks,
        "io": summarize_io(profile, [r["rank"] for r in ranks]),
        "nodes": nodes,
        "comm": comm,
        "advice": advise(summary, ranks, comm),
    }
    report["line"] = grep_line(report)
    return report


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
    cpu = sum(r["cpu_s"] for r in ranks) if ranks else None
    # CPU efficiency against what was allocated: ranks x cpus per task x wall time.
    alloc = len(ranks) * cpus_per_task * (wall or 0)
    exits = [r["exit_code"] for r in ranks if r["exit_code"] is not None]
    state, state_source = _state(ranks, acct)
    energies = [e["energy_j"] for n in nodes for e in n["energy"].values() if e.get("status") == "measured"]
    mem_peak, where, mem_source = _memory_peak(ranks, acct, res)
    a = acct or {}
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
        "state": state,
        "state_source": state_source,
        "finished": a["finished"] if acct else bool(ranks) and all(r["finished"] for r in ranks),
        "exit_code": a["exit_code"] if acct else max(exits, default=None),
        "elapsed_s": a.get("elapsed_s") if a.get("elapsed_s") is not None else wall,
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


def _state(ranks: list[dict[str, Any]], acct: dict[str, Any] | None) -> tuple[str, str]:
    """Slurm's state when it has one; else what the records say: every rank ended (COMPLETED or FAILED by
    the exit codes), or UNFINISHED (still running, or killed before the ranks wrote their end)."""
    if acct is not None:
        return acct["state"], "sacct"
    if not all(r["finished"] for r in ranks):
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
    # Compact: indented JSON is written by Python's slow encoder, seconds for a large job; jq reads either.
    text = json.dumps(report, sort_keys=True, separators=(",", ":"), default=str) + "\n"
    return atomic_write(run.dir / "report" / "report.json", text)
