"""Statistics for comparing runs: summaries, bootstrap intervals, two-sample tests, effect sizes, corrections
for many comparisons and the replicates a difference needs.

Pure functions over lists of numbers. The distributions, tests, bootstrap intervals and the power of Welch's
test are scipy.stats' (``pip install 'hpcx[compare]'``), imported inside the functions that need them: the
login side must not load scipy or numpy on import. What scipy lacks is written here: the summaries (IQM as
rliable defines it), Holm's correction, the effect sizes, the seeds-needed search, and a clear answer where a
sample is too small or constant for scipy's (nan, never an exception). docs/compare.md says when to trust each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Sample = Sequence[float]
STATISTICS = ("mean", "median", "iqm")
CI_METHODS = ("percentile", "bca", "t")
MAX_SEEDS = 1_000_000  # above this, "seeds needed" is reported as out of reach
INSTALL_HINT = "pip install 'hpcx[compare]'"


def scipy_stats() -> Any:
    """``scipy.stats``, imported now; ImportError with the install to run when scipy is missing."""
    try:
        import scipy.stats
    except ImportError as exc:
        raise ImportError(f"hpcx compare needs scipy: {INSTALL_HINT}") from exc
    return scipy.stats


def quietly(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)`` with scipy's warnings silenced: what they warn of (nearly identical values,
    a degenerate interval) shows as nan or "-" in the tables, and `hpcx compare` prints nothing else."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


# --- summaries ---------------------------------------------------------------------------------------------


def mean(x: Sample) -> float:
    return math.fsum(x) / len(x)


def std(x: Sample) -> float:
    """Sample standard deviation (ddof=1); nan for fewer than two values."""
    if len(x) < 2:
        return math.nan
    m = mean(x)
    return math.sqrt(math.fsum((v - m) ** 2 for v in x) / (len(x) - 1))


def median(x: Sample) -> float:
    s, n = sorted(x), len(x)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def iqm(x: Sample) -> float:
    """Interquartile mean as rliable computes it (``scipy.stats.trim_mean(x, 0.25)``): drop ``int(0.25 n)``
    values at each end, rounding the count down with no fractional weights, and average the rest. So n <= 3
    keeps every value (the IQM of 3 seeds is their mean) and n = 5 drops one at each end."""
    s, cut = sorted(x), int(0.25 * len(x))
    return mean(s[cut : len(s) - cut])


def summarize(x: Sample) -> dict[str, float]:
    return {
        "n": len(x),
        "mean": mean(x),
        "std": std(x),
        "median": median(x),
        "iqm": iqm(x),
        "min": min(x),
        "max": max(x),
    }


def statistic_of(x: Sample, name: str) -> float:
    """The named statistic (one of STATISTICS) of one sample."""
    return {"mean": mean, "median": median, "iqm": iqm}[name](x)


# --- bootstrap ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    method: str


def _iqm_axis(a: Any, axis: int = -1) -> Any:
    """The IQM over an axis, as :func:`iqm`: sorted, so a resample holding the sample's own values gives
    exactly the sample's IQM (scipy's trim_mean partitions, and its sum may differ in the last bit, which
    moves BCa's bias correction where resampled statistics tie with the observed one)."""
    import numpy as np

    s = np.sort(np.moveaxis(a, axis, -1), axis=-1)
    cut = int(0.25 * s.shape[-1])
    return s[..., cut : s.shape[-1] - cut].mean(axis=-1)


def _vectorized(name: str) -> Callable[..., Any]:
    """The named statistic over an axis of an array of resamples, as scipy.stats.bootstrap calls it."""
    import numpy as np

    funcs: dict[str, Callable[..., Any]] = {
        "mean": lambda a, axis: np.mean(a, axis=axis),
        "median": lambda a, axis: np.median(a, axis=axis),
        "iqm": _iqm_axis,
    }
    if name not in funcs:
        raise ValueError(f"unknown statistic {name!r}; known: {', '.join(STATISTICS)}")
    return funcs[name]


def _difference(stat: Callable[..., Any]) -> Callable[..., Any]:
    def combined(*arrays: Any, axis: int = -1) -> Any:
        if len(arrays) == 2:
            return stat(arrays[0], axis) - stat(arrays[1], axis)
        return stat(arrays[0], axis)

    return combined


