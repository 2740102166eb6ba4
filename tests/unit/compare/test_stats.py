"""What `hpcx compare` reports, held to scipy.stats on fixed data: Welch's and Mann-Whitney's tests, the t and
bootstrap intervals for the same seed, the corrections and the seeds needed (the exact noncentral t); the
summaries scipy lacks (IQM as rliable defines it); the bootstrap's coverage and the power by simulation; and
the one-line error when scipy is missing."""

import math
import subprocess
import sys

import pytest

from hpcx.compare import Options, compare, stats
from tests.unit.compare.test_stats_edges import _runs

np = pytest.importorskip("numpy")
ss = pytest.importorskip("scipy.stats")

# Fixed data: loss-like values from a few seeds, with and without ties, small and large groups.
A = [0.412, 0.398, 0.455, 0.430, 0.401, 0.447, 0.420]
B = [0.371, 0.390, 0.366, 0.402, 0.385]
TIED_A = [3.0, 4.0, 4.0, 5.0, 6.0, 6.0, 7.0, 9.0, 2.0, 4.0]
TIED_B = [1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 5.0, 3.0, 2.0]
rng = np.random.default_rng(20261126)
LARGE_A = list(rng.normal(10.0, 2.0, 23))
LARGE_B = list(rng.normal(11.5, 3.5, 31))
PAIRS = [(A, B), (B, A), (TIED_A, TIED_B), (LARGE_A, LARGE_B), (A[:3], B[:2]), ([1.0, 2.0], [3.0, 4.0, 5.0])]


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return a == pytest.approx(b, rel=rel, abs=1e-300)


def _row(runs_root, monkeypatch, x, y, **options):
    """`hpcx compare` of group x (lr=x) against baseline y (lr=y): the document and its one comparison."""
    runs = _runs(runs_root, monkeypatch, {"x": x, "y": y})
    doc = compare(runs, Options(metric="loss", baseline="lr=y", **options))
    (row,) = doc["comparisons"]
    return doc, row


@pytest.mark.parametrize("x", [A, B, TIED_A, LARGE_A, [5.0, 1.0], [2.0, 9.0, 4.0]])
def test_summaries_match_numpy_and_scipy(x):
    assert close(stats.mean(x), np.mean(x)) and close(stats.std(x), np.std(x, ddof=1))
    assert close(stats.median(x), np.median(x))
    assert close(stats.iqm(x), ss.trim_mean(x, 0.25))  # rliable's aggregate_iqm


def test_iqm_trims_whole_values_only():
    assert stats.iqm([1.0, 2.0, 100.0]) == pytest.approx(103 / 3)  # n=3: int(0.75) = 0 trimmed
    assert stats.iqm([1.0, 2.0, 3.0, 4.0, 100.0]) == 3.0  # n=5: one trimmed at each end
    assert stats.iqm([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1000.0]) == 3.5  # n=8: two at each end


@pytest.mark.parametrize(("x", "y"), PAIRS)
def test_compare_reports_scipys_welch_and_mann_whitney(runs_root, monkeypatch, x, y):
    doc, row = _row(runs_root, monkeypatch, x, y)
    want = ss.ttest_ind(x, y, equal_var=False)
    assert close(row["welch"]["t"], want.statistic) and close(row["welch"]["p"], want.pvalue)
    assert close(row["welch"]["df"], want.df) and close(row["p_adjusted"], want.pvalue)  # one comparison
    mwu = ss.mannwhitneyu(x, y)
    assert close(row["mann_whitney"]["u"], mwu.statistic) and close(row["mann_whitney"]["p"], mwu.pvalue)
    assert row["a"] == "lr=x" and row["b"] == "lr=y" and close(row["difference"], np.mean(x) - np.mean(y))


def test_mann_whitney_picks_scipys_method():
    assert stats.mann_whitney(A, B).method == "exact"  # n <= 8, no ties
    assert stats.mann_whitney(TIED_A, TIED_B).method == "asymptotic"  # ties
    assert stats.mann_whitney(LARGE_A, LARGE_B).method == "asymptotic"  # both > 8
    x, y = list(range(9)), [v + 0.5 for v in range(12)]
    assert stats.mann_whitney(x, y).method == "asymptotic" and close(
        stats.mann_whitney(x, y).pvalue, ss.mannwhitneyu(x, y).pvalue
    )


