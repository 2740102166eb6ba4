"""The report's sections read from the records beside the ranks: each node's sensors and energy, the I/O per
rank (every byte from the ranks' /proc counters, hpcx.io's own detail, the checkpoints) with the HDF5 files'
layouts, and where the run came from (the manifest's provenance)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hpcx.reports.ranks import IO_KEYS
from hpcx.rundir.layout import (
    CHECKPOINT_MANIFEST,
    CHECKPOINT_REPLICATED,
    CHECKPOINT_STEP,
    IO_RECORDS,
    checkpoint_rank_file,
    process_files,
)
from hpcx.rundir.records import read_io_totals, read_nodes, read_records

MB = 2**20
PROCESS_IO_SOURCE = (
    "/proc/PID/io of each rank's process tree (its threads, children and DataLoader workers), "
    "sampled by hpcx.run"
)
IO_LABELS = {
    "read_bytes": "rchar: bytes of every read()-like call (files, pipes, sockets, page cache hits); "
    "what Slurm's TotalDiskRead counts",
    "write_bytes": "wchar: bytes of every write()-like call (into the page cache, before any flush); "
    "what Slurm's TotalDiskWrite counts",
    "read_calls": "syscr: read()-like calls",
    "write_calls": "syscw: write()-like calls",
    "storage_read_bytes": "read_bytes: bytes the storage layer read for the processes (no page cache hits; "
    "partial or 0 on network filesystems and tmpfs)",
    "storage_write_bytes": "write_bytes: page cache bytes the processes dirtied for the storage layer "
    "(partial or 0 on network filesystems and tmpfs)",
}
IO_NOT_COVERED = (
    "file access through mmap (np.memmap, torch.load(mmap=True)) is in none of the counters",
    "a process that leaves the rank's tree (daemonized) is counted only to the last sample before it left",
)

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
    profile_dir: Path,
    ranks: list[int],
    since: dict[int, float] | None = None,
    *,
    summaries: list[dict[str, Any]] | None = None,
    checkpoint_root: Path | None = None,
) -> dict[str, Any]:
    """Bytes, seconds and rate per rank and in all, read and write (hpcx.profiling.iometrics records), and each HDF5
    file's layout as the writer chose it (mpio, per-rank fallback, serial) with the reason. ``since``: per
    rank, the start of its last attempt (older process files are left out). Beside them ``process``, every
    byte and call of the ranks' processes (:func:`process_io` of the rank ``summaries``), and
    ``checkpoints``, the steps under ``checkpoint_root`` (:func:`checkpoint_io`)."""
    checkpoints = checkpoint_io(checkpoint_root) if checkpoint_root is not None else None
    return {
        **_hpcx_io(profile_dir, ranks, since),
        "process": process_io(summaries or [], checkpoints),
        "checkpoints": checkpoints,
    }


def _hpcx_io(profile_dir: Path, ranks: list[int], since: dict[int, float] | None) -> dict[str, Any]:
    """:func:`summarize_io`'s hpcx.io part: per rank and in all, and the HDF5 files."""
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


def process_io(ranks: list[dict[str, Any]], checkpoints: dict[str, Any] | None) -> dict[str, Any] | None:
    """Every byte and call of I/O per rank from its processes' /proc counters (the ranks' ``io``,
    :func:`hpcx.reports.ranks.io_figures`): totals, mean rates over the rank's wall time (MB = 2^20 bytes)
    and the bytes of its files in the ``checkpoints`` still on disk; the sums; what each figure counts
    (``labels``), what none of them sees (``not_covered``) and which ranks' figures are partial (``partial``).
    None when no rank has the counters (records before them)."""
    ckpt = (checkpoints or {}).get("ranks") or {}
    rows = [_process_row(r, ckpt.get(str(r["rank"]), 0)) for r in ranks if r.get("io")]
    if not rows:
        return None
    short = [row["rank"] for row in rows if not row["to_exit"]]
    missing = [r["rank"] for r in ranks if not r.get("io")]
    return {
        "source": PROCESS_IO_SOURCE,
        "method": "counter",
        "labels": IO_LABELS,
        "ranks": rows,
        "total": {key: _sum(row[key] for row in rows) for key in [*IO_KEYS, "checkpoint_bytes"]},
        "not_covered": list(IO_NOT_COVERED),
        "partial": [
            *([f"ranks {_ids(short)}: counted to their last sample, not to their exit"] if short else []),
            *([f"ranks {_ids(missing)}: no I/O counters in their records"] if missing else []),
        ],
    }


def _process_row(rank: dict[str, Any], checkpoint_bytes: int) -> dict[str, Any]:
    """One rank's row of :func:`process_io`."""
    io, wall = rank["io"], rank["wall_s"]
    return {
        "rank": rank["rank"],
        **{key: io[key] for key in IO_KEYS},
        "to_exit": io["to_exit"],
        "read_mb_per_s": _rate(io["read_bytes"], wall),
        "write_mb_per_s": _rate(io["write_bytes"], wall),
        "checkpoint_bytes": checkpoint_bytes,
    }


def _rate(nbytes: int | None, wall_s: float) -> float | None:
    return nbytes / MB / wall_s if nbytes is not None and wall_s > 0 else None


def _sum(values: Any) -> int | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _ids(ranks: list[int]) -> str:
    return ", ".join(map(str, ranks[:8])) + (f" and {len(ranks) - 8} more" if len(ranks) > 8 else "")


def checkpoint_io(root: Path) -> dict[str, Any] | None:
    """The committed checkpoint steps under ``root`` (hpcx.runtime.checkpoint's layout) still on disk: per
    step its number, commit time (its manifest's mtime, Unix s), bytes and each rank's (its own file, and
    rank 0's the replicated state), from the step's manifest; the bytes per rank over them. Steps that
    rotation deleted are gone and not counted. None when there is none."""
    try:
        entries = sorted(e for e in root.iterdir() if CHECKPOINT_STEP.match(e.name))
    except OSError:
        return None
    steps = [s for s in (_checkpoint_step(e) for e in entries) if s is not None]
    if not steps:
        return None
    per_rank: dict[str, int] = {}
    for step in steps:
        for rank, nbytes in step["ranks"].items():
            per_rank[rank] = per_rank.get(rank, 0) + nbytes
    return {
        "steps": sorted(steps, key=lambda s: s["t"]),
        "bytes": sum(s["bytes"] for s in steps),
        "ranks": per_rank,
        "note": "committed steps on disk when the report was made; steps the rotation deleted are not counted",
    }


def _checkpoint_step(path: Path) -> dict[str, Any] | None:
    """One step folder's figures from its manifest; None without a readable one (not committed, damaged)."""
    manifest = path / CHECKPOINT_MANIFEST
    try:
        doc = json.loads(manifest.read_text())
        t = manifest.stat().st_mtime
        files = {name: int(entry["size_bytes"]) for name, entry in doc["files"].items()}
        world = int(doc.get("world_size") or 1)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    ranks = {str(r): files.get(checkpoint_rank_file(r), 0) for r in range(world)}
    ranks["0"] = ranks.get("0", 0) + files.get(CHECKPOINT_REPLICATED, 0)
    return {
        "step": int(doc.get("step", CHECKPOINT_STEP.match(path.name).group(1))),  # type: ignore[union-attr]
        "t": round(t, 3),
        "bytes": sum(files.values()),
        "ranks": {r: b for r, b in ranks.items() if b},
        "background": bool(doc.get("background")),
    }


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
