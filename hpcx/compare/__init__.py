"""`hpcx compare`: runs (or a sweep's tasks) grouped by their parameters, seeds as replicates, one metric per
replicate, and the statistics of hpcx.compare.stats over the groups. Reads run directories only; prints or writes.

A replicate is one sweep task (its row of tasks.jsonl) or one single run (its manifest's ``--set`` variables).
Its parameters, minus the replicate keys (seed, repeat, rep), name its group. Its value is a metric logged by
the job (``hpcx.runtime.log``: rank 0's records, reduced to one number) or a number from its report.
docs/compare.md describes the document this module returns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hpcx.compare import stats
from hpcx.errors import UsageError
from hpcx.reports.terminal import count as _count
from hpcx.runs import Run

COMPARE_SCHEMA = "hpcx.compare/1"
REPLICATE_KEYS = ("seed", "repeat", "rep")
REDUCTIONS = ("last", "min", "max", "mean")
# Numbers a report holds per run: the name compare takes -> how to read it from a report summary.
REPORT_METRICS = ("wall_s", "cpu_s", "cpu_efficiency", "peak_rss_mb", "energy_j", "energy_kwh")
# Where each report number is read (the replicate's "source" names it, so a value can be checked by hand).
_ENERGY_FIELD = "nodes[].energy[].energy_j (measured windows, summed)"
REPORT_FIELDS = {"wall_s": "summary.wall_s", "cpu_s": "summary.cpu_s",
                 "cpu_efficiency": "summary.cpu_efficiency",
                 "peak_rss_mb": "summary.peak_rss_mb_max", "energy_j": _ENERGY_FIELD,
                 "energy_kwh": f"{_ENERGY_FIELD} / 3.6e6"}  # fmt: skip
# Units for plot labels: the report's numbers, and logged names with a unit suffix (step_time_s, energy_j).
REPORT_UNITS = {"wall_s": "s", "cpu_s": "s", "cpu_efficiency": "CPU used / allocated", "peak_rss_mb": "MB",
                "energy_j": "J", "energy_kwh": "kWh"}  # fmt: skip
SUFFIX_UNITS = {"_s": "s", "_ms": "ms", "_us": "us", "_j": "J", "_kj": "kJ", "_kwh": "kWh", "_w": "W",
                "_mb": "MB", "_gb": "GB", "_mib": "MiB", "_gib": "GiB", "_gbps": "GB/s"}  # fmt: skip
# Percentile and BCa intervals of the mean cover like z * s * sqrt((n-1)/n) / sqrt(n): P(|T_(n-1)| < that).
FEW_REPLICATES_NOTE = (
    "bootstrap intervals are too narrow with few replicates (n=5: about 85% coverage for a nominal 95%; "
    "n=20: 93%); --ci t is exact for normal data (docs/compare.md)"
)
_RECORD_KEYS = {"v", "type", "t", "rank", "attempt", "step"}


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


@dataclass
class Group:
    """Replicates with the same parameters: each with its value and where the value was read (``source``)."""

    name: str
    params: dict[str, Any]
    members: list[tuple[Replicate, float]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.members]


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


# --- replicates and their values ---------------------------------------------------------------------------


def replicates(run: Run, replicate_keys: Sequence[str] = REPLICATE_KEYS) -> list[Replicate]:
    """A sweep run's tasks (from tasks.jsonl), or the run itself with its manifest's variables."""
    table = run.dir / "tasks.jsonl"
    if table.exists():
        rows = [json.loads(line) for line in table.read_text().splitlines() if line.strip()]
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
    from hpcx.rundir.records import rank_file

    base = rep.run.dir / "metrics"
    return rank_file(base / f"task-{rep.task:05d}" if rep.task is not None else base, 0)


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
            seen.update(set(record) - _RECORD_KEYS)
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
        path = rep.run.dir / "report" / "report.json"
        doc = json.loads(path.read_text()) if path.exists() else build_report(rep.run)
        summary = dict(doc.get("summary", {}))
        nodes = doc.get("nodes", [])
    else:
        profile = rep.run.dir / "profile" / f"task-{rep.task:05d}"
        summary, nodes = _task_summary(rep, profile), summarize_nodes(profile)
    energies = [e["energy_j"] for node in nodes for e in node.get("energy", {}).values()
                if e.get("status") == "measured" and e.get("energy_j") is not None]  # fmt: skip
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
    return {"wall_s": wall, "cpu_s": cpu, "cpu_efficiency": efficiency,
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in ranks)}  # fmt: skip


def value_source(rep: Replicate, options: Options, count: int = 0) -> dict[str, Any]:
    """Where the replicate's value was read: ``file`` (relative to the run's directory), ``field`` in it, and
    ``how`` it became one number; what the replicate tables of compare.md and compare.html show."""
    source, name = metric_source(options.metric)
    if source == "logged":
        return {"file": metrics_file(rep).relative_to(rep.run.dir).as_posix(), "field": name,
                "how": f"{options.reduce} of {count} logged step(s)"}  # fmt: skip
    if rep.task is not None:
        return {"file": f"profile/task-{rep.task:05d}/", "field": name,
                "how": "the task's rank records, as hpcx report sums a run's"}  # fmt: skip
    if (rep.run.dir / "report" / "report.json").exists():
        return {
            "file": "report/report.json",
            "field": REPORT_FIELDS[name],
            "how": "as written by hpcx report",
        }
    return {"file": "profile/", "field": REPORT_FIELDS[name],
            "how": "report built from the profile records (no report/report.json)"}  # fmt: skip


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


# --- grouping ----------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- which replicates ran to completion --------------------------------------------------------------------


def replicate_states(run: Run, reps: Sequence[Replicate]) -> dict[int | None, str | None]:
    """Each replicate's final state (task id, None for a single run -> state): Slurm's for a sweep's tasks
    (one batched query over its arrays), else what the replicate's own profile records say (COMPLETED when
    every rank ended with 0, FAILED when one did not, UNFINISHED when one has no end record); None when
    neither knows (no Slurm job, never profiled)."""
    slurm: dict[int, str] = {}
    if run.job.get("chunks"):
        from hpcx.errors import HpcxError
        from hpcx.submit.sweep_submit import task_states

        try:
            slurm = task_states(run)
        except (HpcxError, OSError):
            slurm = {}  # no scheduler to ask here: the records decide
    out: dict[int | None, str | None] = {}
    for rep in reps:
        state = slurm.get(rep.task) if rep.task is not None else None
        out[rep.task] = state if state not in (None, "UNKNOWN") else _recorded_state(rep)
    return out


def _recorded_state(rep: Replicate) -> str | None:
    from hpcx.reports.build import _state, summarize_ranks

    profile = rep.run.dir / "profile"
    if rep.task is not None:
        profile = profile / f"task-{rep.task:05d}"
    ranks = summarize_ranks(profile, 1) if profile.is_dir() else []
    return _state(ranks, None)[0] if ranks else None


def _left_out_why(state: str) -> str:
    from hpcx.schedulers.base import ACTIVE_STATES

    return "still running or pending" if state in ACTIVE_STATES or state == "UNFINISHED" else state


def group_of(rep: Replicate, by: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    """The name and parameters of the group ``rep`` falls in."""
    params = {k: rep.params.get(k) for k in by} if by is not None else dict(rep.params)
    return ",".join(f"{k}={_fmt(v)}" for k, v in params.items()) or "all", params


def group_replicates(
    reps: Sequence[Replicate],
    values: Sequence[float],
    by: Sequence[str] | None,
    sources: Sequence[dict[str, Any]] | None = None,
) -> list[Group]:
    """Replicates with the same parameters (all of them, or those named in ``by``) form a group; groups keep
    the order their first replicate came in (the sweep's task order)."""
    groups: dict[str, Group] = {}
    for i, (rep, value) in enumerate(zip(reps, values)):
        name, params = group_of(rep, by)
        group = groups.setdefault(name, Group(name, params))
        group.members.append((rep, value))
        group.sources.append(dict(sources[i]) if sources is not None else {})
    return list(groups.values())


def find_baseline(groups: Sequence[Group], wanted: str) -> Group:
    """The group named ``wanted``, or the one group whose parameters include every ``k=v`` of it."""
    exact = [g for g in groups if g.name == wanted]
    if exact:
        return exact[0]
    pairs = dict(p.partition("=")[::2] for p in wanted.split(","))
    matching = [g for g in groups if all(k in g.params and _fmt(g.params[k]) == v for k, v in pairs.items())]
    if len(matching) == 1:
        return matching[0]
    shown = "; ".join(g.name for g in groups[:8])
    what = "matches no group" if not matching else f"matches {len(matching)} groups"
    raise UsageError(f"--baseline {wanted!r} {what}", hint=f"name one of the groups: {shown}")


# --- the comparison ----------------------------------------------------------------------------------------


def leave_out_unfinished(
    runs: Sequence[Run], reps: list[Replicate], options: Options
) -> tuple[list[Replicate], list[dict[str, Any]]]:
    """The replicates that count: those that completed, or whose state nobody knows (a run without Slurm or
    records); with ``include_failed`` every one. The others come back as ``left_out`` rows: group, run,
    task, state and why."""
    if options.include_failed:
        return reps, []
    states: dict[tuple[str, int | None], str | None] = {}
    for run in runs:
        mine = [r for r in reps if r.run is run]
        states.update({(run.id, task): s for task, s in replicate_states(run, mine).items()})
    kept, left_out = [], []
    for rep in reps:
        state = states.get((rep.run.id, rep.task))
        if state is None or state == "COMPLETED":
            kept.append(rep)
        else:
            left_out.append({"group": group_of(rep, options.by)[0], "run_id": rep.run.id, "task": rep.task,
                             "seed": rep.seed, "state": state, "why": _left_out_why(state)})  # fmt: skip
    return kept, left_out


def left_out_notes(left_out: Sequence[dict[str, Any]]) -> list[str]:
    """One note per group with replicates left out: how many, and why."""
    by_group: dict[str, dict[str, int]] = {}
    for row in left_out:
        whys = by_group.setdefault(row["group"], {})
        whys[row["why"]] = whys.get(row["why"], 0) + 1
    return [f"{name}: {_count(sum(whys.values()), 'replicate')} left out ("
            + ", ".join(f"{n} {why}" for why, n in whys.items())
            + "; only completed tasks and runs count, --include-failed keeps them)"
            for name, whys in by_group.items()]  # fmt: skip


def collect(runs: Sequence[Run], options: Options) -> tuple[list[Group], list[str], list[dict[str, Any]]]:
    """Every completed replicate's value, grouped (:func:`leave_out_unfinished`: the others come back as
    ``left_out``, with a note per group); raise UsageError naming the replicates without the metric (unless
    ``skip_missing``, which drops them and says so in the returned notes)."""
    reps = [rep for run in runs for rep in replicates(run, options.replicate_keys)]
    known = {k for r in reps for k in r.params}
    unknown = [k for k in options.by or () if k not in known]
    if unknown:
        raise UsageError(f"--by {','.join(unknown)}: no run has such a parameter",
                         hint=f"parameters: {', '.join(sorted(known)) or 'none'}")  # fmt: skip
    reps, left_out = leave_out_unfinished(runs, reps, options)
    if not reps:
        raise UsageError(f"no replicate completed: {len(left_out)} left out ({left_out_notes(left_out)[0]})",
                         hint="wait for the tasks to finish, or --include-failed to compare them anyway")  # fmt: skip
    found: list[tuple[Replicate, float, dict[str, Any]]] = []
    missing: list[tuple[Replicate, str]] = []
    for rep in reps:
        value, why, where = value_of(rep, options)
        if value is None:
            missing.append((rep, why))
        else:
            found.append((rep, value, where))
    notes = left_out_notes(left_out)
    if missing:
        shown = "; ".join(f"{r.label} ({why})" for r, why in missing[:5]) + (
            " ..." if len(missing) > 5 else ""
        )
        message = f"metric {options.metric!r} not found in {len(missing)} of {len(reps)} replicates: {shown}"
        if not options.skip_missing or not found:
            raise UsageError(
                message, hint="check the name (report.NAME for report numbers), or --skip-missing"
            )
        notes.append(f"skipped: {message}")
    reps_found, values, sources = [f[0] for f in found], [f[1] for f in found], [f[2] for f in found]
    return group_replicates(reps_found, values, options.by, sources), notes, left_out


def compare(runs: Sequence[Run], options: Options) -> dict[str, Any]:
    """The comparison document (schema hpcx.compare/1): groups with their summaries and intervals, and the
    pairwise comparisons (against ``baseline``, or all pairs), each listing the replicates it used."""
    groups, notes, left_out = collect(runs, options)
    if options.ci_method == "auto":
        # Bootstrap intervals of the mean cover ~85% at n=5 for a nominal 95%: with the usual 3-5 seeds the
        # t interval is the honest default; percentile once every group has 10 or more replicates.
        few = any(len(g.members) < 10 for g in groups) and options.statistic == "mean"
        options = replace(options, ci_method="t" if few else "percentile")
    if options.ci_method != "t":
        try:
            import numpy  # noqa: F401 - the bootstrap resamples with it
        except ImportError as exc:
            raise UsageError("bootstrap intervals need numpy",
                             hint="pip install numpy (or 'hpcx[runtime]'), or use --ci t") from exc  # fmt: skip
    small = [f"{g.name} (n={len(g.members)})" for g in groups if len(g.members) < 2]
    if small:
        raise UsageError(
            f"group(s) with fewer than 2 replicates: {'; '.join(small[:5])}: intervals and tests need 2",
            hint="run more seeds (parameters.repeats in the sweep), or merge groups with --by",
        )
    if options.ci_method == "t" and options.statistic != "mean":
        raise UsageError(f"--ci t is an interval for the mean, not the {options.statistic}",
                         hint="use --ci percentile or bca with --stat median/iqm")  # fmt: skip
    pairs = _pairs(groups, options.baseline)
    rows = [_comparison(a, b, options) for a, b in pairs]
    adjusted = stats.correct([r["welch"]["p"] for r in rows], options.correction)
    for row, p in zip(rows, adjusted):
        row["p_adjusted"] = p
    # The same correction over the Mann-Whitney p-values, for readers who trust the rank test more.
    for row, p in zip(rows, stats.correct([r["mann_whitney"]["p"] for r in rows], options.correction)):
        row["mann_whitney"]["p_adjusted"] = p
    if any(len(g.members) < 10 for g in groups) and options.ci_method != "t":
        notes.append(FEW_REPLICATES_NOTE)
    source, name = metric_source(options.metric)
    return _clean({
        "schema": COMPARE_SCHEMA,
        "metric": {"name": name, "source": source, "reduce": options.reduce if source == "logged" else None,
                   "unit": metric_unit(options.metric)},
        "settings": {"statistic": options.statistic, "correction": options.correction,
                     "ci": {"method": options.ci_method, "level": options.level,
                            "resamples": options.resamples, "seed": options.seed},
                     "alpha": options.alpha, "power": options.power, "detect": options.detect,
                     "baseline": pairs[0][1].name if options.baseline and pairs else None,
                     "by": list(options.by) if options.by is not None else None,
                     "replicate_keys": list(options.replicate_keys)},
        "runs": sorted({rep.run.id for g in groups for rep, _ in g.members}),
        "groups": [_group_row(g, options, left_out) for g in groups],
        "comparisons": rows,
        "left_out": left_out,
        "notes": notes,
    })  # fmt: skip


def _pairs(groups: Sequence[Group], baseline: str | None) -> list[tuple[Group, Group]]:
    if baseline is not None:
        base = find_baseline(groups, baseline)
        return [(g, base) for g in groups if g is not base]
    return [(groups[i], groups[j]) for i in range(len(groups)) for j in range(i + 1, len(groups))]


def _statistic(values: Sequence[float], name: str) -> float:
    return {"mean": stats.mean, "median": stats.median, "iqm": stats.iqm}[name](values)


def _interval(samples: Sequence[Sequence[float]], options: Options) -> dict[str, float]:
    ci = stats.bootstrap_ci(samples, options.statistic, level=options.level, method=options.ci_method,
                            n_resamples=options.resamples, seed=options.seed)  # fmt: skip
    return {"low": ci.low, "high": ci.high}


def _group_row(g: Group, options: Options, left_out: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    return {
        "name": g.name,
        "params": g.params,
        "left_out": sum(1 for row in left_out if row["group"] == g.name),
        **stats.summarize(g.values),
        "ci": _interval([g.values], options),
        "replicates": [
            {"run_id": r.run.id, "task": r.task, "seed": r.seed, "value": v, "source": where}
            for (r, v), where in zip(g.members, g.sources)
        ],
    }


def _comparison(a: Group, b: Group, options: Options) -> dict[str, Any]:
    """Group a against group b: a - b in the chosen statistic, with its interval, tests and effect sizes."""
    x, y = a.values, b.values
    welch, mwu = stats.welch(x, y), stats.mann_whitney(x, y)
    mean_diff = stats.mean(x) - stats.mean(y)
    detect = options.detect if options.detect is not None else mean_diff
    return {
        "a": a.name,
        "b": b.name,
        "difference": _statistic(x, options.statistic) - _statistic(y, options.statistic),
        "ci": _interval([x, y], options),
        "welch": {"t": welch.statistic, "df": welch.df, "p": welch.pvalue},
        "mann_whitney": {"u": mwu.statistic, "p": mwu.pvalue, "method": mwu.method},
        "cohens_d": stats.cohens_d(x, y),
        "cliffs_delta": stats.cliffs_delta(x, y),
        "seeds_needed": {
            "n": stats.seeds_needed(
                detect, stats.std(x), stats.std(y), alpha=options.alpha, power=options.power
            ),
            "difference": abs(detect),
        },
    }


def _clean(value: Any) -> Any:
    """JSON has no nan or infinity: they become null (a test that could not run, an unbounded effect size)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# --- rendering ---------------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _p(value: float | None, exact: bool = False) -> str:
    """A p-value for a table; below 1e-4 the terminal says so, the written reports give its size."""
    if value is None:
        return "-"
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.2e}" if exact else "<1e-4"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def group_table(doc: dict[str, Any]) -> list[list[str]]:
    stat = doc["settings"]["statistic"].upper()
    head = ["GROUP", "N", f"{stat} [{doc['settings']['ci']['level']:.0%} CI]", "STD", "MEDIAN", "IQM"]
    return [head] + [
        [g["name"], str(g["n"]), f"{_num(g[doc['settings']['statistic']])} [{_num(g['ci']['low'])}, "
         f"{_num(g['ci']['high'])}]", _num(g["std"]), _num(g["median"]), _num(g["iqm"])]
        for g in doc["groups"]
    ]  # fmt: skip


def comparison_table(doc: dict[str, Any]) -> list[list[str]]:
    head = ["A", "B", "A - B", "CI", "WELCH P", "MWU P", f"P ({doc['settings']['correction'].upper()})",
            "COHEN D", "CLIFF", "SEEDS"]  # fmt: skip
    return [head] + [
        [c["a"], c["b"], _num(c["difference"]), f"[{_num(c['ci']['low'])}, {_num(c['ci']['high'])}]",
         _p(c["welch"]["p"]), _p(c["mann_whitney"]["p"]), _p(c["p_adjusted"]), _num(c["cohens_d"], 3),
         _num(c["cliffs_delta"], 3), str(c["seeds_needed"]["n"] or f">{stats.MAX_SEEDS}")]
        for c in doc["comparisons"]
    ]  # fmt: skip


def headline(doc: dict[str, Any]) -> str:
    m, ci = doc["metric"], doc["settings"]["ci"]
    how = f"rank 0's {m['reduce']} value" if m["source"] == "logged" else "from the run reports"
    n, runs = sum(g["n"] for g in doc["groups"]), len(doc["runs"])
    tasks = any(r["task"] is not None for g in doc["groups"] for r in g["replicates"])
    where = (f"tasks of sweep run {doc['runs'][0]}" if tasks and runs == 1
             else f"tasks of {runs} runs" if tasks else _count(runs, "run"))  # fmt: skip
    interval = f"{ci['level']:.0%} {ci['method']} intervals"
    if ci["method"] != "t":
        interval += f" ({ci['resamples']} resamples, seed {ci['seed']})"
    left = len(doc.get("left_out") or [])
    dropped = f"; {left} not completed, left out" if left else ""
    return (f"{m['name']} ({how}): {_count(n, 'replicate')} in {_count(len(doc['groups']), 'group')} "
            f"({where}{dropped}); {interval}")  # fmt: skip


def render_text(doc: dict[str, Any]) -> str:
    """The terminal view: the groups, then the comparisons, then the notes."""
    lines = [headline(doc), "", *_table(group_table(doc))]
    if doc["comparisons"]:
        s = doc["settings"]
        against = f"against baseline {s['baseline']}" if s["baseline"] else "all pairs"
        lines += ["", f"{against}: difference of the {s['statistic']}; seeds per group for power "
                  f"{s['power']} at alpha {s['alpha']}", *_table(comparison_table(doc))]  # fmt: skip
    lines += [f"note: {n}" for n in doc["notes"]]
    return "\n".join(lines)


# --- the written report ------------------------------------------------------------------------------------
# compare.md and compare.html carry the same tables: the settings, the groups, the comparisons (both tests,
# raw and corrected), the plots, and every replicate with the file and field its value was read from.


def write_outputs(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """compare.json, the plots (groups and differences, SVG and PDF), compare.md and compare.html (one
    self-contained file, the SVG plots inlined) under ``out_dir``."""
    from hpcx.fsutil import atomic_write, atomic_write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_json(out_dir / "compare.json", doc)]
    plots = plot(doc, out_dir)
    written += plots
    written.append(atomic_write(out_dir / "compare.md", render_markdown(doc, [p.name for p in plots])))
    svgs = {p.stem: p.read_text() for p in plots if p.suffix == ".svg"}
    written.append(atomic_write(out_dir / "compare.html", render_html(doc, svgs)))
    return written


def settings_rows(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The report's header: what was measured, how it became one number, and how the intervals were made."""
    m, s = doc["metric"], doc["settings"]
    ci = s["ci"]
    bootstrap = ci["method"] != "t"
    unused = " (not used: the t interval does not resample)"
    n_cmp = len(doc["comparisons"])
    return [
        ("metric", m["name"] + (f" ({m['unit']})" if m.get("unit") else "")),
        ("source", "logged by the job (rank 0's metrics file)" if m["source"] == "logged"
         else "the run reports (report/report.json, or the profile records)"),
        ("reduced", f"{m['reduce']} of rank 0's logged values, one number per replicate"
         if m["source"] == "logged" else "one number per report: not reduced"),
        ("statistic", s["statistic"]),
        ("interval", f"{ci['method']} ({'bootstrap' if bootstrap else 'Student / Welch'})"),
        ("level", f"{ci['level']:g}"),
        ("resamples", str(ci["resamples"]) + ("" if bootstrap else unused)),
        ("seed", str(ci["seed"]) + ("" if bootstrap else unused)),
        ("correction", f"{s['correction']} over {n_cmp} comparison(s)"),
        ("seeds needed", f"power {s['power']:g} at alpha {s['alpha']:g} to detect "
         + (f"{s['detect']:g}" if s["detect"] is not None else "the observed difference")),
        ("compared", f"against baseline {s['baseline']}" if s["baseline"] else "all pairs"),
        ("grouped by", ",".join(s["by"]) if s["by"] is not None
         else "all parameters but " + ", ".join(s["replicate_keys"])),
        ("runs", ", ".join(doc["runs"])),
    ]  # fmt: skip


def report_comparison_table(doc: dict[str, Any]) -> list[list[str]]:
    """The comparisons with both tests' p-values, raw and corrected (the terminal shows Welch's corrected)."""
    corr = doc["settings"]["correction"]
    head = ["A", "B", "A - B", f"{doc['settings']['ci']['level']:.0%} CI", "Welch p", f"Welch p ({corr})",
            "MWU p", f"MWU p ({corr})", "Cohen's d", "Cliff's delta", "seeds needed"]  # fmt: skip
    return [head] + [
        [c["a"], c["b"], _num(c["difference"]), f"[{_num(c['ci']['low'])}, {_num(c['ci']['high'])}]",
         _p(c["welch"]["p"], True), _p(c["p_adjusted"], True), _p(c["mann_whitney"]["p"], True),
         _p(c["mann_whitney"].get("p_adjusted"), True), _num(c["cohens_d"], 3), _num(c["cliffs_delta"], 3),
         str(c["seeds_needed"]["n"] or f">{stats.MAX_SEEDS}")]
        for c in doc["comparisons"]
    ]  # fmt: skip


def replicate_table(doc: dict[str, Any]) -> list[list[str]]:
    """Every replicate: its group, run id, sweep task, seed, exact value, and the file and field it came from
    (the file relative to the run's directory, RUNS_ROOT/RUN_ID)."""
    head = ["group", "run", "task", "seed", "value", "file", "field", "how"]
    rows = [head]
    for g in doc["groups"]:
        for r in g["replicates"]:
            where = r.get("source") or {}
            rows.append([g["name"], r["run_id"], "-" if r["task"] is None else str(r["task"]),
                         "-" if r["seed"] is None else str(r["seed"]), repr(r["value"]),
                         where.get("file", "-"), where.get("field", "-"), where.get("how", "-")])  # fmt: skip
    return rows


def _md_cell(text: str) -> str:
    """A Markdown table cell: pipes escaped, and ``&``, ``<``, ``>`` as entities so a parameter value such as
    ``<b>`` is shown, not interpreted as HTML by the renderer."""
    import html

    return html.escape(text, quote=False).replace("|", "\\|")


def _md_table(rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [[_md_cell(c) for c in r] for r in rows]
    return ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])] + [
        "| " + " | ".join(r) + " |" for r in cells[1:]
    ]


