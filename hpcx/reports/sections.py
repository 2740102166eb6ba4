"""The report's sections read from the records beside the ranks: each node's sensors and energy, the I/O per
rank with the HDF5 files' layouts, and where the run came from (the manifest's provenance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcx.rundir.layout import IO_RECORDS, process_files
from hpcx.rundir.records import read_io_totals, read_nodes, read_records

NODE_ENERGY_KEYS = (
    "status",
    "reason",
    "energy_j",
    "window_s",
    "method",
    "coverage",
    "steps",
    "rule",
)  # schema


def summarize_nodes(
    profile_dir: Path, merged: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Per node (records of its lowest local rank; of each job step's, merged, when several steps ran on it):
    each sensor's status (with the reason when unavailable) and each energy figure with its method, window
    and coverage, a node's energy counted once however many steps read it. Empty for runs recorded before
    format 2. ``merged``: :func:`hpcx.rundir.records.read_nodes` of the directory, when the caller has it."""
    if merged is None:
        merged = read_nodes(profile_dir)
    rows = []
    for name, node in sorted(merged.items()):
        sources = {
            src: {k: rec[k] for k in ("status", "reason") if k in rec} for src, rec in node["sources"].items()
        }
        energy = {
            key: {k: v for k, v in e.items() if k in NODE_ENERGY_KEYS} for key, e in node["energy"].items()
        }
        rows.append({"node": node["start"].get("node") or name, "sources": sources, "energy": energy})
    return rows


def summarize_io(
    profile_dir: Path, ranks: list[int], since: dict[int, float] | None = None
) -> dict[str, Any]:
    """Bytes, seconds and rate per rank and in all, read and write (hpcx.profiling.iometrics records), and each HDF5
    file's layout as the writer chose it (mpio, per-rank fallback, serial) with the reason. ``since``: per
    rank, the start of its last attempt (older process files are left out)."""
    per_rank = read_io_totals(profile_dir, since)
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
    for path in process_files(profile_dir, IO_RECORDS):
        for record in read_records(path):
            if record.get("type") == "hdf5_open" and record.get("rank") == 0:
                files[record["path"]] = {k: record.get(k) for k in ("layout", "reason", "ranks", "fs_type")}
    return {"ranks": rows, "total": total, "hdf5_files": files}


def provenance(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the report shows of where the run came from: the manifest's creation, host, user, git, site,
    template, Python, modules and Slurm version (the full record stays in manifest.json)."""
    git = manifest.get("git") or {}
    python = manifest.get("python") or {}
    site = manifest.get("site") or {}
    template = manifest.get("template") or {}
    return {
        "created": manifest.get("created"),
        "host": manifest.get("host"),
        "user": manifest.get("user"),
        "workdir": manifest.get("workdir"),
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "git_branch": git.get("branch"),
        "git_remote": git.get("remote_url"),
        "site": site.get("name"),
        "site_sha256": site.get("sha256"),
        "template": template.get("path"),
        "template_sha256": template.get("sha256"),
        "python": python.get("version") if isinstance(python, dict) else None,
        "hpcx": python.get("hpcx") if isinstance(python, dict) else None,
        "modules": list((manifest.get("modules") or {}).get("loaded") or []),
        "slurm": (manifest.get("slurm") or {}).get("version"),
        "variables": manifest.get("variables") or {},
    }
