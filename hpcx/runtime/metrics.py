"""Metrics from inside the job: ``hpcx.runtime.log(step, loss=..., lr=...)`` appends one record per call.

Records go to ``$HPCX_RUN_DIR/metrics/rank-NNNNN.jsonl`` (one file per rank, append-only, flushed per line,
fsynced every few seconds), which `hpcx report` and `hpcx compare` read. A sweep's task
(``$HPCX_TASK_ID`` set) writes under ``metrics/task-NNNNN/`` instead, as its profile records go under
``profile/task-NNNNN/``: the tasks share the run directory, and their metrics must not mix.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from hpcx.errors import RuntimeFailure
from hpcx.rundir.records import RecordWriter, rank_file
from hpcx.runtime.rankenv import detect

SYNC_EVERY_S = 5.0
_writer: RecordWriter | None = None
_last_sync = 0.0


def _open() -> RecordWriter | None:
    global _writer
    if _writer is None:
        run_dir = os.environ.get("HPCX_RUN_DIR")
        if not run_dir:
            return None  # outside an hpcx run: logging is a no-op, so scripts run unchanged by hand
        base, task = Path(run_dir) / "metrics", os.environ.get("HPCX_TASK_ID")
        _writer = RecordWriter(rank_file(base / f"task-{int(task):05d}" if task else base, detect().rank))
    return _writer


def log(step: int, **metrics: Any) -> None:
    """Record ``metrics`` (numbers; tensors of one element are fine) for training step ``step`` on this rank."""
    global _last_sync
    writer = _open()
    if writer is None:
        return
    values = {}
    for name, value in metrics.items():
        number = value.item() if hasattr(value, "item") else value
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            raise RuntimeFailure(
                f"metric {name}={value!r} is not a number", hint="log numbers, e.g. loss=loss.item()"
            )
        values[name] = number if math.isfinite(number) else str(number)
    rank = detect()
    writer.write({"type": "metric", "t": time.time(), "rank": rank.rank, "attempt": rank.attempt, "step": int(step),
                  **values})  # fmt: skip
    if time.monotonic() - _last_sync > SYNC_EVERY_S:
        writer.sync()
        _last_sync = time.monotonic()
