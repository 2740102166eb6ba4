"""`hpcx compare`: runs (or a sweep's tasks) grouped by their parameters, seeds as replicates, one metric per
replicate, and the statistics of hpcx.stats over the groups. Reads run directories only; prints or writes.

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

from hpcx import stats
from hpcx.errors import UsageError
from hpcx.runs import Run

COMPARE_SCHEMA = "hpcx.compare/1"
REPLICATE_KEYS = ("seed", "repeat", "rep")
REDUCTIONS = ("last", "min", "max", "mean")
# Numbers a report holds per run: the name compare takes -> how to read it from a report summary.
REPORT_METRICS = ("wall_s", "cpu_s", "cpu_efficiency", "peak_rss_mb", "energy_j", "energy_kwh")
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
    name: str
    params: dict[str, Any]
    members: list[tuple[Replicate, float]] = field(default_factory=list)

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


def logged_values(rep: Replicate, name: str) -> tuple[list[float], set[str]]:
    """Rank 0's values of ``name`` in logging order, one per step (a step logged again after a resume keeps
    its latest value), and every metric name rank 0 logged (for the error when ``name`` is not among them)."""
    from hpcx.records import rank_file, read_records

    base = rep.run.dir / "metrics"
    path = rank_file(base / f"task-{rep.task:05d}" if rep.task is not None else base, 0)
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
    from hpcx.records import read_records
    from hpcx.reports.build import summarize_rank

    ranks = [r for r in (summarize_rank(read_records(f)) for f in sorted(profile.glob("rank-*.jsonl")))
             if r["rank"] is not None]  # fmt: skip
    if not ranks:
        return {}
    cpus = int(rep.run.manifest.get("resources", {}).get("cpus_per_task", {}).get("value") or 1)
    wall, cpu = max(r["wall_s"] for r in ranks), math.fsum(r["cpu_s"] for r in ranks)
    efficiency = cpu / (len(ranks) * cpus * wall) if wall > 0 else None
    return {"wall_s": wall, "cpu_s": cpu, "cpu_efficiency": efficiency,
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in ranks)}  # fmt: skip


def value_of(rep: Replicate, options: Options) -> tuple[float | None, str]:
    """The replicate's number for the metric, or None and why it has none."""
    source, name = metric_source(options.metric)
    if source == "report":
        if name not in REPORT_METRICS:
            return None, f"reports have no {name!r} (they have {', '.join(REPORT_METRICS)})"
        try:
            value = report_summary(rep).get(name)
        except UsageError as exc:
            return None, exc.message
        return (None, f"its report has no {name}") if value is None else (float(value), "")
    values, seen = logged_values(rep, name)
    if not values:
        return None, f"rank 0 logged {', '.join(sorted(seen))}" if seen else "no metrics logged by rank 0"
    return reduce_values(values, options.reduce), ""


# --- grouping ----------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def group_replicates(
    reps: Sequence[Replicate], values: Sequence[float], by: Sequence[str] | None
) -> list[Group]:
    """Replicates with the same parameters (all of them, or those named in ``by``) form a group; groups keep
    the order their first replicate came in (the sweep's task order)."""
    groups: dict[str, Group] = {}
    for rep, value in zip(reps, values):
        params = {k: rep.params.get(k) for k in by} if by is not None else dict(rep.params)
        name = ",".join(f"{k}={_fmt(v)}" for k, v in params.items()) or "all"
        groups.setdefault(name, Group(name, params)).members.append((rep, value))
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


def collect(runs: Sequence[Run], options: Options) -> tuple[list[Group], list[str]]:
    """Every replicate's value, grouped; raise UsageError naming the replicates without the metric (unless
    ``skip_missing``, which drops them and says so in the returned notes)."""
    reps = [rep for run in runs for rep in replicates(run, options.replicate_keys)]
    known = {k for r in reps for k in r.params}
    unknown = [k for k in options.by or () if k not in known]
    if unknown:
        raise UsageError(f"--by {','.join(unknown)}: no run has such a parameter",
                         hint=f"parameters: {', '.join(sorted(known)) or 'none'}")  # fmt: skip
    found: list[tuple[Replicate, float]] = []
    missing: list[tuple[Replicate, str]] = []
    for rep in reps:
        value, why = value_of(rep, options)
        if value is None:
            missing.append((rep, why))
        else:
            found.append((rep, value))
    notes = []
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
    return group_replicates([r for r, _ in found], [v for _, v in found], options.by), notes


