"""The per-rank profile record format, shared by the writer (compute side) and the report (login side).

One JSON object per line in ``profile/rank-NNNNN.jsonl`` (per rank) and ``profile/node-NAME.jsonl`` (per
node, written by the node's lowest local rank); files are only ever appended to. Each line has ``v`` (format
version), ``type`` (start | source | sample | end, others in the in-process files) and ``t`` (Unix time, s).
docs/formats.md describes the fields. Version 2 added source records, node files and more sample fields; the
reader accepts version 1 files unchanged.

The merge (:func:`read_profile` and the functions under it) reads a run's profile directory into per-rank and
per-node series without MPI, after any ending: finished, requeued (the last attempt is kept) or killed (torn
last lines are skipped). It lives here, not in ``hpcx.profiling``, because the login side (``hpcx report``)
uses it and must not import the compute side.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def rank_file(profile_dir: str | os.PathLike[str], rank: int) -> Path:
    return Path(profile_dir) / f"rank-{rank:05d}.jsonl"


def node_file(profile_dir: str | os.PathLike[str], node: str) -> Path:
    """The node's file; a node name is a host name, but keep any path separator out of the file name."""
    return Path(profile_dir) / f"node-{node.replace('/', '_')}.jsonl"


class RecordWriter:
    """Appends records for one rank; each line is written whole and flushed, so readers see whole lines.

    ``line_flush=False`` keeps lines in the process until :meth:`sync` (the sampler calls it every few
    seconds): one write a few seconds instead of one per sample, which a parallel filesystem serving
    thousands of ranks feels. A kill -9 then loses at most the lines since the last sync.
    """

    def __init__(self, path: str | os.PathLike[str], line_flush: bool = True) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._line_flush = line_flush

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps({"v": FORMAT_VERSION, **record}, separators=(",", ":")) + "\n")
        if self._line_flush:
            self._fh.flush()

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


def read_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Records of one rank file; a torn last line (a rank killed mid-write) is skipped, not fatal."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("v") in READABLE_VERSIONS:
                yield record


def read_io_totals(profile_dir: str | os.PathLike[str]) -> dict[int, dict[str, dict[str, float]]]:
    """Per rank, the I/O totals of ``io-rank-*.jsonl`` (hpcx.io.metrics): each process file's last record,
    summed over the processes of a rank (its main process and its DataLoader workers)."""
    per_rank: dict[int, dict[str, dict[str, float]]] = {}
    for path in sorted(Path(profile_dir).glob("io-rank-*.jsonl")):
        last = None
        for record in read_records(path):
            if record.get("type") == "io":
                last = record
        if last is None:
            continue
        rank = per_rank.setdefault(int(last["rank"]), {})
        for op in ("read", "write"):
            entry = rank.setdefault(op, {"bytes": 0, "seconds": 0.0, "calls": 0})
            for key in entry:
                entry[key] += last.get(op, {}).get(key, 0)
    return per_rank


# ---------------------------------------------------------------- merge

UNAVAILABLE = "unavailable"


