"""The records ``hpcx.runtime.log`` wrote, read as series: which keys are the record's own, a logged value as a
number, and each metric's points over steps.

A requeued job's file holds several attempts, and a resumed attempt logs again the steps after its checkpoint:
each step keeps the value of the latest attempt that logged it (within one attempt, the later record). The
report's curves, `hpcx compare`'s and `hpcx export`'s series all read them through :func:`latest_per_step`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RECORD_KEYS = frozenset({"v", "type", "t", "rank", "attempt", "step", "total_steps", "trial"})  # not metrics
NON_FINITE = frozenset({"nan", "inf", "-inf", "+inf"})  # how hpcx.runtime.log writes them


@dataclass(frozen=True)
class Point:
    """One logged value: the training step, the value and the wall time of the record that logged it."""

    step: int
    value: float
    wall_time: float


def logged_number(value: Any) -> float | None:
    """A logged value as a float (non-finite ones were written as strings), None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.lower() in NON_FINITE:
        return float(value)
    return None


def is_step(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def latest_per_step(records: Iterable[dict[str, Any]]) -> dict[str, list[Point]]:
    """Each metric name (in the order first logged) -> its points in step order, each step's from the latest
    attempt that logged it (the later record within an attempt). Records that are not metric records with a
    whole step are left out."""
    kept: dict[str, dict[int, tuple[int, Point]]] = {}
    for record in records:
        if record.get("type") != "metric" or not is_step(record.get("step")):
            continue
        attempt = record["attempt"] if is_step(record.get("attempt")) else 0
        t = record.get("t")
        wall = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else 0.0
        for name, value in record.items():
            number = None if name in RECORD_KEYS else logged_number(value)
            if number is None:
                continue
            steps = kept.setdefault(name, {})
            old = steps.get(record["step"])
            if old is None or attempt >= old[0]:
                steps[record["step"]] = (attempt, Point(record["step"], number, wall))
    return {name: [p for _, (_, p) in sorted(steps.items())] for name, steps in kept.items()}
