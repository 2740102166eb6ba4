"""What a running job is doing, read from the tails of its own files (DESIGN.md: live state is read, never pushed).

Per task (or per run, for a single job) this opens at most two files, both named, never searched for: rank 0's
metrics file (``metrics/[task-NNNNN/]rank-00000.jsonl``), of which only the last ``TAIL_BYTES`` are read (a
seek from the end; the partial first line and a torn last line are skipped), and rank 0's heartbeat beside it,
which ``python -m hpcx.run`` rewrites every few seconds. So a 1,000-task sweep costs 2,000 small reads, however
long its tasks have been logging.

From the tail: the last step, the last value of each metric, the steps per second over the latest attempt's
recent records, the declared ``total_steps`` and the ETA, the attempt and the step a requeued attempt resumed
from ("unknown" when its first record is before the tail). From the heartbeat: its age, and ``stalled`` for a
RUNNING job whose heartbeat is older than ``STALLED_AFTER`` intervals.

The *main* metric of a task is ``loss`` when the tail holds one, else the first metric name of the tail's first
record (the first one the job logged, as long as it logs the same names each step). The best task of a sweep is
the one with the lowest main metric, or the highest when its name says higher is better (it contains one of
``HIGHER_IS_BETTER``: acc, accuracy, auc, f1, ...).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.rundir.layout import heartbeat_file, metrics_dir, rank_file
from hpcx.runs.metric_points import RECORD_KEYS

TAIL_BYTES = 8 * 1024  # the end of a metrics file that is read: about 60 records of a few metrics
HEARTBEAT_BYTES = 4096  # a heartbeat is one short line
RATE_RECORDS = 20  # the steps per second are measured over this many of the latest records
STALLED_AFTER = 3  # heartbeat intervals without one before a running job is called stalled
# A running job that logs, whose heartbeat is young (hpcx.run lives) but whose program logged nothing for this many
# of its own usual intervals between records (and at least STALLED_AFTER heartbeat intervals): hung in a
# collective, waiting on a dead data loader
QUIET_AFTER = 20
MAIN_METRIC = "loss"  # the main metric wherever it is logged
HIGHER_IS_BETTER = ("acc", "auc", "f1", "precision", "recall", "reward", "score", "iou", "bleu")


@dataclass(frozen=True)
class Tail:
    """The whole records at the end of a file: ``from_start`` when the read reached the file's first byte,
    ``bytes_read`` what it cost."""

    records: list[dict[str, Any]]
    from_start: bool
    bytes_read: int


def read_tail(path: Path, max_bytes: int = TAIL_BYTES) -> Tail | None:
    """The records in the last ``max_bytes`` of ``path`` (one open, one seek, one read); None when it cannot
    be opened. A line cut by the start of the read, a torn last line and a line that is not a JSON object are
    skipped."""
    try:
        fh = open(path, "rb")  # closed by the with below
    except OSError:
        return None
    with fh:
        size = fh.seek(0, os.SEEK_END)
        start = max(0, size - max_bytes)
        fh.seek(start)
        data = fh.read(size - start)
    lines = data.split(b"\n")[:-1]  # the last piece is b"" after a whole line, else a torn line
    if start > 0 and lines:
        lines = lines[1:]  # began mid-line (or at a line start: one whole record less, never a wrong one)
    return Tail(_records([line for line in lines if line.strip()]), start == 0, len(data))


def _records(lines: list[bytes]) -> list[dict[str, Any]]:
    """The JSON objects among ``lines``: parsed in one call when every line is whole (the usual case, several
    times faster than a call per line), else line by line, skipping what is not an object."""
    try:
        values = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        values = [_record(line) for line in lines]
    return [v for v in values if isinstance(v, dict)]


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The heartbeat record at ``path`` (one open); None when there is none or it is not a record."""
    try:
        with open(path, "rb") as fh:
            record = _record(fh.read(HEARTBEAT_BYTES).strip())
    except OSError:
        return None
    return record if record is not None and isinstance(record.get("t"), (int, float)) else None


