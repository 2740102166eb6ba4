"""What `hpcx compare` says on the samples where statistics break down: one value, constant values, and the
exact Mann-Whitney test with groups of unequal sizes. Each answer is pinned by its value (worked out by
hand, so it holds whichever library computes it): a clear number or "no answer" (nan, null in JSON, "-" in
the table), never a ZeroDivisionError."""

from __future__ import annotations

import math

import pytest

from hpcx.compare import Options, compare, render_text, stats
from hpcx.fsutil import atomic_write_json
from hpcx.runs import create_run
from hpcx.runtime import metrics

# --- one value ---------------------------------------------------------------------------------------------


def test_one_value_has_no_spread_and_no_interval_but_its_own_summary():
    assert math.isnan(stats.std([4.0]))
    assert stats.std([1.0, 3.0]) == pytest.approx(math.sqrt(2))  # two values are enough for a spread
    summary = stats.summarize([4.0])
    assert {k: v for k, v in summary.items() if k != "std"} == {
        "n": 1,
        "mean": 4.0,
        "median": 4.0,
        "iqm": 4.0,
        "min": 4.0,
        "max": 4.0,
    }
    assert math.isnan(summary["std"])
    ci = stats.bootstrap_ci([[4.0]], method="t")
    assert math.isnan(ci.low) and math.isnan(ci.high) and ci.method == "t"


def test_a_group_of_one_value_gives_no_test_and_no_effect_size_rather_than_an_exception():
    for x, y in (([4.0], [1.0, 2.0]), ([1.0, 2.0], [4.0]), ([4.0], [1.0])):
        res = stats.welch(x, y)
        assert math.isnan(res.statistic) and math.isnan(res.pvalue) and math.isnan(res.df)
        assert math.isnan(stats.cohens_d(x, y))
        ci = stats.bootstrap_ci([x, y], method="t")
        assert math.isnan(ci.low) and math.isnan(ci.high)


# --- constant values ---------------------------------------------------------------------------------------


def test_a_constant_sample_has_a_zero_width_interval_at_its_value():
    assert stats.std([2.5, 2.5, 2.5]) == 0.0
    for method in ("t", "percentile", "bca"):
        ci = stats.bootstrap_ci([[2.5, 2.5, 2.5]], method=method)
        assert (ci.low, ci.high, ci.method) == (2.5, 2.5, method)


def test_two_constant_groups_that_differ_know_the_difference_exactly_but_have_no_t_test():
    x, y = [3.0, 3.0, 3.0], [1.0, 1.0]
    res = stats.welch(x, y)
    assert res.se == 0.0 and math.isnan(res.statistic) and math.isnan(res.pvalue)
    ci = stats.bootstrap_ci([x, y], method="t")
    assert (ci.low, ci.high) == (2.0, 2.0)
    assert stats.cohens_d(x, y) == math.inf and stats.cohens_d(y, x) == -math.inf
    assert stats.cliffs_delta(x, y) == 1.0
    mwu = stats.mann_whitney(x, y)
    assert (mwu.statistic, mwu.method) == (6.0, "asymptotic")  # every x above every y; ties: not exact
    assert stats.seeds_needed(2.0, 0.0, 0.0) == 2  # no noise: the smallest sample a test can use


def test_two_equal_constant_groups_show_no_difference():
    x = [0.5, 0.5, 0.5]
    assert math.isnan(stats.cohens_d(x, x)) and stats.cliffs_delta(x, x) == 0.0
    mwu = stats.mann_whitney(x, x)
    assert (mwu.statistic, mwu.pvalue) == (4.5, 1.0)  # every value tied: no evidence at all
    assert stats.seeds_needed(0.0, 0.0, 0.0) is None  # no difference to detect
    ci = stats.bootstrap_ci([x, x], method="t")
    assert (ci.low, ci.high) == (0.0, 0.0)


# --- the exact Mann-Whitney test with unequal sizes --------------------------------------------------------

# Exact two-sided p = 2 * (orderings with U at least as extreme) / C(n1 + n2, n1).
EXACT = [
    # 3 values below 10: U = 0, only one ordering of 286 as extreme on each side.
    ([1.0, 2.0, 3.0], [float(v) for v in range(4, 14)], 0.0, 2 / 286),
    # the same groups the other way round: U = 30 = n1 * n2, the same p
    ([float(v) for v in range(4, 14)], [1.0, 2.0, 3.0], 30.0, 2 / 286),
    # 8 against 12 (the largest small group that is still exact): all of x below y
    ([float(v) for v in range(8)], [float(v) for v in range(8, 20)], 0.0, 2 / math.comb(20, 8)),
    # 2 against 3 (U takes 0..6 in 1, 1, 2, 2, 2, 1, 1 of the 10 orderings): interleaved, U = 3 is the middle
    ([2.0, 4.0], [1.0, 3.0, 5.0], 3.0, 1.0),
    ([1.5, 2.5], [3.0, 4.0, 5.0], 0.0, 2 / 10),  # U = 0: 1 ordering on each side
    ([4.5, 1.5], [3.0, 4.0, 5.0], 2.0, 2 * 4 / 10),  # U = 2: 1 + 1 + 2 orderings at least as far out
]


