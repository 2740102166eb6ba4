"""The per-rank profile record format, shared by the writer (compute side) and the report (login side).

One JSON object per line in ``profile/rank-NNNNN.jsonl``; the file is only ever appended to. Each line has
``v`` (format version), ``type`` (start | sample | end), ``t`` (Unix time, s) and ``rank``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1


def rank_file(profile_dir: str | os.PathLike[str], rank: int) -> Path:
    return Path(profile_dir) / f"rank-{rank:05d}.jsonl"


class RecordWriter:
    """Appends records for one rank; each line is written whole and flushed, so readers see whole lines."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps({"v": FORMAT_VERSION, **record}, separators=(",", ":")) + "\n")
        self._fh.flush()

    def sync(self) -> None:
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
            if isinstance(record, dict) and record.get("v") == FORMAT_VERSION:
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