def _last_attempt(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records from the last ``start`` on: a requeued job appends a new attempt to the same file."""
    out: list[dict[str, Any]] = []
    for rec in records:
        if rec.get("type") == "start":
            out = []
        out.append(rec)
    return out


def _columns(samples: list[dict[str, Any]], skip: tuple[str, ...]) -> dict[str, list[Any]]:
    """Samples as columns, nested dicts flattened to ``source.field`` (a missing value is None)."""
    flat = []
    for s in samples:
        row: dict[str, Any] = {}
        for key, value in s.items():
            if key in skip:
                continue
            if isinstance(value, dict):
                row.update({f"{key}.{k}": v for k, v in value.items() if not isinstance(v, dict)})
            elif not isinstance(value, list):
                row[key] = value
        flat.append(row)
    keys = list(dict.fromkeys(k for row in flat for k in row))
    return {k: [row.get(k) for row in flat] for k in keys}


def _series(records: Iterable[dict[str, Any]], skip: tuple[str, ...]) -> dict[str, Any]:
    recs = _last_attempt(records)
    samples = [r for r in recs if r.get("type") == "sample"]
    return {
        "start": next((r for r in recs if r.get("type") == "start"), {}),
        "end": next((r for r in reversed(recs) if r.get("type") == "end"), None),
        "sources": {r["name"]: r for r in recs if r.get("type") == "source"},
        "series": _columns(samples, skip),
        "samples": samples,
    }


def rank_series(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One rank: its start and end records, its sources, and its samples as columns (``t``, ``rss_mb``...)."""
    return _series(records, skip=("v", "type", "rank"))


def node_series(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One node: start, end, sources, samples as columns (``memory.used_mb``, ``network.rx_bytes``, ...) and
    the energy of each counter source over the window its edges span (see :func:`node_energy`)."""
    node = _series(records, skip=("v", "type", "node"))
    node["energy"] = node_energy(node)
    return node


def _window(edges: list[tuple[float, float]], job_s: float) -> dict[str, Any]:
    """Energy between the first and last counter readings, with the share of the node's time they span."""
    (t0, e0), (t1, e1) = edges[0], edges[-1]
    window = t1 - t0
    return {"energy_j": round(e1 - e0, 3), "window_s": round(window, 3), "method": "counter",
            "coverage": round(min(window / job_s, 1.0), 4) if job_s > 0 else None,
            "status": "measured" if window > 0 else UNAVAILABLE}  # fmt: skip


def node_energy(node: dict[str, Any]) -> dict[str, Any]:
    """Per energy source (``cpu_package``, ``dram``, ``gpuN``): a measured window, or unavailable with why."""
    samples, sources = node["samples"], node["sources"]
    t_start = node["start"].get("t")
    t_end = node["end"]["t"] if node["end"] else (samples[-1]["t"] if samples else t_start)
    job_s = (t_end - t_start) if t_start is not None and t_end is not None else 0.0
    out: dict[str, Any] = {}
    rapl = sources.get("rapl")
    if rapl is None or rapl.get("status") == UNAVAILABLE:
        reason = rapl.get("reason") if rapl else "no RAPL source record"
        out["cpu_package"] = out["dram"] = {"status": UNAVAILABLE, "reason": reason}
    else:
        edges = [s for s in samples if isinstance(s.get("rapl"), dict)]
        for key, field in (("cpu_package", "package_j"), ("dram", "dram_j")):
            points = [(s["t"], s["rapl"][field]) for s in edges]
            has_zone = any(
                n.startswith("package") if field == "package_j" else n == "dram"
                for n in rapl.get("zones", {}).values()
            )  # fmt: skip
            if not has_zone:
                out[key] = {"status": UNAVAILABLE, "reason": f"no {key} zone under RAPL"}
            elif len(points) < 2:
                out[key] = {"status": UNAVAILABLE, "reason": "fewer than two counter readings"}
            else:
                out[key] = _window(points, job_s)
    nvml = sources.get("nvml")
    if nvml is None or nvml.get("status") == UNAVAILABLE:
        out["gpu"] = {
            "status": UNAVAILABLE,
            "reason": nvml.get("reason") if nvml else "no NVML source record",
        }
        return out
    for index in nvml.get("gpus", []):
        points = [(s["t"], g["energy_j"]) for s in samples for g in s.get("nvml", [])
                  if g.get("index") == index and g.get("energy_j") is not None]  # fmt: skip
        if index in nvml.get("no_energy_counter", []):
            out[f"gpu{index}"] = {"status": UNAVAILABLE, "reason": "this GPU has no total-energy counter"}
        elif len(points) < 2:
            out[f"gpu{index}"] = {"status": UNAVAILABLE, "reason": "fewer than two counter readings"}
        else:
            out[f"gpu{index}"] = _window(points, job_s)
    return out


def region_spans(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spans of one regions file in Unix time: ``name``, ``start_t``, ``dur_s``, ``depth``, ``pid``."""
    anchor: dict[str, Any] | None = None
    spans = []
    for rec in records:
        if rec.get("type") == "anchor":
            anchor = rec
        elif rec.get("type") == "regions" and anchor is not None:
            for name, start_ns, dur_ns, depth in rec["spans"]:
                spans.append({"name": name, "start_t": anchor["t"] + start_ns / 1e9, "dur_s": dur_ns / 1e9,
                              "depth": depth, "pid": anchor["pid"]})  # fmt: skip
    return spans


_RANK = re.compile(r"rank-(\d+)")


def _rank_of(path: Path) -> int:
    return int(_RANK.search(path.name).group(1))  # type: ignore[union-attr]  # the glob guarantees a match


def read_profile(profile_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Every record of a run's profile directory: ``{"ranks": {rank: ...}, "nodes": {node: ...},
    "regions": {rank: [span, ...]}}`` (regions of all a rank's processes, in start order)."""
    root = Path(profile_dir)
    ranks = {_rank_of(path): rank_series(read_records(path)) for path in sorted(root.glob("rank-*.jsonl"))}
    nodes = {}
    for path in sorted(root.glob("node-*.jsonl")):
        node = node_series(read_records(path))
        nodes[node["start"].get("node") or path.stem[len("node-") :]] = node
    regions: dict[int, list[dict[str, Any]]] = {}
    for path in sorted(root.glob("regions-rank-*.jsonl")):
        regions.setdefault(_rank_of(path), []).extend(region_spans(read_records(path)))
    for spans in regions.values():
        spans.sort(key=lambda s: s["start_t"])
    return {"ranks": ranks, "nodes": nodes, "regions": regions}
