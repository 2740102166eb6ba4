"""Replicates and their values: a sweep's tasks or single runs, their parameters, and the one number each
gives for a metric (logged by the job, or read from its report), with the file and field it was read from."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.compare import stats
from hpcx.errors import UsageError
from hpcx.rundir.layout import PROFILE_DIR, TASK_TABLE, metrics_dir, profile_dir, rank_file, report_file
from hpcx.rundir.tasks import read_tasks
from hpcx.runs import Run
from hpcx.runs.metric_points import RECORD_KEYS

REPLICATE_KEYS = ("seed", "repeat", "rep")
REDUCTIONS = ("last", "min", "max", "mean")
# Numbers a report holds per run: the name compare takes -> how to read it from a report summary.
REPORT_METRICS = ("wall_s", "cpu_s", "cpu_efficiency", "peak_rss_mb", "energy_j", "energy_kwh")
# Where each report number is read (the replicate's "source" names it, so a value can be checked by hand).
_ENERGY_FIELD = "nodes[].energy[].energy_j (measured windows, summed)"
REPORT_FIELDS = {
    "wall_s": "summary.wall_s",
    "cpu_s": "summary.cpu_s",
    "cpu_efficiency": "summary.cpu_efficiency",
    "peak_rss_mb": "summary.peak_rss_mb_max",
    "energy_j": _ENERGY_FIELD,
    "energy_kwh": f"{_ENERGY_FIELD} / 3.6e6",
}
# Units for plot labels: the report's numbers, and logged names with a unit suffix (step_time_s, energy_j).
REPORT_UNITS = {
    "wall_s": "s",
    "cpu_s": "s",
    "cpu_efficiency": "CPU used / allocated",
    "peak_rss_mb": "MB",
    "energy_j": "J",
    "energy_kwh": "kWh",
}
SUFFIX_UNITS = {
    "_s": "s",
    "_ms": "ms",
    "_us": "us",
    "_j": "J",
    "_kj": "kJ",
    "_kwh": "kWh",
    "_w": "W",
    "_mb": "MB",
    "_gb": "GB",
    "_mib": "MiB",
    "_gib": "GiB",
    "_gbps": "GB/s",
}
# Percentile and BCa intervals of the mean cover like z * s * sqrt((n-1)/n) / sqrt(n): P(|T_(n-1)| < that).


@dataclass(frozen=True)
class Replicate:
    """One measurement: a single run, or one task of a sweep run."""

    run: Run
    task: int | None
    params: dict[str, Any]
    seed: Any

    @property
    def label(self) -> str:
        return self.run.id if self.task is None else f"{self.run.id}/task-{self.task}"


@dataclass(frozen=True)
class Options:
    """How to compare: what the command line chose, with the defaults docs/compare.md explains."""

    metric: str
    reduce: str = "last"
    by: tuple[str, ...] | None = None
    replicate_keys: tuple[str, ...] = REPLICATE_KEYS
    baseline: str | None = None
    correction: str = "holm"
    statistic: str = "mean"
    ci_method: str = "auto"  # t for the mean when a group has < 10 replicates, else percentile
    level: float = 0.95
    resamples: int = 9999
    seed: int = 0
    detect: float | None = None
    alpha: float = 0.05
    power: float = 0.8
    skip_missing: bool = False
    include_failed: bool = False


def replicates(run: Run, replicate_keys: Sequence[str] = REPLICATE_KEYS) -> list[Replicate]:
    """A sweep run's tasks (from tasks.jsonl), or the run itself with its manifest's variables."""
    table = run.dir / TASK_TABLE
    if table.exists():
        rows = read_tasks(table)
        return [
            Replicate(run, int(r["task"]), _without(r["params"], replicate_keys), r.get("seed")) for r in rows
        ]
    variables = dict(run.manifest.get("variables") or {})
    seed = next((variables[k] for k in replicate_keys if k in variables), None)
    return [Replicate(run, None, _without(variables, replicate_keys), seed)]


def _without(params: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in keys}


def metric_source(metric: str) -> tuple[str, str]:
    """("report" | "logged", name): ``report.X`` and the report's own names read the report, ``metric.X`` and
    every other name the job's logged metrics."""
    kind, dot, rest = metric.partition(".")
    if dot and kind in ("report", "metric"):
        return ("report" if kind == "report" else "logged"), rest
    return ("report" if metric in REPORT_METRICS else "logged"), metric


def metric_unit(metric: str) -> str | None:
    """The metric's unit where it is known: a report number's, or a logged name's unit suffix (``_s``...)."""
    source, name = metric_source(metric)
    if source == "report":
        return REPORT_UNITS.get(name)
    return next((unit for suffix, unit in SUFFIX_UNITS.items() if name.lower().endswith(suffix)), None)


def metrics_file(rep: Replicate) -> Path:
    """Rank 0's metrics file of the run, or of the sweep task."""
    return rank_file(metrics_dir(rep.run.dir, rep.task), 0)


