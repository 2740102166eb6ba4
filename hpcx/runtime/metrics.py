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
from hpcx.rundir.layout import rank_file
from hpcx.rundir.process import ProcessRecords, metrics_dir_from_env
from hpcx.runtime.rankenv import RankEnv, detect

SYNC_EVERY_S = 5.0


def process_rank(launched: RankEnv | None = None) -> int:
    """This process's own global rank, as its records name it: its launcher's (a torchrun worker's RANK, not
    the node index that ``hpcx.run`` above the torchrun agent saw and passed down as HPCX_RANK); HPCX_RANK
    only where no launcher left a trace (``hpcx.run`` run by hand)."""
    launched = launched or detect()
    explicit = os.environ.get("HPCX_RANK")
    if launched.launcher == "none" and explicit is not None and explicit.isdigit():
        return int(explicit)
    return launched.rank


def _metrics_file() -> Path | None:
    directory = metrics_dir_from_env()
    return None if directory is None else rank_file(directory, process_rank())


# Outside an hpcx run there is no file: logging is a no-op, so scripts run unchanged by hand. A file that
# cannot be written is the job's error, as before (quiet=False).
_records = ProcessRecords(_metrics_file, quiet=False)


def log(step: int, **metrics: Any) -> None:
    """Record ``metrics`` (numbers; tensors of one element are fine) for training step ``step`` on this rank."""
    if _records.writer() is None:
        return
    values = {}
    for name, value in metrics.items():
        number = value.item() if hasattr(value, "item") else value
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            raise RuntimeFailure(
                f"metric {name}={value!r} is not a number", hint="log numbers, e.g. loss=loss.item()"
            )
        values[name] = number if math.isfinite(number) else str(number)
    launched = detect()
    _records.write(
        {
            "type": "metric",
            "t": time.time(),
            "rank": process_rank(launched),
            "attempt": launched.attempt,
            "step": int(step),
            **values,
        }
    )
    _records.sync(every_s=SYNC_EVERY_S)
