"""The per-rank profile record format, shared by the writer (compute side) and the report (login side).

One JSON object per line in ``profile/rank-NNNNN.jsonl`` (per rank) and ``profile/node-NAME.jsonl`` (per
node, written by the node's lowest local rank); files are only ever appended to. Each line has ``v`` (format
version), ``type`` (start | source | sample | end, others in the in-process files) and ``t`` (Unix time, s).
docs/formats.md describes the fields. Version 2 added source records, node files and more sample fields; the
reader accepts version 1 files unchanged.

The merge of a node's files (:func:`read_nodes` and the functions under it) reads them into one series per
node without MPI, after any ending: finished, requeued (the last attempt is kept) or killed (torn last lines are
skipped). It lives here, not in ``hpcx.profiling``, because the login side (``hpcx report``) uses it and must
not import the compute side. A rank's files are merged by the report (:mod:`hpcx.reports.ranks`), which keeps
the one rule for a rank run by several job steps.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hpcx.rundir.layout import IO_RECORDS, node_files, node_of_file, process_files

# The file names are the layout's; these stay importable from here for the readers and writers of records.
from hpcx.rundir.layout import node_file as node_file
from hpcx.rundir.layout import rank_file as rank_file
from hpcx.rundir.layout import rank_files as rank_files

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class RecordWriter:
    """Appends records for one rank; each line is written whole and flushed, so readers see whole lines.

    ``line_flush=False`` keeps lines in the process until :meth:`sync` (the sampler calls it every few
    seconds): one write a few seconds instead of one per sample, which a parallel filesystem serving
    thousands of ranks feels. A kill -9 then loses at most the lines since the last sync.
    """

    def __init__(self, path: str | os.PathLike[str], line_flush: bool = True) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")  # closed in close()
        self._line_flush = line_flush
        if _ends_torn(path):
            # An earlier attempt was killed mid-line (a requeued job appends to its file): start on a new line,
            # or this attempt's first record, its start, would be glued to the torn one and lost with it.
            self._fh.write("\n")
            self._fh.flush()

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


def _ends_torn(path: str | os.PathLike[str]) -> bool:
    """Whether the file is non-empty and its last line has no line end (its writer died mid-line)."""
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"


# How a record line starts: RecordWriter writes the version, then the record's type (json.dumps escapes the
# quotes inside string values, so this is never inside a string).
_RECORD_START = re.compile(r'\{"v":\d+,"type":"')


def _record_of(line: str) -> Any:
    """The JSON value of one line, or None when it is torn. A torn line that an older writer (before it
    looked at the tail) glued the next attempt's first record onto loses only its torn part."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        pass
    for match in _RECORD_START.finditer(line, 1):
        try:
            return json.loads(line[match.start() :])
        except json.JSONDecodeError:
            continue
    return None


def read_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Records of one rank file; a torn line (a rank killed mid-write) is skipped, not fatal, and only that
    line: the records after it, a requeued attempt's among them, are all read."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            record = _record_of(line)
            if isinstance(record, dict) and record.get("v") in READABLE_VERSIONS:
                yield record


def current_attempt(since: dict[int, float] | None, rank: int, last_t: float) -> bool:
    """Whether a per-process file of ``rank`` whose last record is at ``last_t`` belongs to the rank's last
    attempt: ``since`` holds each rank's last start (a requeued job's earlier processes wrote their own files,
    all older than it); without it, every file does."""
    return since is None or rank not in since or last_t >= since[rank]


def read_io_totals(
    profile_dir: str | os.PathLike[str], since: dict[int, float] | None = None
) -> dict[int, dict[str, dict[str, float]]]:
    """Per rank, the I/O totals of ``io-rank-*.jsonl`` (hpcx.profiling.iometrics): each process file's last record,
    summed over the processes of a rank (its main process and its DataLoader workers). ``since``: per rank,
    the start of its last attempt; a process file last written before it (a requeued job's earlier attempt)
    is left out."""
    per_rank: dict[int, dict[str, dict[str, float]]] = {}
    for path in process_files(profile_dir, IO_RECORDS):
        last = None
        for record in read_records(path):
            if record.get("type") == "io":
                last = record
        if last is None:
            continue
        if not current_attempt(since, int(last["rank"]), last["t"]):
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