def task_live(
    run_dir: Path, task: int | None, state: str | None, now: float | None = None, *, heartbeat: bool = True
) -> dict[str, Any] | None:
    """The live state of a run (``task`` None) or of one task: :func:`live_state` of rank 0's metrics tail
    and heartbeat; None when neither exists yet. ``heartbeat=False`` opens only the metrics file."""
    directory = metrics_dir(run_dir, task)
    tail = read_tail(rank_file(directory, 0))
    beat = read_heartbeat(heartbeat_file(directory, 0)) if heartbeat else None
    if tail is None and beat is None:
        return None
    return live_state(tail, beat, state, time.time() if now is None else now)


def live_state(
    tail: Tail | None, beat: Mapping[str, Any] | None, state: str | None, now: float
) -> dict[str, Any]:
    """The live fields (docs/user.md, "Live status") from a metrics ``tail`` and a heartbeat record ``beat``;
    ``state`` is the scheduler's (only a RUNNING job can be stalled)."""
    records = tail.records if tail is not None else []
    metrics = [r for r in records if r.get("type") == "metric" and isinstance(r.get("step"), int)]
    attempt = _latest_attempt(records, beat)
    current = [r for r in metrics if r.get("attempt", 0) == attempt]
    last = metrics[-1] if metrics else None
    values = _last_values(metrics)
    main = main_metric(metrics)
    total = _total_steps(records)
    rate = steps_per_s(current[-RATE_RECORDS:])
    step = last["step"] if last else None
    return {
        "step": step,
        "total_steps": total,
        "metrics": values,
        "main_metric": main,
        "main_value": values.get(main) if main else None,
        "steps_per_s": None if rate is None else round(rate, 4),
        "eta_s": _rounded(eta_s(step, total, rate)) if state in (None, "RUNNING") else None,
        "last_log_age_s": _age(last.get("t") if last else None, now),
        "attempt": attempt,
        "resumed_from": resumed_from(records, attempt, tail.from_start if tail else False),
        **_stall(heartbeat_fields(beat, state, now), current, state, now),
    }


def _stall(
    fields: dict[str, Any], current: list[dict[str, Any]], state: str | None, now: float
) -> dict[str, Any]:
    """``stalled_reason``: "no heartbeat" (its processes are stopped or its node is gone), "no new step" (the
    program stopped logging for QUIET_AFTER of its usual intervals while hpcx.run beside it lives), else None."""
    if fields["stalled"]:
        return {**fields, "stalled_reason": "no heartbeat"}
    timed = [r["t"] for r in current if isinstance(r.get("t"), (int, float))]
    usual = (timed[-1] - timed[0]) / (len(timed) - 1) if len(timed) >= 2 else None
    floor = STALLED_AFTER * (fields["heartbeat_interval_s"] or 0.0)
    quiet = (
        state == "RUNNING"
        and usual is not None
        and fields["heartbeat_age_s"] is not None
        and now - timed[-1] > max(QUIET_AFTER * usual, floor)
    )
    return {**fields, "stalled": quiet, "stalled_reason": "no new step" if quiet else None}


def _latest_attempt(records: list[dict[str, Any]], beat: Mapping[str, Any] | None) -> int | None:
    attempts = [r["attempt"] for r in records if isinstance(r.get("attempt"), int)]
    if beat is not None and isinstance(beat.get("attempt"), int):
        attempts.append(beat["attempt"])
    return max(attempts) if attempts else None