def logged_values(rep: Replicate, name: str) -> tuple[list[float], set[str]]:
    """Rank 0's values of ``name`` in logging order, one per step (a step logged again after a resume keeps
    its latest value), and every metric name rank 0 logged (for the error when ``name`` is not among them)."""
    from hpcx.rundir.records import read_records

    path = metrics_file(rep)
    by_step: dict[Any, float] = {}
    seen: set[str] = set()
    if path.exists():
        for record in read_records(path):
            if record.get("type") != "metric":
                continue
            seen.update(set(record) - RECORD_KEYS)
            if name in record:
                by_step.pop(record.get("step"), None)  # re-inserted last: dict order is logging order
                by_step[record.get("step")] = float(record[name])
    return list(by_step.values()), seen


def reduce_values(values: Sequence[float], how: str) -> float:
    if how == "last":
        return values[-1]
    if how == "min":
        return min(values)
    if how == "max":
        return max(values)
    return stats.mean(values)


def report_summary(rep: Replicate) -> dict[str, Any]:
    """The report's summary of a run (report/report.json, or built from the profile records when missing) or
    of one sweep task (built from profile/task-NNNNN/), with ``energy_j`` summed over measured sources."""
    from hpcx.reports.build import build_report, summarize_nodes

    if rep.task is None:
        path = report_file(rep.run.dir)
        doc = json.loads(path.read_text()) if path.exists() else build_report(rep.run)
        summary = dict(doc.get("summary", {}))
        nodes = doc.get("nodes", [])
    else:
        profile = profile_dir(rep.run.dir, rep.task)
        summary, nodes = _task_summary(rep, profile), summarize_nodes(profile)
    energies = [
        e["energy_j"]
        for node in nodes
        for e in node.get("energy", {}).values()
        if e.get("status") == "measured" and e.get("energy_j") is not None
    ]
    summary["peak_rss_mb"] = summary.get("peak_rss_mb_max")
    summary["energy_j"] = math.fsum(energies) if energies else None
    summary["energy_kwh"] = summary["energy_j"] / 3.6e6 if energies else None
    return summary


def _task_summary(rep: Replicate, profile: Path) -> dict[str, Any]:
    """A sweep task's wall time, CPU time, efficiency and peak memory, as build_report sums a run's ranks."""
    from hpcx.reports.build import summarize_ranks

    ranks = summarize_ranks(profile)
    if not ranks:
        return {}
    cpus = int(rep.run.manifest.get("resources", {}).get("cpus_per_task", {}).get("value") or 1)
    wall, cpu = max(r["wall_s"] for r in ranks), math.fsum(r["cpu_s"] for r in ranks)
    efficiency = cpu / (len(ranks) * cpus * wall) if wall > 0 else None
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_efficiency": efficiency,
        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in ranks),
    }


def value_source(rep: Replicate, options: Options, count: int = 0) -> dict[str, Any]:
    """Where the replicate's value was read: ``file`` (relative to the run's directory), ``field`` in it, and
    ``how`` it became one number; what the replicate tables of compare.md and compare.html show."""
    source, name = metric_source(options.metric)
    if source == "logged":
        return {
            "file": _in_run(rep, metrics_file(rep)),
            "field": name,
            "how": f"{options.reduce} of {count} logged step(s)",
        }
    if rep.task is not None:
        return {
            "file": _in_run(rep, profile_dir(rep.run.dir, rep.task)) + "/",
            "field": name,
            "how": "the task's rank records, as hpcx report sums a run's",
        }
    if report_file(rep.run.dir).exists():
        return {
            "file": _in_run(rep, report_file(rep.run.dir)),
            "field": REPORT_FIELDS[name],
            "how": "as written by hpcx report",
        }
    return {
        "file": f"{PROFILE_DIR}/",
        "field": REPORT_FIELDS[name],
        "how": "report built from the profile records (no report/report.json)",
    }


def _in_run(rep: Replicate, path: Path) -> str:
    """``path`` relative to the replicate's run directory, with forward slashes."""
    return path.relative_to(rep.run.dir).as_posix()


def value_of(rep: Replicate, options: Options) -> tuple[float | None, str, dict[str, Any]]:
    """The replicate's number for the metric and where it was read, or None and why it has none."""
    source, name = metric_source(options.metric)
    if source == "report":
        if name not in REPORT_METRICS:
            return None, f"reports have no {name!r} (they have {', '.join(REPORT_METRICS)})", {}
        try:
            value = report_summary(rep).get(name)
        except UsageError as exc:
            return None, exc.message, {}
        if value is None:
            return None, f"its report has no {name}", {}
        return float(value), "", value_source(rep, options)
    values, seen = logged_values(rep, name)
    if not values:
        why = f"rank 0 logged {', '.join(sorted(seen))}" if seen else "no metrics logged by rank 0"
        return None, why, {}
    return reduce_values(values, options.reduce), "", value_source(rep, options, len(values))