def last_attempt_steps(
    steps: list[dict[str, Any]], start: Any = lambda s: s["start"]
) -> list[dict[str, Any]]:
    """Of one rank's job steps (one per rank file), those of the job's last attempt, in start order: a
    requeued job's new attempt numbers its steps from 0 again, so a step file the new attempt never reached
    still holds the old attempt's records."""
    steps = [s for s in steps if start(s)]
    if not steps:
        return []
    last = max(start(s).get("attempt", 0) or 0 for s in steps)
    kept = [s for s in steps if (start(s).get("attempt", 0) or 0) == last]
    return sorted(kept, key=lambda s: start(s).get("t", 0.0))


def node_series(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One node file (one collector, one job step): start, end, sources, samples as columns
    (``memory.used_mb``, ``network.rx_bytes``, ...), the energy of each counter source over the window its
    edges span, and those edge windows (``windows``: per counter ``[t0, t1, joules]``)."""
    node = _series(records, skip=("v", "type", "node"))
    node["energy"], node["windows"] = _combined_energy([node])
    return node


def merge_node_steps(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """One node read by several job steps' collectors (each a :func:`node_series`) as one node: energy that
    counts every moment once (:func:`energy_windows`), all the steps' samples in time order, and ``steps``,
    the steps' own series in start order."""
    steps = sorted(steps, key=_node_start)
    if len(steps) == 1:
        return {**steps[0], "steps": steps}
    samples = sorted((s for step in steps for s in step["samples"]), key=lambda s: s.get("t", 0.0))
    sources: dict[str, Any] = {}
    for step in steps:
        for name, rec in step["sources"].items():
            if name not in sources or sources[name].get("status") == UNAVAILABLE != rec.get("status"):
                sources[name] = rec  # measured by any step is measured
    ends = [step["end"] for step in steps]
    energy, windows = _combined_energy(steps)
    return {
        "start": steps[0]["start"],
        "end": max(ends, key=lambda e: e["t"]) if all(ends) else None,
        "sources": sources,
        "series": _columns(samples, skip=("v", "type", "node")),
        "samples": samples,
        "energy": energy,
        "windows": windows,
        "steps": steps,
    }


def _node_start(node: dict[str, Any]) -> float:
    t = node["start"].get("t")
    if t is None:
        t = node["samples"][0]["t"] if node["samples"] else float("inf")
    return t


def _lifetime(node: dict[str, Any]) -> tuple[float, float] | None:
    """From the collector's start record to its end record (or its last sample, after a kill)."""
    samples = node["samples"]
    t_start = node["start"].get("t")
    t_end = node["end"]["t"] if node["end"] else (samples[-1]["t"] if samples else t_start)
    return (t_start, t_end) if t_start is not None and t_end is not None else None


def _union_length(intervals: Iterable[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def _counter_points(node: dict[str, Any]) -> dict[str, list[tuple[float, float]] | str]:
    """Per energy counter of one collector: its edge readings ``(t, joules since its sampler started)``, or
    the reason it has none."""
    samples, sources = node["samples"], node["sources"]
    out: dict[str, list[tuple[float, float]] | str] = {}
    rapl = sources.get("rapl")
    if rapl is None or rapl.get("status") == UNAVAILABLE:
        out["cpu_package"] = out["dram"] = (rapl.get("reason") if rapl else None) or "no RAPL source record"
    else:
        edges = [s for s in samples if isinstance(s.get("rapl"), dict)]
        for key, field in (("cpu_package", "package_j"), ("dram", "dram_j")):
            has_zone = any(
                n.startswith("package") if field == "package_j" else n == "dram"
                for n in rapl.get("zones", {}).values()
            )
            if has_zone:
                out[key] = [(s["t"], s["rapl"][field]) for s in edges if field in s["rapl"]]
            else:
                out[key] = f"no {key} zone under RAPL"
    nvml = sources.get("nvml")
    if nvml is None or nvml.get("status") == UNAVAILABLE:
        out["gpu"] = (nvml.get("reason") if nvml else None) or "no NVML source record"
        return out
    for index in nvml.get("gpus", []):
        if index in nvml.get("no_energy_counter", []):
            out[f"gpu{index}"] = "this GPU has no total-energy counter"
        else:
            out[f"gpu{index}"] = [
                (s["t"], g["energy_j"])
                for s in samples
                for g in s.get("nvml", [])
                if g.get("index") == index and g.get("energy_j") is not None
            ]
    return out


COMBINE_RULE = (
    "one node read by several job steps: each moment counted once, from the step whose collector started "
    "first; a later step adds only the parts of its edge windows that no earlier step covered, a window that "
    "straddles a covered one prorated by time"
)


def _uncovered(a: float, b: float, covered: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The parts of [a, b] outside the sorted, disjoint ``covered`` intervals."""
    parts, cursor = [], a
    for c, d in covered:
        if d <= cursor or c >= b:
            continue
        if c > cursor:
            parts.append((cursor, c))
        cursor = max(cursor, d)
    if cursor < b:
        parts.append((cursor, b))
    return parts


def _add_interval(covered: list[tuple[float, float]], a: float, b: float) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for c, d in sorted([*covered, (a, b)]):
        if merged and c <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], d))
        else:
            merged.append((c, d))
    return merged


def energy_windows(series: list[list[tuple[float, float]]]) -> tuple[list[tuple[float, float, float]], bool]:
    """Disjoint windows ``(t0, t1, joules)`` of one counter read by one or more collectors (each a list of
    ``(t, joules)`` edge readings; earlier-started collector first), counting every moment once
    (:data:`COMBINE_RULE`: two steps on one node read the same counter, so their overlap is one energy), and
    whether any window was prorated."""
    covered: list[tuple[float, float]] = []
    windows: list[tuple[float, float, float]] = []
    prorated = False
    for points in series:
        for (a, ea), (b, eb) in zip(points, points[1:]):
            if b <= a:
                continue
            parts = _uncovered(a, b, covered)
            if parts and parts != [(a, b)]:
                prorated = True
            windows.extend((c, d, (eb - ea) * (d - c) / (b - a)) for c, d in parts)
            covered = _add_interval(covered, a, b)
    windows.sort()
    return windows, prorated


def _combined_energy(steps: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, list[list[float]]]]:
    """Per energy counter of a node read by ``steps`` (its collectors, one per job step): energy, window,
    coverage (of the union of the collectors' lifetimes) and method, or unavailable with the reason; and
    the disjoint windows ``[t0, t1, joules]`` behind each figure."""
    lifetimes = [lt for lt in (_lifetime(step) for step in steps) if lt is not None]
    node_s = _union_length(lifetimes)
    per_step = [_counter_points(step) for step in sorted(steps, key=_node_start)]
    out: dict[str, Any] = {}
    windows: dict[str, list[list[float]]] = {}
    for key in dict.fromkeys(k for points in per_step for k in points):
        found = [points.get(key) for points in per_step]
        series = [p for p in found if isinstance(p, list) and len(p) >= 2]
        wins, prorated = energy_windows(series)
        window_s = sum(b - a for a, b, _ in wins)
        if window_s <= 0:
            reasons = [p for p in found if isinstance(p, str)]
            why = reasons[0] if reasons else "fewer than two counter readings"
            out[key] = {
                "status": UNAVAILABLE,
                "reason": "the counter readings span no time" if series else why,
            }
            continue
        entry = {
            "energy_j": round(sum(e for _, _, e in wins), 3),
            "window_s": round(window_s, 3),
            "method": "derived" if prorated else "counter",
            "coverage": round(min(window_s / node_s, 1.0), 4) if node_s > 0 else None,
            "status": "measured",
        }
        if len(steps) > 1:
            entry["steps"] = len(series)
            if prorated:
                entry["rule"] = COMBINE_RULE
        out[key] = entry
        windows[key] = [list(w) for w in wins]
    return out, windows


def region_spans(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spans of one regions file in Unix time: ``name``, ``start_t``, ``dur_s``, ``depth``, ``pid``."""
    anchor: dict[str, Any] | None = None
    spans = []
    for rec in records:
        if rec.get("type") == "anchor":
            anchor = rec
        elif rec.get("type") == "regions" and anchor is not None:
            for name, start_ns, dur_ns, depth in rec["spans"]:
                spans.append(
                    {
                        "name": name,
                        "start_t": anchor["t"] + start_ns / 1e9,
                        "dur_s": dur_ns / 1e9,
                        "depth": depth,
                        "pid": anchor["pid"],
                    }
                )
    return spans


def node_name(node: dict[str, Any], path: Path) -> str:
    """The node a node file describes: its start record's, else the file name's without the step."""
    return node["start"].get("node") or node_of_file(path)


def read_nodes(profile_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Per node, its collectors' files (``node-NAME.jsonl``, or one ``node-NAME.step-S.jsonl`` per job step)
    merged by :func:`merge_node_steps`."""
    steps: dict[str, list[dict[str, Any]]] = {}
    for path in node_files(profile_dir):
        node = node_series(read_records(path))
        steps.setdefault(node_name(node, path), []).append(node)
    return {name: merge_node_steps(found) for name, found in steps.items()}
