"""The written report: compare.json, the plots, compare.md and compare.html under --out.

With the runs given, the plots include each group's learning curve (curves.{svg,pdf}): the mean over the
group's replicates of rank 0's logged metric at each step, with Student's t interval over them (the same
``t`` interval as :func:`hpcx.compare.stats.bootstrap_ci`, at the comparison's level) where two or more
replicates logged that step. The metric is the compared one when it is logged, else the main metric
(:func:`hpcx.runs.live.main_metric`). Each replicate's curve keeps, per step, its latest attempt's value
(:mod:`hpcx.reports.curves`); a group's curve is thinned to ``MAX_CURVE_POINTS`` steps, first and last kept."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpcx.compare import stats
from hpcx.compare.html_page import render_html
from hpcx.compare.markdown import render_markdown
from hpcx.compare.plots import plot
from hpcx.reports.curves import MAX_CURVE_POINTS, Points, downsample, logged_curves
from hpcx.runs import Run


def write_outputs(doc: dict[str, Any], out_dir: Path, runs: Sequence[Run] = ()) -> list[Path]:
    """compare.json, the plots (groups and differences, and with ``runs`` the groups' curves; SVG and PDF),
    compare.md and compare.html (one self-contained file, the SVG plots inlined) under ``out_dir``."""
    from hpcx.fsutil import atomic_write, atomic_write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_json(out_dir / "compare.json", doc)]
    curves = group_curves(doc, runs)
    plots = plot(doc, out_dir, curves)
    written += plots
    written.append(atomic_write(out_dir / "compare.md", render_markdown(doc, [p.name for p in plots])))
    svgs = {p.stem: p.read_text() for p in plots if p.suffix == ".svg"}
    written.append(atomic_write(out_dir / "compare.html", render_html(doc, svgs, curves)))
    return written


def group_curves(doc: dict[str, Any], runs: Sequence[Run]) -> dict[str, Any] | None:
    """``{"metric", "level", "groups": [{"name", "replicates", "step", "mean", "low", "high", "n"}]}``: each
    group's curve over its replicates (the module's docstring); None when no replicate logged the metric."""
    by_id = {run.id: run for run in runs}
    logged = {
        (r["run_id"], r["task"]): logged_curves(by_id[r["run_id"]].dir, r["task"])
        for g in doc["groups"]
        for r in g["replicates"]
        if r["run_id"] in by_id
    }
    metric = _curve_metric(doc, logged.values())
    if metric is None:
        return None
    level = doc["settings"]["ci"]["level"]
    groups = []
    for g in doc["groups"]:
        series = [logged[key][1].get(metric, []) for key in _keys(g) if key in logged]
        if any(series):
            groups.append({"name": g["name"], "replicates": len(series), **_mean_curve(series, level)})
    return {"metric": metric, "level": level, "groups": groups} if groups else None


def _keys(group: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(r["run_id"], r["task"]) for r in group["replicates"]]


def _curve_metric(doc: dict[str, Any], logged: Any) -> str | None:
    """The compared metric when it is a logged one, else the first main metric a replicate logged."""
    if doc["metric"]["source"] == "logged":
        return str(doc["metric"]["name"])
    return next((main for main, _ in logged if main is not None), None)


def _mean_curve(series: Sequence[Points], level: float) -> dict[str, list[Any]]:
    """At each step some replicate logged (thinned): the mean over those that did, the t interval (None with
    fewer than two or a non-finite bound) and how many there were."""
    values: dict[int, list[float]] = {}
    for points in series:
        for step, value in points:
            values.setdefault(step, []).append(value)
    steps = downsample(sorted(values), MAX_CURVE_POINTS)
    out: dict[str, list[Any]] = {"step": steps, "mean": [], "low": [], "high": [], "n": []}
    for step in steps:
        x = values[step]
        ci = stats.bootstrap_ci([x], "mean", level=level, method="t")
        out["mean"].append(stats.mean(x))
        out["low"].append(ci.low if math.isfinite(ci.low) else None)
        out["high"].append(ci.high if math.isfinite(ci.high) else None)
        out["n"].append(len(x))
    return out