def test_compare_gives_the_t_intervals_by_default_with_few_replicates(runs_root, monkeypatch):
    doc, row = _row(runs_root, monkeypatch, A, B)
    assert doc["settings"]["ci"]["method"] == "t"  # auto: fewer than 10 replicates a group
    group = next(g for g in doc["groups"] if g["name"] == "lr=x")
    want = ss.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=ss.sem(A))
    assert close(group["ci"]["low"], want[0]) and close(group["ci"]["high"], want[1])
    want = ss.ttest_ind(A, B, equal_var=False).confidence_interval(0.95)
    assert close(row["ci"]["low"], want.low) and close(row["ci"]["high"], want.high)


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize(("statistic", "func"), [("mean", np.mean), ("median", np.median)])
def test_compare_gives_scipys_bootstrap_interval_for_the_same_seed(
    runs_root, monkeypatch, method, statistic, func
):
    doc, row = _row(
        runs_root, monkeypatch, A, B, ci_method=method, statistic=statistic, resamples=3000, seed=7
    )
    group = next(g for g in doc["groups"] if g["name"] == "lr=x")
    want = ss.bootstrap((A,), func, method=method, n_resamples=3000, rng=np.random.default_rng(7))
    ci = want.confidence_interval
    assert close(group["ci"]["low"], ci.low) and close(group["ci"]["high"], ci.high)

    def diff(x, y, axis=-1):
        return func(x, axis=axis) - func(y, axis=axis)

    want = ss.bootstrap((A, B), diff, method=method, n_resamples=3000, rng=np.random.default_rng(7))
    ci = want.confidence_interval
    assert close(row["ci"]["low"], ci.low) and close(row["ci"]["high"], ci.high)
    assert close(row["difference"], func(A) - func(B))


def _coverage(method: str, n: int, trials: int) -> float:
    gen = np.random.default_rng(12345)
    hits = 0
    for i in range(trials):
        ci = stats.bootstrap_ci([list(gen.normal(3.0, 2.0, n))], method=method, n_resamples=1000, seed=i)
        hits += ci.low <= 3.0 <= ci.high
    return hits / trials


def test_bootstrap_coverage_by_simulation():
    """1000 normal samples of n=20. The percentile interval is mean +- z * s * sqrt((n-1)/n) / sqrt(n), too
    narrow by z vs t and the plug-in variance: its coverage is P(|T_19| < 1.96 sqrt(19/20)) = 92.9%, not 95%.
    Observed within 3 binomial SEs of that, and of 95% for the t interval."""
    expected = 1 - 2 * ss.t.sf(1.959964 * math.sqrt(19 / 20), 19)
    se = math.sqrt(0.93 * 0.07 / 1000)
    for method in ("percentile", "bca"):
        assert abs(_coverage(method, 20, 1000) - expected) < 3 * se, method
    assert abs(_coverage("t", 20, 1000) - 0.95) < 3 * math.sqrt(0.95 * 0.05 / 1000)


def test_effect_sizes(runs_root, monkeypatch):
    pooled = math.sqrt(
        ((len(A) - 1) * np.var(A, ddof=1) + (len(B) - 1) * np.var(B, ddof=1)) / (len(A) + len(B) - 2)
    )
    _, row = _row(runs_root, monkeypatch, A, B)
    assert close(row["cohens_d"], (np.mean(A) - np.mean(B)) / pooled)
    u = ss.mannwhitneyu(TIED_A, TIED_B).statistic
    assert close(stats.cliffs_delta(TIED_A, TIED_B), 2 * u / (len(TIED_A) * len(TIED_B)) - 1)
    assert stats.cliffs_delta([2.0, 3.0], [0.0, 1.0, 1.5]) == 1.0 and stats.cliffs_delta(
        B, A
    ) == -stats.cliffs_delta(A, B)
    assert stats.cohens_d([1.0, 1.0], [2.0, 2.0]) == -math.inf and math.isnan(
        stats.cohens_d([1.0, 1.0], [1.0, 1.0])
    )


def test_corrections_on_worked_examples():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max 0.06.
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04; running min from the top.
    assert stats.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    many = list(np.random.default_rng(3).uniform(0, 0.2, 25))
    assert stats.benjamini_hochberg(many) == pytest.approx(list(ss.false_discovery_control(many)), rel=1e-12)
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]
    kept = stats.correct([0.01, math.nan, 0.04], "holm")
    assert kept[0] == pytest.approx(0.02) and math.isnan(kept[1]) and kept[2] == pytest.approx(0.04)
    assert math.isnan(stats.correct([math.nan], "bh")[0])  # no test ran: an empty family, nothing to adjust


