"""Statistics for comparing runs: summaries, bootstrap intervals, two-sample tests, effect sizes, corrections
for many comparisons and the replicates a difference needs.

Pure functions over lists of numbers. numpy is imported inside the functions that resample (the login side
must not load it on import); scipy is never needed: the t and normal distributions are computed here, and the
tests hold every deterministic number to scipy.stats within 1e-9. docs/compare.md says when to trust each one.
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
    return {"n": len(x), "mean": mean(x), "std": std(x), "median": median(x), "iqm": iqm(x),
            "min": min(x), "max": max(x)}  # fmt: skip


# --- distributions -----------------------------------------------------------------------------------------


def norm_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def _horner(coefs: Sequence[float], x: float) -> float:
    out = 0.0
    for c in coefs:
        out = out * x + c
    return out


def norm_ppf(p: float) -> float:
    """Inverse of the standard normal CDF: Acklam's rational approximation (1e-9) polished by one Halley step
    on erfc, which brings it to machine precision."""
    if not 0 < p < 1:
        return -math.inf if p == 0 else math.inf if p == 1 else math.nan
    if p > 0.5:
        return -norm_ppf(1 - p)  # 1 - p is exact here; the lower tail keeps the precision
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        z = _horner(c, q) / (_horner(d, q) * q + 1)
    else:
        q = p - 0.5
        z = _horner(a, q * q) * q / (_horner(b, q * q) * q * q + 1)
    e = norm_cdf(z) - p
    u = e * math.sqrt(2 * math.pi) * math.exp(z * z / 2)
    return z - u / (1 + z * u / 2)


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function, by the modified Lentz method."""
    tiny, eps = 1e-300, 1e-16
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for aa in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                   -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # fmt: skip
            d = 1 + aa * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < eps:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def betainc(a: float, b: float, x: float, x_complement: float | None = None) -> float:
    """The regularized incomplete beta function I_x(a, b). ``x_complement`` (1 - x, when the caller can form
    it without cancellation) keeps precision for x near 1. The fraction is evaluated on the side where it
    converges fast, so small results keep their relative precision."""
    xc = 1 - x if x_complement is None else x_complement
    if x <= 0:
        return 0.0
    if xc <= 0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(xc)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1 - math.exp(log_front) * _betacf(b, a, xc) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom (df may be fractional, as Welch's is)."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t), t * t / (df + t * t))  # P(|T| > |t|) / 2
    return tail if t >= 0 else 1 - tail


def t_ppf(p: float, df: float) -> float:
    """The t quantile, P(T <= t) = p, by bisection on :func:`t_sf` (monotone, so it cannot miss)."""
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_ppf(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > 1 - p:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if t_sf(mid, df) > 1 - p else (lo, mid)
    return (lo + hi) / 2


# --- bootstrap ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    method: str


def _vectorized(name: str) -> Callable[[Any], Any]:
    """The named statistic over the last axis of an array of resamples."""
    import numpy as np

    def iqm_axis(a: Any) -> Any:
        cut = int(0.25 * a.shape[-1])
        return np.sort(a, axis=-1)[..., cut : a.shape[-1] - cut].mean(axis=-1)

    funcs = {"mean": lambda a: a.mean(axis=-1), "median": lambda a: np.median(a, axis=-1), "iqm": iqm_axis}
    if name not in funcs:
        raise ValueError(f"unknown statistic {name!r}; known: {', '.join(STATISTICS)}")
    return funcs[name]


def bootstrap_ci(samples: Sequence[Sample], statistic: str = "mean", *, level: float = 0.95,
                 method: str = "percentile", n_resamples: int = 9999, seed: int = 0) -> Interval:  # fmt: skip
    """A bootstrap interval for ``statistic`` of one sample, or for stat(x) - stat(y) of two independent ones.

    Each sample is resampled with replacement on its own, from ``numpy.random.default_rng(seed)``, in the
    order scipy.stats.bootstrap draws them, so the same seed gives scipy's interval. ``percentile`` takes the
    quantiles of the resampled statistic; ``bca`` corrects them for bias and skew (Efron & Tibshirani 14.3,
    with the jackknife acceleration of each sample). Both are too narrow for a handful of replicates (see
    docs/compare.md); ``t`` is Student's interval, for the mean (or difference of means, Welch) only.
    """
    if method == "t":
        return _t_interval(samples, statistic, level)
    if method not in CI_METHODS:
        raise ValueError(f"unknown interval method {method!r}; known: {', '.join(CI_METHODS)}")
    import numpy as np

    stat = _vectorized(statistic)
    data = [np.asarray(s, dtype=float) for s in samples]

    def combined(arrays: Sequence[Any]) -> Any:
        return stat(arrays[0]) - stat(arrays[1]) if len(arrays) == 2 else stat(arrays[0])

    rng = np.random.default_rng(seed)
    boot = combined([d[rng.integers(0, len(d), (n_resamples, len(d)))] for d in data])
    alpha = (1 - level) / 2
    low_q, high_q = alpha, 1 - alpha
    if method == "bca":
        low_q, high_q = _bca_levels(data, combined, boot, alpha)
    if math.isnan(low_q) or math.isnan(high_q):
        return Interval(math.nan, math.nan, level, method)
    low, high = np.quantile(boot, [low_q, high_q])
    return Interval(float(low), float(high), level, method)


def _bca_levels(data: list[Any], combined: Callable[[Sequence[Any]], Any], boot: Any,
                alpha: float) -> tuple[float, float]:  # fmt: skip
    import numpy as np

    theta = float(combined(data))
    below = (np.count_nonzero(boot < theta) + np.count_nonzero(boot <= theta)) / (2 * len(boot))
    z0 = norm_ppf(below)
    nums, dens = 0.0, 0.0
    for j, d in enumerate(data):
        # Leave-one-out estimates, value i dropped from sample j, the other samples whole.
        loo = np.array([np.delete(d, i) for i in range(len(d))])
        parts = [loo if k == j else np.broadcast_to(o, (len(d), len(o))) for k, o in enumerate(data)]
        theta_i = combined(parts)
        u = (len(d) - 1) * (theta_i.mean() - theta_i)
        nums += float(np.sum(u**3)) / len(d) ** 3
        dens += float(np.sum(u**2)) / len(d) ** 2
    accel = nums / (6 * dens**1.5) if dens > 0 else 0.0
    z_alpha = norm_ppf(alpha)
    out = []
    for z in (z_alpha, -z_alpha):
        num = z0 + z
        out.append(norm_cdf(z0 + num / (1 - accel * num)))
    return out[0], out[1]


def _t_interval(samples: Sequence[Sample], statistic: str, level: float) -> Interval:
    if statistic != "mean":
        raise ValueError(f"the t interval is for the mean, not the {statistic}")
    if len(samples) == 1:
        x = samples[0]
        half = t_ppf(1 - (1 - level) / 2, len(x) - 1) * std(x) / math.sqrt(len(x))
        return Interval(mean(x) - half, mean(x) + half, level, "t")
    res = welch(samples[0], samples[1])
    diff = mean(samples[0]) - mean(samples[1])
    if res.se == 0:  # two constant groups: the difference is known exactly
        return Interval(diff, diff, level, "t")
    if not (math.isfinite(res.df) and math.isfinite(res.se)):  # NaN values: no interval, never an exception
        return Interval(math.nan, math.nan, level, "t")
    half = t_ppf(1 - (1 - level) / 2, res.df) * res.se
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
    """Welch's unequal-variance t-test, two-sided: t = (mean x - mean y) / se, df by Welch-Satterthwaite
    (scipy.stats.ttest_ind(x, y, equal_var=False)). nan when both samples are constant."""
    vx, vy = std(x) ** 2 / len(x), std(y) ** 2 / len(y)
    se = math.sqrt(vx + vy)
    if se == 0 or math.isnan(se):
        return TestResult(math.nan, math.nan, math.nan, se, "welch")
    t = (mean(x) - mean(y)) / se
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return TestResult(t, min(1.0, 2 * t_sf(abs(t), df)), df, se, "welch")


def _ranks(values: Sample) -> tuple[list[float], list[int]]:
    """Average ranks (1-based) and the sizes of the tie groups."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks, ties, i = [0.0] * len(values), [], 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def _u_counts(n1: int, n2: int) -> list[int]:
    """How many of the C(n1+n2, n1) orderings give each U = 0 .. n1*n2: the coefficients of the Gaussian
    binomial [n1+n2 choose n1]_q = prod_i (1 - q^(n2+i)) / (1 - q^i), in exact integers."""
    small, large = sorted((n1, n2))
    coef = [1] + [0] * (small * large)
    for i in range(1, small + 1):
        for k in range(len(coef) - 1, large + i - 1, -1):  # multiply by (1 - q^(large+i))
            coef[k] -= coef[k - large - i]
        for k in range(i, len(coef)):  # divide by (1 - q^i)
            coef[k] += coef[k - i]
    return coef


def mann_whitney(x: Sample, y: Sample) -> TestResult:
    """Mann-Whitney U, two-sided, as scipy.stats.mannwhitneyu's defaults choose: U is x's statistic; the
    p-value is exact when a sample has at most 8 values and there are no ties, else normal with the tie
    correction and a continuity correction of 0.5."""
    n1, n2 = len(x), len(y)
    ranks, ties = _ranks([*x, *y])
    u1 = math.fsum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    if (n1 <= 8 or n2 <= 8) and all(t == 1 for t in ties):
        counts = _u_counts(n1, n2)
        p = 2 * sum(counts[int(u) :]) / math.comb(n1 + n2, n1)
        return TestResult(u1, min(p, 1.0), method="exact")
    n = n1 + n2
    tie_term = sum(t**3 - t for t in ties)
    s = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    if s == 0:
        return TestResult(u1, 1.0, method="asymptotic")
    z = (u - n1 * n2 / 2 - 0.5) / s
    return TestResult(u1, min(1.0, 2 * norm_cdf(-z)), method="asymptotic")


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
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out, running = [0.0] * m, 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, m * pvalues[i] / (rank + 1))
        out[i] = running
    return out


CORRECTIONS: dict[str, Callable[[Sequence[float]], list[float]]] = {
    "holm": holm, "bh": benjamini_hochberg, "none": lambda p: list(p),
}  # fmt: skip


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
    """Power of the two-sided Welch test with ``n`` replicates per group to detect a true difference ``diff``.

    The noncentral t of the test statistic (noncentrality diff / se) is approximated by a central t shifted
    by the noncentrality, with Welch-Satterthwaite's df at equal n; against scipy.stats.nct this picks the
    same replicate counts (tests/unit/test_stats.py)."""
    vx, vy = sd_x**2, sd_y**2
    if vx + vy == 0:
        return 1.0 if diff != 0 else alpha
    df = (vx + vy) ** 2 * (n - 1) / (vx**2 + vy**2)
    ncp = abs(diff) / math.sqrt((vx + vy) / n)
    crit = t_ppf(1 - alpha / 2, df)
    return t_sf(crit - ncp, df) + (1 - t_sf(-crit - ncp, df))


def seeds_needed(diff: float, sd_x: float, sd_y: float, *, alpha: float = 0.05,
                 power: float = 0.8) -> int | None:  # fmt: skip
    """The fewest replicates per group (>= 2) for which Welch's test reaches ``power``; None when no count up
    to MAX_SEEDS does (a zero difference, or SDs that are not numbers)."""
    if diff == 0 or math.isnan(diff) or math.isnan(sd_x) or math.isnan(sd_y):
        return None
    if sd_x == 0 and sd_y == 0:
        return 2
    z = norm_ppf(1 - alpha / 2) + norm_ppf(power)
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