def bootstrap_ci(
    samples: Sequence[Sample],
    statistic: str = "mean",
    *,
    level: float = 0.95,
    method: str = "percentile",
    n_resamples: int = 9999,
    seed: int = 0,
) -> Interval:
    """A bootstrap interval for ``statistic`` of one sample, or for stat(x) - stat(y) of two independent ones.

    scipy.stats.bootstrap, with ``numpy.random.default_rng(seed)``: the same seed gives the same interval.
    ``percentile`` takes the quantiles of the resampled statistic; ``bca`` corrects them for bias and skew.
    Both are too narrow for a handful of replicates (see docs/compare.md); ``t`` is Student's interval, for
    the mean (or difference of means, Welch) only. Constant samples give the exact statistic as a zero-width
    interval (scipy's resamples would all be equal and BCa undefined); a one-value sample beside a varying
    one gives no interval (nan).
    """
    if method == "t":
        return _t_interval(samples, statistic, level)
    if method not in CI_METHODS:
        raise ValueError(f"unknown interval method {method!r}; known: {', '.join(CI_METHODS)}")
    stat = _vectorized(statistic)
    if all(len(set(s)) == 1 for s in samples):
        values = [statistic_of(s, statistic) for s in samples]
        exact = values[0] - values[1] if len(values) == 2 else values[0]
        return Interval(exact, exact, level, method)
    if any(len(s) < 2 for s in samples):  # one value cannot be resampled into a spread
        return Interval(math.nan, math.nan, level, method)
    return _scipy_bootstrap(samples, stat, level, method, n_resamples, seed)


def _scipy_bootstrap(
    samples: Sequence[Sample],
    stat: Callable[..., Any],
    level: float,
    method: str,
    n_resamples: int,
    seed: int,
) -> Interval:
    import numpy as np

    data = tuple(np.asarray(s, dtype=float) for s in samples)
    res = quietly(  # a degenerate BCa interval comes back as nan, shown as "-" in the tables
        scipy_stats().bootstrap,
        data,
        _difference(stat),
        n_resamples=n_resamples,
        vectorized=True,
        axis=-1,
        confidence_level=level,
        method="BCa" if method == "bca" else "percentile",
        **_generator(np.random.default_rng(seed)),
    )
    ci = res.confidence_interval
    return Interval(float(ci.low), float(ci.high), level, method)


def _generator(rng: Any) -> dict[str, Any]:
    """The generator as scipy.stats.bootstrap takes it: ``rng`` from scipy 1.15, ``random_state`` before
    (hpcx[compare] allows scipy >= 1.11); both draw the same resamples from it."""
    import inspect

    takes_rng = "rng" in inspect.signature(scipy_stats().bootstrap).parameters
    return {"rng": rng} if takes_rng else {"random_state": rng}


def _t_interval(samples: Sequence[Sample], statistic: str, level: float) -> Interval:
    if statistic != "mean":
        raise ValueError(f"the t interval is for the mean, not the {statistic}")
    if len(samples) == 1:
        x = samples[0]
        if len(x) < 2:
            return Interval(math.nan, math.nan, level, "t")
        half = scipy_stats().t.ppf(1 - (1 - level) / 2, len(x) - 1) * std(x) / math.sqrt(len(x))
        return Interval(mean(x) - float(half), mean(x) + float(half), level, "t")
    res = welch(samples[0], samples[1])
    diff = mean(samples[0]) - mean(samples[1])
    if res.se == 0:  # two constant groups: the difference is known exactly
        return Interval(diff, diff, level, "t")
    if not (math.isfinite(res.df) and math.isfinite(res.se)):  # NaN values: no interval, never an exception
        return Interval(math.nan, math.nan, level, "t")
    half = float(scipy_stats().t.ppf(1 - (1 - level) / 2, res.df)) * res.se
    return Interval(diff - half, diff + half, level, "t")


# --- tests -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestResult:
    statistic: float
    pvalue: float
    df: float = math.nan
    se: float = math.nan
    method: str = ""


def welch(x: Sample, y: Sample) -> TestResult:
    """Welch's unequal-variance t-test, two-sided (scipy.stats.ttest_ind(x, y, equal_var=False)), with the
    standard error of the difference. nan when a group has one value or both are constant (se 0)."""
    se = math.sqrt(std(x) ** 2 / len(x) + std(y) ** 2 / len(y))
    if se == 0 or math.isnan(se):
        return TestResult(math.nan, math.nan, math.nan, se, "welch")
    res = quietly(scipy_stats().ttest_ind, x, y, equal_var=False)
    return TestResult(float(res.statistic), float(res.pvalue), float(res.df), se, "welch")


