"""Metrics from inside the job: ``hpcx.runtime.log(step, loss=..., lr=...)`` appends one record per call.

Records go to ``$HPCX_RUN_DIR/metrics/rank-NNNNN.jsonl`` (one file per rank, append-only, flushed per line,
fsynced every few seconds), which `hpcx report` and `hpcx compare` read. A sweep's task
(``$HPCX_TASK_ID`` set) writes under ``metrics/task-NNNNN/`` instead, as its profile records go under
``profile/task-NNNNN/``: the tasks share the run directory, and their metrics must not mix.

A job that declares its length (``log(step, total_steps=N, ...)`` or ``progress(N)``) carries ``total_steps`` on
every later record of the process, so that `hpcx status`, which reads only the files' tails, always sees it.
``python -m hpcx.run`` keeps a :class:`Heartbeat` beside each rank's records (``heartbeat-rank-NNNNN``, hpcx.rundir.layout), rewritten
every ``HPCX_HEARTBEAT_S`` seconds (30 by default) whatever the program logs: a running job whose heartbeat
is three intervals old is stalled.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpcx.errors import RuntimeFailure
from hpcx.fsutil import atomic_write
from hpcx.rundir.layout import rank_file
from hpcx.rundir.process import ProcessRecords, metrics_dir_from_env
from hpcx.runtime.rankenv import RankEnv, detect

SYNC_EVERY_S = 5.0
HEARTBEAT_EVERY_S = 30.0  # HPCX_HEARTBEAT_S overrides it


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


# The total this process declared (log(total_steps=N) or progress(N)): empty until it does.
_declared: dict[str, int] = {}


def _declare(total_steps: Any) -> None:
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:
        raise RuntimeFailure(
            f"total_steps={total_steps!r} is not a positive whole number", hint="e.g. total_steps=10000"
        )
    _declared["total_steps"] = total_steps


def progress(total_steps: int) -> None:
    """Declare how many steps this job will run (its status then shows an ETA); every later record of this
    process carries it. Outside an hpcx run, as ``log``, it writes nothing."""
    _declare(total_steps)
    if _records.writer() is None:
        return
    launched = detect()
    _records.write(
        {
            "type": "progress",
            "t": time.time(),
            "rank": process_rank(launched),
            "attempt": launched.attempt,
            **_declared,
        }
    )


def log(step: int, total_steps: int | None = None, **metrics: Any) -> None:
    """Record ``metrics`` (numbers; tensors of one element are fine) for training step ``step`` on this rank;
    ``total_steps`` declares the job's length, as ``progress`` does."""
    if total_steps is not None:
        _declare(total_steps)
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
            **_declared,
            **_tune_trial(),
        }
    )
    _records.sync(every_s=SYNC_EVERY_S)


def _tune_trial() -> dict[str, int]:
    """``{"trial": N}`` in a tuning study's trial (HPCX_TUNE_TRIAL, set by hpcx.tune's worker): a worker runs
    one trial after another into the same metrics file, and its records say whose they are."""
    value = os.environ.get("HPCX_TUNE_TRIAL", "")
    return {"trial": int(value)} if value.isdigit() else {}


def heartbeat_interval_s(env: Mapping[str, str] | None = None) -> float:
    """Seconds between heartbeats: HPCX_HEARTBEAT_S when it is a positive number, else HEARTBEAT_EVERY_S."""
    text = (os.environ if env is None else env).get("HPCX_HEARTBEAT_S", "")
    try:
        value = float(text)
    except ValueError:
        return HEARTBEAT_EVERY_S
    return value if math.isfinite(value) and value > 0 else HEARTBEAT_EVERY_S


class Heartbeat:
    """A thread that rewrites ``path`` (atomically: a reader opens it once and sees a whole record) every
    ``interval_s`` seconds with the time, the interval and the attempt. It never fails the job: the first write
    error is shown once on stderr, later ones are ignored (the file system may come back)."""

    def __init__(self, path: Path, interval_s: float, rank: int, attempt: int) -> None:
        self.path, self.interval_s = path, interval_s
        self._fields = {"rank": rank, "attempt": attempt, "interval_s": interval_s}
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="hpcx-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def beat(self) -> None:
        """Write one heartbeat now."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps({"t": time.time(), **self._fields}) + "\n")
        except OSError as exc:
            if not self._warned:
                self._warned = True
                print(
                    f"hpcx.run: heartbeat {self.path} not written ({exc}); the job goes on", file=sys.stderr
                )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(self.interval_s)