def render_markdown(doc: dict[str, Any], images: Sequence[str]) -> str:
    """A Markdown page: the settings, the tables, the plots, and every replicate with the run, task and file
    its value came from."""
    lines = [f"# Comparison: {_md_cell(doc['metric']['name'])}", "", _md_cell(headline(doc)) + ".", ""]
    lines += _md_table([["setting", "value"], *[list(r) for r in settings_rows(doc)]])
    lines += ["", "## Groups", ""] + _md_table(group_table(doc))
    if doc["comparisons"]:
        lines += ["", "## Comparisons", ""] + _md_table(report_comparison_table(doc))
    lines += ["", *[f"![{name}]({name})" for name in images if name.endswith(".svg")]]
    lines += ["", "## Replicates", "", "Files are relative to the run's directory (RUNS_ROOT/RUN_ID).", ""]
    lines += _md_table(replicate_table(doc))
    lines += [f"\nNote: {_md_cell(n)}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"


# --- compare.html: one file, no network -------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 75em; padding: 0 1em; color: #1a1a1a; background: #fff; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.55em; text-align: left; vertical-align: top; }
th { background: #f2f4f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.id { white-space: nowrap; }
td.id, td.file { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.95em; }
tbody.group:nth-of-type(even) td { background: #fafbfc; }
figure { margin: 1em 0; } figure svg { width: min(100%, 40em); height: auto; }
figcaption { font-size: 0.9em; color: #444; } p.note { color: #7a4b00; }
footer { margin-top: 2em; font-size: 0.8em; color: #666; }
"""


def _e(text: Any) -> str:
    import html

    return html.escape(str(text), quote=True)


def _html_table(rows: Sequence[Sequence[str]], numeric: Sequence[int] = (), cell_html: Any = None) -> str:
    """A table: the first row the head; ``numeric`` columns right-aligned; ``cell_html(row, col, text)`` may
    return the cell's (already escaped) HTML, e.g. a link."""
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in rows[0])
    body = []
    for i, row in enumerate(rows[1:]):
        cells = []
        for j, text in enumerate(row):
            inner = cell_html(i, j, text) if cell_html else None
            cls = ' class="num"' if j in numeric else ""
            cells.append(f"<td{cls}>{inner if inner is not None else _e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def inline_svg(text: str, prefix: str) -> str:
    """A matplotlib SVG file as an element inside HTML: the XML prolog, DOCTYPE and RDF metadata dropped (they
    name URLs, though none is fetched), every id prefixed so two plots' ids cannot clash."""
    import re

    body = text[text.index("<svg") :]
    body = re.sub(r"<metadata>.*?</metadata>\s*", "", body, flags=re.S)
    body = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', body)
    body = body.replace('href="#', f'href="#{prefix}-').replace("url(#", f"url(#{prefix}-")
    return body.replace("<svg ", f'<svg role="img" aria-label="{_e(prefix)} plot" ', 1).rstrip() + "\n"


PLOT_CAPTIONS = {
    "groups": "Each replicate of each group as a grey point; beside it the group's {stat} with its {level} "
    "{method} interval. The labels name the parameters that differ between groups.",
    "differences": "Each comparison's difference of the {stat} (A - B) with its {level} {method} interval, "
    "against zero (dashed); the corrected Welch p at the right.",
}


def render_html(doc: dict[str, Any], svgs: dict[str, str]) -> str:
    """compare.html: the settings, the group and comparison tables, the plots (``svgs``: stem -> SVG text,
    inlined), every replicate with the file and field of its value, and the notes. Self-contained: no script,
    no stylesheet or font or image fetched; every text from the runs is HTML-escaped."""
    s = doc["settings"]
    name = doc["metric"]["name"]
    index = {g["name"]: i for i, g in enumerate(doc["groups"])}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head>\n<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Comparison: {_e(name)}</title>\n<style>{_CSS}</style>\n</head>\n<body>",
        f"<h1>Comparison: {_e(name)}</h1>",
        f"<p>{_e(headline(doc))}.</p>",
        '<table class="settings">\n<tbody>\n'
        + "\n".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in settings_rows(doc))
        + "\n</tbody>\n</table>",
        '<h2 id="groups">Groups</h2>',
    ]

    def group_link(_row: int, col: int, text: str) -> str | None:
        if col == 0 and text in index:
            return f'<a href="#replicates-{index[text]}">{_e(text)}</a>'
        return None

    parts.append(_html_table(group_table(doc), numeric=(1, 2, 3, 4, 5), cell_html=group_link))
    if doc["comparisons"]:
        against = f"against baseline {s['baseline']}" if s["baseline"] else "all pairs"
        parts += [
            '<h2 id="comparisons">Comparisons</h2>',
            f"<p>{_e(against)}: difference of the {_e(s['statistic'])}; p-values corrected by "
            f"{_e(s['correction'])} over the comparisons shown; seeds needed per group for power "
            f"{_e(s['power'])} at alpha {_e(s['alpha'])}.</p>",
            _html_table(
                report_comparison_table(doc),
                numeric=range(2, 11),
                cell_html=lambda r, c, t: group_link(r, 0, t) if c in (0, 1) else None,
            ),  # fmt: skip
        ]
    if svgs:
        parts.append('<h2 id="plots">Plots</h2>')
        fill = {"stat": s["statistic"], "level": f"{s['ci']['level']:.0%}", "method": s["ci"]["method"]}
        for stem, text in svgs.items():
            caption = PLOT_CAPTIONS.get(stem, stem).format(**fill)
            parts.append(
                f'<figure id="plot-{_e(stem)}">\n{inline_svg(text, stem)}<figcaption>{_e(caption)} Also '
                f"{_e(stem)}.svg and {_e(stem)}.pdf beside this file.</figcaption>\n</figure>"
            )
    parts += [
        '<h2 id="replicates">Replicates</h2>',
        "<p>Every value behind the tables: the run (and sweep task) it was measured in, its seed, the exact "
        "value, and the file (relative to the run's directory, RUNS_ROOT/RUN_ID) and field it was read "
        "from.</p>",
    ]
    rows = replicate_table(doc)
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in rows[0])
    parts.append(f'<table class="replicates">\n<thead><tr>{head}</tr></thead>')
    row = 1
    for i, g in enumerate(doc["groups"]):
        parts.append(f'<tbody class="group" id="replicates-{i}">')
        for _ in g["replicates"]:
            cells = rows[row]
            row += 1
            classes = ["", ' class="id"', ' class="num"', ' class="num"', ' class="num"', ' class="file"',
                       ' class="file"', ""]  # fmt: skip
            parts.append("<tr>" + "".join(f"<td{c}>{_e(t)}</td>" for c, t in zip(classes, cells)) + "</tr>")
        parts.append("</tbody>")
    parts.append("</table>")
    if doc["notes"]:
        parts += ['<h2 id="notes">Notes</h2>', *[f'<p class="note">{_e(n)}</p>' for n in doc["notes"]]]
    parts += [
        f"<footer>hpcx compare, {_e(doc['schema'])}: compare.json beside this file holds every number."
        "</footer>",
        "</body>\n</html>\n",
    ]
    return "\n".join(parts)


# --- the plots ---------------------------------------------------------------------------------------------

# Vector output that journals take (TrueType, not Type 3, fonts in the PDF; glyphs as paths in the SVG, so no
# font is needed to view it), readable sizes at a column's width, and fixed ids and no timestamps: the same
# comparison writes the same bytes. Text from the runs is never read as mathtext ($ in a parameter).
PLOT_STYLE = {
    "svg.hashsalt": "hpcx",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "font.size": 9,
    "axes.labelsize": 9,
    "axes.titlesize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "0.9",
    "grid.linewidth": 0.6,
    "text.parse_math": False,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.04,
}
_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}


def axis_label(doc: dict[str, Any]) -> str:
    """The metric's name with its unit where known (``wall_s (s)``)."""
    m = doc["metric"]
    return f"{m['name']} ({m['unit']})" if m.get("unit") else m["name"]


def plot_labels(groups: Sequence[dict[str, Any]], width: int = 40) -> dict[str, str]:
    """Group name -> its label on a plot: the parameters that differ between groups (those every group shares
    are in the tables), cut to ``width`` characters."""
    keys = list(dict.fromkeys(k for g in groups for k in g["params"]))
    varying = [k for k in keys if len({_fmt(g["params"].get(k)) for g in groups}) > 1]
    labels = {}
    for g in groups:
        short = ",".join(f"{k}={_fmt(g['params'].get(k))}" for k in varying if k in g["params"]) or g["name"]
        labels[g["name"]] = short if len(short) <= width else short[: width - 3] + "..."
    return labels


def plot(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """groups.{svg,pdf}: each replicate as a point, the statistic with its interval beside it;
    differences.{svg,pdf}: each comparison's difference with its interval, against zero."""
    try:
        import matplotlib
    except ImportError as exc:
        raise UsageError("--out needs matplotlib", hint="pip install 'hpcx[report]'") from exc
    matplotlib.use("Agg")
    with matplotlib.rc_context(PLOT_STYLE):
        written = _groups_plot(doc, out_dir / "groups")
        if doc["comparisons"]:
            written += _differences_plot(doc, out_dir / "differences")
    return written


def _groups_plot(doc: dict[str, Any], stem: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    stat, ci_s = doc["settings"]["statistic"], doc["settings"]["ci"]
    interval = f"{stat}, {ci_s['level']:.0%} {ci_s['method']} interval"
    groups = doc["groups"]
    labels = plot_labels(groups)
    names = [labels[g["name"]] for g in groups]
    rotate = len(groups) > 3 or max(len(n) for n in names) > 12
    fig, ax = plt.subplots(figsize=(max(3.5, 0.9 * len(groups) + 1.5), 3.2))
    ax.grid(axis="x", visible=False)
    for i, g in enumerate(groups):
        values = [r["value"] for r in g["replicates"]]
        jitter = [
            (k - (len(values) - 1) / 2) * min(0.04, 0.2 / max(len(values), 1)) for k in range(len(values))
        ]
        ax.scatter([i - 0.12 + j for j in jitter], values, s=14, color="0.5", edgecolors="none", zorder=2,
                   label="replicate" if i == 0 else None)  # fmt: skip
        centre, ci = g[stat], g["ci"]
        if centre is not None and ci["low"] is not None and ci["high"] is not None:
            ax.errorbar([i + 0.12], [centre], yerr=[[centre - ci["low"]], [ci["high"] - centre]], fmt="o",
                        color="C0", markersize=5, capsize=3, zorder=3,
                        label=interval if i == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(groups)), names, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel(axis_label(doc))
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncols=2, frameon=False, borderaxespad=0,
              handletextpad=0.3, columnspacing=1.2)  # fmt: skip
    return _save(fig, stem)


def _differences_plot(doc: dict[str, Any], stem: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    stat, ci_s, corr = doc["settings"]["statistic"], doc["settings"]["ci"], doc["settings"]["correction"]
    rows = doc["comparisons"]
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(rows) + 1.3))
    ax.grid(axis="y", visible=False)
    for i, c in enumerate(rows):
        lo, hi = c["ci"]["low"], c["ci"]["high"]
        if c["difference"] is not None and lo is not None and hi is not None:
            ax.errorbar([c["difference"]], [i], xerr=[[c["difference"] - lo], [hi - c["difference"]]],
                        fmt="o", color="C0", markersize=5, capsize=3)  # fmt: skip
        ax.annotate(f"p ({corr}) {_p(c['p_adjusted'])}", xy=(1.02, i), xycoords=("axes fraction", "data"),
                    va="center", ha="left", fontsize=8, color="0.3")  # fmt: skip
    ax.axvline(0, color="0.4", linewidth=0.8, linestyle="--")
    labels = plot_labels(doc["groups"])
    ax.set_yticks(
        range(len(rows)), [f"{labels.get(c['a'], c['a'])} - {labels.get(c['b'], c['b'])}" for c in rows]
    )
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(f"difference of the {stat}: {axis_label(doc)}")
    ax.set_title(f"A - B with {ci_s['level']:.0%} {ci_s['method']} interval", loc="left")
    return _save(fig, stem)


def _save(fig: Any, stem: Path) -> list[Path]:
    import io

    import matplotlib.pyplot as plt

    from hpcx.fsutil import atomic_write

    paths = []
    try:
        for ext in ("svg", "pdf"):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, metadata=_METADATA[ext])
            paths.append(atomic_write(stem.with_suffix(f".{ext}"), buf.getvalue()))
    finally:
        plt.close(fig)
    return paths
