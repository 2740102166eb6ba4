"""A run's learning curves as the dashboard refreshes them: only the bytes a metrics file gained since the last
refresh are read.

The page keeps a *cursor*: for each metrics file it has read, the byte offset it read up to (always the end of a
whole line). A refresh stats each file of the run and reads a file only when it is longer than its offset, from
the offset on; a file that did not grow costs one ``stat``. Points come back as ``[step, value]`` pairs in file
order; a requeued attempt logs again the steps after its checkpoint, and the page keeps the later value of a step
(the rule of :mod:`hpcx.runs.metric_points`). A file that got shorter than its offset was replaced: it is read
again from the start, and the answer says so (``reset``) so the page drops what it had.

Rank 0's file is read for a run and for each task of a sweep (the file the report's curves use). The server is
stateless: two pages, or a page reloaded, each carry their own cursor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hpcx.rundir.layout import metrics_dir, rank_file, task_dirs
from hpcx.runs.metric_points import RECORD_KEYS, is_step, logged_number

FIRST_READ_BYTES = 64 * 2**20  # at most this much of one file per refresh; the rest comes with the next one
MAX_TASKS = 64  # tasks of a sweep one refresh reads at most


def files_of(run_dir: Path, tasks: Iterable[int] | None) -> dict[str, Path]:
    """The metrics files a refresh reads, keyed as the cursor names them: ``rank-00000.jsonl`` for a run,
    ``task-N/rank-00000.jsonl`` for task N of a sweep (``tasks``: those the page shows; None: a run's own)."""
    if tasks is None:
        return {"": rank_file(metrics_dir(run_dir), 0)}
    return {str(t): rank_file(metrics_dir(run_dir, t), 0) for t in sorted(set(tasks))[:MAX_TASKS]}


def known_tasks(run_dir: Path) -> list[int]:
    """The tasks that have logged anything (one listing of ``metrics/``)."""
    return sorted(task_dirs(metrics_dir(run_dir)))


def refresh(files: Mapping[str, Path], cursor: Mapping[str, Any]) -> dict[str, Any]:
    """New points of each file since ``cursor`` (key -> offset; a missing key reads from the start):
    ``{"cursor": {key: offset}, "series": {key: {metric: [[step, value], ...]}}, "reset": [keys]}``."""
    out: dict[str, Any] = {"cursor": {}, "series": {}, "reset": []}
    for key, path in files.items():
        offset = _offset(cursor.get(key))
        try:
            size = os.stat(path).st_size
        except OSError:  # not written yet
            out["cursor"][key] = 0
            continue
        if size < offset:
            offset = 0
            out["reset"].append(key)
        data = _read(path, offset, size) if size > offset else b""
        whole = data[: data.rfind(b"\n") + 1]  # a torn last line waits for the next refresh
        out["cursor"][key] = offset + len(whole)
        points = points_of(_records(whole))
        if points:
            out["series"][key] = points
    return out


def _offset(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _read(path: Path, offset: int, size: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(min(size - offset, FIRST_READ_BYTES))
    except OSError:
        return b""


def _records(data: bytes) -> list[dict[str, Any]]:
    """The JSON objects among the whole lines in ``data`` (one parse when every line is whole and valid)."""
    lines = [line for line in data.split(b"\n") if line.strip()]
    if not lines:
        return []
    try:
        values = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        values = [_one(line) for line in lines]
    return [v for v in values if isinstance(v, dict)]


def _one(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def points_of(records: Iterable[dict[str, Any]]) -> dict[str, list[list[float]]]:
    """Each metric's ``[step, value]`` points in record order (metric records with a whole step; values that
    are not finite numbers, sent as JSON, would break the page: left out)."""
    series: dict[str, list[list[float]]] = {}
    for record in records:
        if record.get("type") != "metric" or not is_step(record.get("step")):
            continue
        for name, value in record.items():
            if name in RECORD_KEYS:
                continue
            kind = type(value)  # what hpcx.runtime.log writes, first: a float or an int
            number = value if kind is float else float(value) if kind is int else logged_number(value)
            if number is not None and number - number == 0:  # finite
                series.setdefault(name, []).append([record["step"], number])
    return series