def compare(runs: Sequence[Run], options: Options) -> dict[str, Any]:
    """The comparison document (schema hpcx.compare/1): groups with their summaries and intervals, and the
    pairwise comparisons (against ``baseline``, or all pairs), each listing the replicates it used."""
    groups, notes = collect(runs, options)
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
    if any(len(g.members) < 10 for g in groups) and options.ci_method != "t":
        notes.append(FEW_REPLICATES_NOTE)
    source, name = metric_source(options.metric)
    return _clean({
        "schema": COMPARE_SCHEMA,
        "metric": {"name": name, "source": source, "reduce": options.reduce if source == "logged" else None},
        "settings": {"statistic": options.statistic, "correction": options.correction,
                     "ci": {"method": options.ci_method, "level": options.level,
                            "resamples": options.resamples, "seed": options.seed},
                     "alpha": options.alpha, "power": options.power, "detect": options.detect,
                     "baseline": pairs[0][1].name if options.baseline and pairs else None,
                     "by": list(options.by) if options.by is not None else None,
                     "replicate_keys": list(options.replicate_keys)},
        "runs": sorted({rep.run.id for g in groups for rep, _ in g.members}),
        "groups": [_group_row(g, options) for g in groups],
        "comparisons": rows,
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


def _group_row(g: Group, options: Options) -> dict[str, Any]:
    return {
        "name": g.name,
        "params": g.params,
        **stats.summarize(g.values),
        "ci": _interval([g.values], options),
        "replicates": [
            {"run_id": r.run.id, "task": r.task, "seed": r.seed, "value": v} for r, v in g.members
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


def _p(value: float | None) -> str:
    return "-" if value is None else "<1e-4" if value < 1e-4 else f"{value:.4f}"


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
    interval = f"{ci['level']:.0%} {ci['method']} intervals"
    if ci["method"] != "t":
        interval += f" ({ci['resamples']} resamples, seed {ci['seed']})"
    return f"{m['name']} ({how}): {n} replicates in {len(doc['groups'])} groups of {runs} run(s); {interval}"


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


def write_outputs(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """compare.json, compare.md and the plots (groups and differences, SVG and PDF) under ``out_dir``."""
    from hpcx.fsutil import atomic_write, atomic_write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_json(out_dir / "compare.json", doc)]
    plots = plot(doc, out_dir)
    written += plots
    written.append(atomic_write(out_dir / "compare.md", render_markdown(doc, [p.name for p in plots])))
    return written


def _md_table(rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [[c.replace("|", "\\|") for c in r] for r in rows]
    return ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])] + [
        "| " + " | ".join(r) + " |" for r in cells[1:]
    ]


def render_markdown(doc: dict[str, Any], images: Sequence[str]) -> str:
    """A Markdown page: the tables, the plots, and which runs and tasks each group's numbers came from."""
    lines = [f"# Comparison: {doc['metric']['name']}", "", headline(doc) + ".", "", "## Groups", ""]
    lines += _md_table(group_table(doc))
    if doc["comparisons"]:
        lines += ["", "## Comparisons", ""] + _md_table(comparison_table(doc))
    lines += ["", *[f"![{name}]({name})" for name in images if name.endswith(".svg")]]
    lines += ["", "## Replicates", ""]
    for g in doc["groups"]:
        lines.append(f"- **{g['name']}**: " + ", ".join(
            f"`{r['run_id']}`" + (f" task {r['task']}" if r["task"] is not None else "")
            + f" (seed {r['seed']}): {_num(r['value'], 6)}" for r in g["replicates"]))  # fmt: skip
    lines += [f"\nNote: {n}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """groups.{svg,pdf}: each replicate as a point, the statistic with its interval beside it;
    differences.{svg,pdf}: each comparison's difference with its interval, against zero."""
    try:
        import matplotlib
    except ImportError as exc:
        raise UsageError("--out needs matplotlib", hint="pip install 'hpcx[report]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Fixed ids and no timestamps: the same comparison writes the same bytes.
    matplotlib.rcParams.update({"svg.hashsalt": "hpcx", "font.size": 9, "axes.spines.top": False,
                                "axes.spines.right": False})  # fmt: skip
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}
    written = []
    stat = doc["settings"]["statistic"]
    groups = doc["groups"]
    fig, ax = plt.subplots(figsize=(max(3.5, 0.9 * len(groups) + 1.5), 3.2))
    for i, g in enumerate(groups):
        values = [r["value"] for r in g["replicates"]]
        jitter = [(k - (len(values) - 1) / 2) * 0.04 for k in range(len(values))]
        ax.scatter([i - 0.12 + j for j in jitter], values, s=14, color="0.55", zorder=2)
        centre, ci = g[stat], g["ci"]
        if ci["low"] is not None and ci["high"] is not None:
            ax.errorbar([i + 0.12], [centre], yerr=[[centre - ci["low"]], [ci["high"] - centre]], fmt="o",
                        color="C0", capsize=3, zorder=3)  # fmt: skip
    ax.set_xticks(range(len(groups)), [g["name"] for g in groups], rotation=30 if len(groups) > 3 else 0,
                  ha="right" if len(groups) > 3 else "center")  # fmt: skip
    ax.set_ylabel(doc["metric"]["name"])
    ax.set_title(
        f"{stat} with {doc['settings']['ci']['level']:.0%} {doc['settings']['ci']['method']} interval"
    )
    written += _save(fig, out_dir / "groups", metadata)
    rows = doc["comparisons"]
    if rows:
        fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(rows) + 1.3))
        for i, c in enumerate(rows):
            lo, hi = c["ci"]["low"], c["ci"]["high"]
            if lo is not None and hi is not None:
                ax.errorbar([c["difference"]], [i], xerr=[[c["difference"] - lo], [hi - c["difference"]]],
                            fmt="o", color="C0", capsize=3)  # fmt: skip
        ax.axvline(0, color="0.4", linewidth=0.8, linestyle="--")
        ax.set_yticks(range(len(rows)), [f"{c['a']} - {c['b']}" for c in rows])
        ax.invert_yaxis()
        ax.set_xlabel(f"difference of the {stat} of {doc['metric']['name']}")
        written += _save(fig, out_dir / "differences", metadata)
    return written


def _save(fig: Any, stem: Path, metadata: dict[str, dict[str, Any]]) -> list[Path]:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = []
    for ext in ("svg", "pdf"):
        path = stem.with_suffix(f".{ext}")
        fig.savefig(path, metadata=metadata[ext])
        paths.append(path)
    plt.close(fig)
    return paths
