"""Learning curves from the job's logged metric records (``hpcx.runtime.log``): the report's ``curves`` section,
the terminal's sparkline of the main metric, and the per-step series `hpcx compare --out` averages over a group.

A requeued job's file holds several attempts, and a resumed attempt logs again the steps after its checkpoint:
each step keeps the value of the latest attempt that logged it (within one attempt, the later record). Values
that are not finite numbers (logged as the strings "nan", "inf") are left out of a curve. A long series is
thinned to at most ``MAX_CURVE_POINTS`` evenly spaced points, the first and the last kept, so report.json stays
small. The main metric is :func:`hpcx.runs.live.main_metric`'s (``loss`` when logged, else the first name).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hpcx.rundir.layout import metrics_dir, rank_file
from hpcx.runs import metric_points
from hpcx.runs.live import main_metric

MAX_CURVE_POINTS = 500  # per metric in report.json and per group in compare's plot
SPARK_WIDTH = 40  # characters of the terminal's sparkline
SPARK_BARS = "▁▂▃▄▅▆▇█"

Points = list[tuple[int, float]]


def metric_records(path: Path) -> list[dict[str, Any]]:
    """The metric records of one rank's file with an integer step, in file order; [] when it does not exist.
    A torn line is skipped (:func:`hpcx.rundir.records.read_records`)."""
    from hpcx.rundir.records import read_records

    if not path.is_file():
        return []
    return [
        r
        for r in read_records(path)
        if r.get("type") == "metric"
        and isinstance(r.get("step"), int)
        and not isinstance(r.get("step"), bool)
    ]


def latest_per_step(records: Iterable[dict[str, Any]]) -> dict[str, Points]:
    """Each metric name -> its (step, value) points in step order (hpcx.runs.metric_points: each step from the
    latest attempt that logged it), the values that are not finite left out."""
    series = {
        name: [(p.step, p.value) for p in points if math.isfinite(p.value)]
        for name, points in metric_points.latest_per_step(records).items()
    }
    return {name: points for name, points in series.items() if points}


def downsample(points: Sequence[Any], max_points: int = MAX_CURVE_POINTS) -> list[Any]:
    """At most ``max_points`` of ``points``, evenly spaced by index, the first and the last always kept."""
    n = len(points)
    if n <= max_points:
        return list(points)
    if max_points < 2:
        return [points[-1]]
    picks = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    return [points[i] for i in picks]


def curves_section(
    run_dir: Path, task: int | None, max_points: int = MAX_CURVE_POINTS
) -> dict[str, Any] | None:
    """The report's ``curves``: rank 0's logged metrics of the run (or of one array task) over steps, each
    thinned to ``max_points``; None when rank 0 logged no metric record there."""
    path = rank_file(metrics_dir(run_dir, task), 0)
    records = metric_records(path)
    if not records:
        return None
    series = latest_per_step(records)
    return {
        "file": path.relative_to(run_dir).as_posix(),
        "rank": 0,
        "main": main_metric(records),
        "attempts": sorted({r["attempt"] for r in records if isinstance(r.get("attempt"), int)}),
        "metrics": [_curve(name, points, max_points) for name, points in series.items()],
    }


def _curve(name: str, points: Points, max_points: int) -> dict[str, Any]:
    kept = downsample(points, max_points)
    return {
        "name": name,
        "steps": len(points),
        "step": [s for s, _ in kept],
        "value": [v for _, v in kept],
    }


def main_curve(curves: dict[str, Any] | None) -> dict[str, Any] | None:
    """The main metric's curve of a report's ``curves`` section, or None."""
    if not curves:
        return None
    return next((c for c in curves["metrics"] if c["name"] == curves["main"] and c["value"]), None)


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH) -> str:
    """``values`` as at most ``width`` block characters, each the mean of its share of the values, scaled from
    the lowest (▁) to the highest (█); a constant series is a flat line of ▁."""
    if not values:
        return ""
    n = min(width, len(values))
    bins = [values[i * len(values) // n : (i + 1) * len(values) // n] for i in range(n)]
    means = [sum(b) / len(b) for b in bins]
    low, high = min(means), max(means)
    if high <= low:
        return SPARK_BARS[0] * n
    top = len(SPARK_BARS) - 1
    return "".join(SPARK_BARS[round((m - low) / (high - low) * top)] for m in means)


def curve_line(curves: dict[str, Any] | None) -> str | None:
    """The terminal's line for the main metric: ``curve loss  ▇▅▃▂▁  2.31 -> 0.12 (steps 0-999, 1000 logged)``;
    None without one."""
    curve = main_curve(curves)
    if curve is None or curves is None:
        return None
    values, steps = curve["value"], curve["step"]
    return (
        f"curve {curves['main']}  {sparkline(values)}  {values[0]:.4g} -> {values[-1]:.4g} "
        f"(steps {steps[0]}-{steps[-1]}, {curve['steps']} logged)"
    )


def curve_caption(curves: dict[str, Any]) -> str:
    """What the page's curves show: the metrics, the file, the attempts and the thinning."""
    names = ", ".join(c["name"] for c in curves["metrics"])
    attempts = curves["attempts"]
    requeued = (
        f"; attempts {', '.join(map(str, attempts))}: each step's value from the latest that logged it"
        if len(attempts) > 1
        else ""
    )
    thinned = any(len(c["step"]) < c["steps"] for c in curves["metrics"])
    return f"{names} over steps, from {curves['file']}{requeued}" + (
        f"; long curves thinned to {MAX_CURVE_POINTS} points" if thinned else ""
    )


def logged_curves(run_dir: Path, task: int | None) -> tuple[str | None, dict[str, Points]]:
    """The main metric and every metric's whole curve (not thinned) of rank 0's file in a run (or a sweep
    task); (None, {}) without one. Reads the file once."""
    records = metric_records(rank_file(metrics_dir(run_dir, task), 0))
    return main_metric(records), latest_per_step(records)