def test_compare_corrects_over_its_comparisons(runs_root, monkeypatch):
    groups = {"a": A, "b": B, "c": [v + 0.01 for v in B], "d": [v - 0.03 for v in A]}
    runs = _runs(runs_root, monkeypatch, groups)
    for how, adjust in (("holm", stats.holm), ("bh", lambda p: list(ss.false_discovery_control(p)))):
        doc = compare(runs, Options(metric="loss", correction=how))
        raw = [c["welch"]["p"] for c in doc["comparisons"]]
        assert len(raw) == 6 and [c["p_adjusted"] for c in doc["comparisons"]] == pytest.approx(adjust(raw))


def _exact_power(diff, sd_x, sd_y, n, alpha=0.05):
    var = sd_x**2 + sd_y**2
    df = var**2 * (n - 1) / (sd_x**4 + sd_y**4)
    ncp, crit = abs(diff) / math.sqrt(var / n), ss.t.ppf(1 - alpha / 2, df)
    return ss.nct.sf(crit, df, ncp) + ss.nct.cdf(-crit, df, ncp)


def test_seeds_needed_matches_the_textbook_and_the_noncentral_t():
    # G*Power / Cohen: d = 0.5 and 0.8 at alpha 0.05 two-sided and power 0.8 need 64 and 26 per group.
    assert stats.seeds_needed(0.5, 1.0, 1.0) == 64 and stats.seeds_needed(0.8, 1.0, 1.0) == 26
    for diff, sd_y in ((0.3, 1.0), (1.2, 0.3), (2.0, 3.0), (0.8, 2.0), (0.3, 0.1), (5.0, 3.0)):
        n = stats.seeds_needed(diff, 1.0, sd_y)
        assert _exact_power(diff, 1.0, sd_y, n) >= 0.8 > _exact_power(diff, 1.0, sd_y, n - 1)
    # Where the shifted central t of earlier versions was off by one: 90 (was 91) and 6 (was 5) seeds.
    assert stats.seeds_needed(0.3, 1.0, 0.1) == 90 and stats.seeds_needed(5.0, 1.0, 3.0) == 6
    assert stats.seeds_needed(0.0, 1.0, 1.0) is None and stats.seeds_needed(1.0, 0.0, 0.0) == 2
    assert stats.seeds_needed(1e-6, 1.0, 1.0) is None  # beyond MAX_SEEDS


def test_compare_sizes_seeds_needed_for_the_observed_or_the_given_difference(runs_root, monkeypatch):
    _, row = _row(runs_root, monkeypatch, A, B)
    diff, sd_a, sd_b = np.mean(A) - np.mean(B), np.std(A, ddof=1), np.std(B, ddof=1)
    n = row["seeds_needed"]["n"]
    assert row["seeds_needed"]["difference"] == pytest.approx(abs(diff))
    assert _exact_power(diff, sd_a, sd_b, n) >= 0.8 > _exact_power(diff, sd_a, sd_b, n - 1)
    _, row = _row(runs_root, monkeypatch, A, B, detect=0.01, power=0.9, alpha=0.01)
    n = row["seeds_needed"]["n"]
    assert _exact_power(0.01, sd_a, sd_b, n, 0.01) >= 0.9 > _exact_power(0.01, sd_a, sd_b, n - 1, 0.01)


def test_power_by_simulation():
    """At the count seeds_needed picks, Welch's test rejects in about 80% of simulated experiments."""
    gen = np.random.default_rng(99)
    n = stats.seeds_needed(1.0, 1.0, 2.0)
    x, y = gen.normal(1.0, 1.0, (2000, n)), gen.normal(0.0, 2.0, (2000, n))
    rejections = int((ss.ttest_ind(x, y, axis=1, equal_var=False).pvalue < 0.05).sum())
    assert abs(rejections / 2000 - 0.8) < 3 * math.sqrt(0.8 * 0.2 / 2000)


def test_without_scipy_compare_fails_in_one_line_naming_the_install(hpcx, runs_root, monkeypatch, tmp_path):
    runs = _runs(runs_root, monkeypatch, {"x": A, "y": B})
    missing = tmp_path / "no-scipy" / "scipy"
    missing.mkdir(parents=True)
    (missing / "__init__.py").write_text("raise ImportError('No module named scipy')\n")
    monkeypatch.setitem(hpcx.env, "PYTHONPATH", str(missing.parent))
    proc = hpcx("compare", *[r.id for r in runs], "--metric", "loss", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "hpcx compare needs scipy" in lines[0]
    assert "pip install 'hpcx[compare]'" in lines[0]


def test_importing_the_cli_and_compare_loads_neither_scipy_nor_numpy():
    code = "import sys, hpcx.cli, hpcx.cli.compare, hpcx.compare; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & {"scipy", "numpy", "matplotlib"}, sorted(loaded & {"scipy", "numpy", "matplotlib"})
