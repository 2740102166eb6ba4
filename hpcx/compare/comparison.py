"""The comparison: every completed replicate's value, grouped, and the document of hpcx.compare/1 with each
group's summary and interval and each pair's difference, tests, effect sizes and seeds needed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hpcx.compare import stats
from hpcx.compare.completion import leave_out_unfinished, left_out_notes
from hpcx.compare.grouping import Group, find_baseline, group_replicates
from hpcx.compare.replicates import Options, Replicate, metric_source, metric_unit, replicates, value_of
from hpcx.errors import UsageError
from hpcx.runs import Run

COMPARE_SCHEMA = "hpcx.compare/1"
# Percentile and BCa intervals of the mean cover like z * s * sqrt((n-1)/n) / sqrt(n): P(|T_(n-1)| < that).
FEW_REPLICATES_NOTE = (
    "bootstrap intervals are too narrow with few replicates (n=5: about 85% coverage for a nominal 95%; "
    "n=20: 93%); --ci t is exact for normal data (docs/compare.md)"
)


def require_scipy() -> None:
    """Fail with the install to run when scipy (the extra ``hpcx[compare]``) is missing: every test,
    interval and power number comes from scipy.stats."""
    try:
        stats.scipy_stats()
    except ImportError as exc:
        raise UsageError("hpcx compare needs scipy", hint=stats.INSTALL_HINT) from exc


def collect(runs: Sequence[Run], options: Options) -> tuple[list[Group], list[str], list[dict[str, Any]]]:
    """Every completed replicate's value, grouped (:func:`leave_out_unfinished`: the others come back as
    ``left_out``, with a note per group); raise UsageError naming the replicates without the metric (unless
    ``skip_missing``, which drops them and says so in the returned notes)."""
    reps = [rep for run in runs for rep in replicates(run, options.replicate_keys)]
    _check_by(reps, options.by)
    reps, left_out = leave_out_unfinished(runs, reps, options)
    if not reps:
        raise UsageError(
            f"no replicate completed: {len(left_out)} left out ({left_out_notes(left_out)[0]})",
            hint="wait for the tasks to finish, or --include-failed to compare them anyway",
        )
    notes = left_out_notes(left_out)
    found = _values(reps, options, notes)
    reps_found, values, sources = [f[0] for f in found], [f[1] for f in found], [f[2] for f in found]
    return group_replicates(reps_found, values, options.by, sources), notes, left_out


def _check_by(reps: Sequence[Replicate], by: Sequence[str] | None) -> None:
    known = {k for r in reps for k in r.params}
    unknown = [k for k in by or () if k not in known]
    if unknown:
        raise UsageError(
            f"--by {','.join(unknown)}: no run has such a parameter",
            hint=f"parameters: {', '.join(sorted(known)) or 'none'}",
        )


def _values(
    reps: Sequence[Replicate], options: Options, notes: list[str]
) -> list[tuple[Replicate, float, dict[str, Any]]]:
    """Each replicate's value and source; those without the metric raise, or with ``skip_missing`` are
    dropped with a note."""
    found: list[tuple[Replicate, float, dict[str, Any]]] = []
    missing: list[tuple[Replicate, str]] = []
    for rep in reps:
        value, why, where = value_of(rep, options)
        if value is None:
            missing.append((rep, why))
        else:
            found.append((rep, value, where))
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
    return found


def compare(runs: Sequence[Run], options: Options) -> dict[str, Any]:
    """The comparison document (schema hpcx.compare/1): groups with their summaries and intervals, and the
    pairwise comparisons (against ``baseline``, or all pairs), each listing the replicates it used."""
    require_scipy()
    groups, notes, left_out = collect(runs, options)
    options = _settled(groups, options)
    pairs = _pairs(groups, options.baseline)
    rows = _comparisons(pairs, options)
    if any(len(g.members) < 10 for g in groups) and options.ci_method != "t":
        notes.append(FEW_REPLICATES_NOTE)
    source, name = metric_source(options.metric)
    return _clean(
        {
            "schema": COMPARE_SCHEMA,
            "metric": {
                "name": name,
                "source": source,
                "reduce": options.reduce if source == "logged" else None,
                "unit": metric_unit(options.metric),
            },
            "settings": _settings(options, pairs),
            "runs": sorted({rep.run.id for g in groups for rep, _ in g.members}),
            "groups": [_group_row(g, options, left_out) for g in groups],
            "comparisons": rows,
            "left_out": left_out,
            "notes": notes,
        }
    )


def _settled(groups: Sequence[Group], options: Options) -> Options:
    """The options with ``auto`` resolved, once the groups are checked to allow intervals and tests."""
    if options.ci_method == "auto":
        # Bootstrap intervals of the mean cover ~85% at n=5 for a nominal 95%: with the usual 3-5 seeds the
        # t interval is the honest default; percentile once every group has 10 or more replicates.
        few = any(len(g.members) < 10 for g in groups) and options.statistic == "mean"
        options = replace(options, ci_method="t" if few else "percentile")
    small = [f"{g.name} (n={len(g.members)})" for g in groups if len(g.members) < 2]
    if small:
        raise UsageError(
            f"group(s) with fewer than 2 replicates: {'; '.join(small[:5])}: intervals and tests need 2",
            hint="run more seeds (parameters.repeats in the sweep), or merge groups with --by",
        )
    if options.ci_method == "t" and options.statistic != "mean":
        raise UsageError(
            f"--ci t is an interval for the mean, not the {options.statistic}",
            hint="use --ci percentile or bca with --stat median/iqm",
        )
    return options


def _comparisons(pairs: Sequence[tuple[Group, Group]], options: Options) -> list[dict[str, Any]]:
    """Each pair's row, with both tests' p-values corrected over the family of comparisons shown."""
    rows = [_comparison(a, b, options) for a, b in pairs]
    adjusted = stats.correct([r["welch"]["p"] for r in rows], options.correction)
    for row, p in zip(rows, adjusted):
        row["p_adjusted"] = p
    # The same correction over the Mann-Whitney p-values, for readers who trust the rank test more.
    for row, p in zip(rows, stats.correct([r["mann_whitney"]["p"] for r in rows], options.correction)):
        row["mann_whitney"]["p_adjusted"] = p
    return rows


def _settings(options: Options, pairs: Sequence[tuple[Group, Group]]) -> dict[str, Any]:
    return {
        "statistic": options.statistic,
        "correction": options.correction,
        "ci": {
            "method": options.ci_method,
            "level": options.level,
            "resamples": options.resamples,
            "seed": options.seed,
        },
        "alpha": options.alpha,
        "power": options.power,
        "detect": options.detect,
        "baseline": pairs[0][1].name if options.baseline and pairs else None,
        "by": list(options.by) if options.by is not None else None,
        "replicate_keys": list(options.replicate_keys),
    }


def _pairs(groups: Sequence[Group], baseline: str | None) -> list[tuple[Group, Group]]:
    if baseline is not None:
        base = find_baseline(groups, baseline)
        return [(g, base) for g in groups if g is not base]
    return [(groups[i], groups[j]) for i in range(len(groups)) for j in range(i + 1, len(groups))]


def _interval(samples: Sequence[Sequence[float]], options: Options) -> dict[str, float]:
    ci = stats.bootstrap_ci(
        samples,
        options.statistic,
        level=options.level,
        method=options.ci_method,
        n_resamples=options.resamples,
        seed=options.seed,
    )
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
        "difference": stats.statistic_of(x, options.statistic) - stats.statistic_of(y, options.statistic),
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