@pytest.mark.parametrize(("x", "y", "u", "p"), EXACT)
def test_the_exact_mann_whitney_test_with_unequal_sizes(x, y, u, p):
    res = stats.mann_whitney(x, y)
    assert res.method == "exact"
    assert res.statistic == u and res.pvalue == pytest.approx(p, rel=1e-12)


def test_nine_or_more_in_both_groups_or_any_tie_is_not_exact():
    assert (
        stats.mann_whitney([float(v) for v in range(9)], [v + 0.5 for v in range(10)]).method == "asymptotic"
    )
    assert (
        stats.mann_whitney([v + 0.5 for v in range(10)], [float(v) for v in range(9)]).method == "asymptotic"
    )
    assert stats.mann_whitney([1.0, 2.0, 2.0], [3.0, 4.0]).method == "asymptotic"


# --- what `hpcx compare` shows -----------------------------------------------------------------------------


def _runs(runs_root, monkeypatch, groups: dict[str, list[float]]):
    """Single runs with ``--set lr=...`` and a seed each, whose rank 0 logged ``loss`` once."""
    runs = []
    for lr, losses in groups.items():
        for seed, loss in enumerate(losses):
            run = create_run(runs_root)
            atomic_write_json(
                run.dir / "manifest.json", {"variables": {"lr": lr, "seed": str(seed)}, "resources": {}}
            )
            monkeypatch.setenv("HPCX_RUN_DIR", str(run.dir))
            monkeypatch.delenv("HPCX_TASK_ID", raising=False)
            metrics._records.close()  # a new process per run: the next record opens its own file
            metrics.log(10, loss=loss)
            runs.append(run)
    metrics._records.close()
    return runs


def test_compare_of_constant_groups_says_exactly_what_it_can(runs_root, monkeypatch):
    runs = _runs(runs_root, monkeypatch, {"0.1": [0.25, 0.25, 0.25], "0.01": [0.5, 0.5]})
    doc = compare(runs, Options(metric="loss", baseline="lr=0.01"))
    groups = {g["name"]: g for g in doc["groups"]}
    assert [(g["n"], g["mean"], g["std"], g["ci"]) for g in (groups["lr=0.1"], groups["lr=0.01"])] == [
        (3, 0.25, 0.0, {"low": 0.25, "high": 0.25}),
        (2, 0.5, 0.0, {"low": 0.5, "high": 0.5}),
    ]
    (row,) = doc["comparisons"]
    assert row["difference"] == -0.25 and row["ci"]["low"] == row["ci"]["high"] == row["difference"]
    assert row["welch"] == {"t": None, "df": None, "p": None} and row["p_adjusted"] is None
    assert row["cohens_d"] is None and row["cliffs_delta"] == -1.0 and row["seeds_needed"]["n"] == 2
    assert row["mann_whitney"]["method"] == "asymptotic" and 0 < row["mann_whitney"]["p"] < 1
    text = render_text(doc)
    cells = next(li.split() for li in text.splitlines() if li.split()[:2] == ["lr=0.1", "lr=0.01"])
    assert cells[:6] == ["lr=0.1", "lr=0.01", "-0.25", "[-0.25,", "-0.25]", "-"]  # no Welch p
    assert cells[7:] == ["-", "-", "-1", "2"]  # no corrected p, no Cohen's d; Cliff's delta; 2 seeds


def test_compare_of_unequal_groups_gives_the_exact_rank_test(runs_root, monkeypatch):
    fast = [0.10, 0.11, 0.12]
    slow = [0.20 + 0.01 * i for i in range(10)]
    runs = _runs(runs_root, monkeypatch, {"fast": fast, "slow": slow})
    doc = compare(runs, Options(metric="loss", baseline="lr=slow"))
    (row,) = doc["comparisons"]
    assert row["mann_whitney"]["u"] == 0.0 and row["mann_whitney"]["method"] == "exact"
    assert row["mann_whitney"]["p"] == pytest.approx(2 / 286, rel=1e-12)
    assert row["cliffs_delta"] == -1.0
    cells = next(
        li.split() for li in render_text(doc).splitlines() if li.split()[:2] == ["lr=fast", "lr=slow"]
    )
    assert cells[6] == "0.0070"  # the MWU P column