def mann_whitney(x: Sample, y: Sample) -> TestResult:
    """Mann-Whitney U, two-sided, as scipy.stats.mannwhitneyu's defaults choose: U is x's statistic; the
    p-value is exact when a sample has at most 8 values and there are no ties, else normal with the tie
    correction and a continuity correction of 0.5. Every value tied: U in the middle and p = 1."""
    pooled = [*x, *y]
    ties = len(set(pooled)) < len(pooled)
    method = "exact" if (len(x) <= 8 or len(y) <= 8) and not ties else "asymptotic"
    if len(set(pooled)) == 1:  # no order at all: no evidence either way
        return TestResult(len(x) * len(y) / 2, 1.0, method=method)
    res = quietly(scipy_stats().mannwhitneyu, x, y, method=method)
    return TestResult(float(res.statistic), min(1.0, float(res.pvalue)), method=method)


# --- effect sizes ------------------------------------------------------------------------------------------


def cohens_d(x: Sample, y: Sample) -> float:
    """(mean x - mean y) / pooled SD (ddof=1 in each group); +-inf when both are constant but differ; nan
    when the groups hold one value each (no SD to pool)."""
    n1, n2 = len(x), len(y)
    if n1 + n2 < 3:
        return math.nan
    pooled = math.sqrt(((n1 - 1) * std(x) ** 2 + (n2 - 1) * std(y) ** 2) / (n1 + n2 - 2))
    diff = mean(x) - mean(y)
    if pooled == 0:
        return math.nan if diff == 0 else math.copysign(math.inf, diff)
    return diff / pooled


def cliffs_delta(x: Sample, y: Sample) -> float:
    """P(X > Y) - P(X < Y) over all pairs: from -1 (every y larger) to 1 (every x larger)."""
    greater = sum(1 for a in x for b in y if a > b)
    less = sum(1 for a in x for b in y if a < b)
    return (greater - less) / (len(x) * len(y))


# --- many comparisons --------------------------------------------------------------------------------------


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order (scipy has no Holm)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate), in the input order
    (scipy.stats.false_discovery_control)."""
    if not pvalues:
        return []
    return [float(p) for p in quietly(scipy_stats().false_discovery_control, list(pvalues), method="bh")]


CORRECTIONS: dict[str, Callable[[Sequence[float]], list[float]]] = {
    "holm": holm,
    "bh": benjamini_hochberg,
    "none": lambda p: list(p),
}


def correct(pvalues: Sequence[float], how: str) -> list[float]:
    """Adjusted p-values; nan entries (tests that could not run) stay nan and do not count in the family."""
    kept = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    adjusted = CORRECTIONS[how]([pvalues[i] for i in kept])
    out = [math.nan] * len(pvalues)
    for i, p in zip(kept, adjusted):
        out[i] = p
    return out


# --- power -------------------------------------------------------------------------------------------------


def welch_power(diff: float, sd_x: float, sd_y: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided Welch test with ``n`` replicates per group to detect a true difference ``diff``:
    the test statistic's noncentral t (scipy.stats.nct, noncentrality diff / se) beyond the critical values,
    with Welch-Satterthwaite's df at equal n."""
    vx, vy = sd_x**2, sd_y**2
    if vx + vy == 0:
        return 1.0 if diff != 0 else alpha
    ss = scipy_stats()
    df = (vx + vy) ** 2 * (n - 1) / (vx**2 + vy**2)
    ncp = abs(diff) / math.sqrt((vx + vy) / n)
    crit = ss.t.ppf(1 - alpha / 2, df)
    return float(quietly(ss.nct.sf, crit, df, ncp) + quietly(ss.nct.cdf, -crit, df, ncp))


def seeds_needed(
    diff: float, sd_x: float, sd_y: float, *, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """The fewest replicates per group (>= 2) for which Welch's test reaches ``power``; None when no count up
    to MAX_SEEDS does (a zero difference, or SDs that are not numbers)."""
    if diff == 0 or math.isnan(diff) or math.isnan(sd_x) or math.isnan(sd_y):
        return None
    if sd_x == 0 and sd_y == 0:
        return 2
    norm = scipy_stats().norm
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    guess = math.ceil(z * z * (sd_x**2 + sd_y**2) / diff**2)  # the normal approximation: a near start
    if guess > MAX_SEEDS:
        return None
    n = max(2, guess)
    while n > 2 and welch_power(diff, sd_x, sd_y, n - 1, alpha) >= power:
        n -= 1
    while welch_power(diff, sd_x, sd_y, n, alpha) < power:
        n += 1
        if n > MAX_SEEDS:
            return None
    return n