def _last_values(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Each metric's last value in the tail (the last record's names first). An earlier record is looked into
    only when it names a metric the later ones do not (one set comparison per record)."""
    values: dict[str, Any] = {}
    seen: set[str] = set()
    for record in reversed(metrics):
        if record.keys() <= seen:
            continue
        for name, value in record.items():
            if name not in values and name not in RECORD_KEYS:
                values[name] = value
        seen |= record.keys()
    return values


def main_metric(metrics: list[dict[str, Any]]) -> str | None:
    """``loss`` when logged, else the first metric name of the first record (see the module's docstring)."""
    if any(MAIN_METRIC in r for r in metrics):
        return MAIN_METRIC
    for record in metrics:
        for name in record:
            if name not in RECORD_KEYS:
                return name
    return None


def _total_steps(records: list[dict[str, Any]]) -> int | None:
    for record in reversed(records):
        total = record.get("total_steps")
        if isinstance(total, int) and not isinstance(total, bool) and total > 0:
            return total
    return None


def steps_per_s(records: list[dict[str, Any]]) -> float | None:
    """Steps per second from the first to the last of ``records`` (one attempt's); None with fewer than two
    records or no time between them."""
    timed = [r for r in records if isinstance(r.get("t"), (int, float))]
    if len(timed) < 2:
        return None
    seconds = timed[-1]["t"] - timed[0]["t"]
    steps = timed[-1]["step"] - timed[0]["step"]
    return steps / seconds if seconds > 0 and steps >= 0 else None


def eta_s(step: int | None, total: int | None, rate: float | None) -> float | None:
    """Seconds until ``total`` at ``rate`` steps per second from ``step``; None without all three."""
    if step is None or total is None or not rate:
        return None
    return max(0.0, (total - step) / rate)


def resumed_from(records: list[dict[str, Any]], attempt: int | None, from_start: bool) -> int | str | None:
    """The first step the latest (requeued) ``attempt`` logged: None for a first attempt (0) and for one that
    has logged nothing yet (the tail is the file's end: a record of it would be there); "unknown" when the tail
    does not reach that attempt's first record (no earlier attempt's record precedes it and the read did not
    start at the file's beginning)."""
    if not attempt:
        return None
    metrics = [r for r in records if r.get("type") == "metric" and isinstance(r.get("step"), int)]
    first = next((n for n, r in enumerate(metrics) if r.get("attempt") == attempt), None)
    if first is None:
        return None
    reached = from_start or any(r.get("attempt", 0) < attempt for r in metrics[:first])
    return metrics[first]["step"] if reached else "unknown"


def heartbeat_fields(beat: Mapping[str, Any] | None, state: str | None, now: float) -> dict[str, Any]:
    """The heartbeat's age and interval, and whether a RUNNING job is stalled (no heartbeat for
    STALLED_AFTER intervals)."""
    if beat is None:
        return {"heartbeat_age_s": None, "heartbeat_interval_s": None, "stalled": False}
    age = _age(beat.get("t"), now)
    interval = beat.get("interval_s")
    interval = float(interval) if isinstance(interval, (int, float)) and interval > 0 else None
    stalled = (
        state == "RUNNING" and age is not None and interval is not None and age > STALLED_AFTER * interval
    )
    return {"heartbeat_age_s": age, "heartbeat_interval_s": interval, "stalled": stalled}


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _age(t: Any, now: float) -> float | None:
    if not isinstance(t, (int, float)) or not math.isfinite(t):
        return None
    return round(max(0.0, now - t), 1)


def higher_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is better: its name contains one of HIGHER_IS_BETTER (accuracy, f1, ...)."""
    name = metric.lower()
    return any(word in name for word in HIGHER_IS_BETTER)


def best_task(lives: Mapping[int, Mapping[str, Any] | None]) -> int | None:
    """The task whose main metric is best so far (the first task's main metric decides which metric and which
    direction; tasks without a number for it are left out); None when no task has one."""
    metric = next((live["main_metric"] for live in lives.values() if live and live["main_metric"]), None)
    if metric is None:
        return None
    numbers = {task: _number(live["metrics"].get(metric)) for task, live in lives.items() if live}
    scored = {task: value for task, value in numbers.items() if value is not None}
    if not scored:
        return None
    sign = -1.0 if higher_is_better(metric) else 1.0
    return min(scored, key=lambda task: (sign * scored[task], task))  # a tie: the lower task id


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def sweep_live(lives: Mapping[int, dict[str, Any] | None]) -> dict[str, Any] | None:
    """A sweep's live fields: its best task's (with ``best_task``), and the tasks that are stalled."""
    best = best_task(lives)
    stalled = sorted(task for task, live in lives.items() if live and live["stalled"])
    if best is None and not stalled:
        return None
    shown = dict(lives[best] or {}) if best is not None else {}
    return {**shown, "best_task": best, "stalled_tasks": stalled}


def tasks_live(
    run_dir: Path, states: Mapping[int, str], now: float | None = None, *, heartbeat: bool = True
) -> dict[int, dict[str, Any] | None]:
    """Each task's live state, for the tasks that have started (PENDING ones have written nothing)."""
    now = time.time() if now is None else now
    return {
        task: task_live(run_dir, task, state, now, heartbeat=heartbeat)
        for task, state in states.items()
        if state not in ("PENDING", "UNSUBMITTED")
    }
