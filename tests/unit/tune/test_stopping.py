"""The early-stopping rules of `hpcx tune`, checked against ASHA's definition and against Optuna's own pruners.

The agreement tests replay 1,000 curves whose reports interleave asynchronously (a seeded generator picks which
running trial reports next, and when a new one starts), with ties and NaN values among them, and require every
decision to be identical: to a reference written here from the paper's definition, and to Optuna's
``SuccessiveHalvingPruner`` / ``HyperbandPruner`` driven through a real in-memory study in the same order.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest

from hpcx.tune.stopping import (
    BRACKET_SALT,
    Decision,
    Rule,
    asha_continues,
    bracket_of,
    crowding_distance,
    decide,
    nondominated_fronts,
    replay,
)

NAN = math.nan
Arrival = tuple[int, int, float]


# -- asynchronous arrivals, decided by Optuna ---------------------------------------------------------------------


def _curve(rng: random.Random, n_rungs: int) -> list[float]:
    """A noisy decreasing curve, rounded so that values tie often; now and then a NaN at some rung."""
    quality = rng.random()
    curve = [round(quality + rng.random() / (k + 1), 2) for k in range(n_rungs)]
    if rng.random() < 0.03:
        curve[rng.randrange(n_rungs)] = NAN
    return curve


def _run_optuna(
    pruner: object, rungs: Sequence[int], direction: str, n_trials: int, seed: int
) -> tuple[list[Arrival], list[bool]]:
    """Run a study of ``n_trials`` curves with up to 12 at a time, reporting at each rung in a random interleaving.

    Returns the arrivals (trial, rung, value) in the order they were reported and Optuna's verdict on each
    (True: the trial continues).
    """
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=BRACKET_SALT, direction=direction, pruner=pruner)
    rng = random.Random(seed)
    running: dict[int, tuple[Any, list[float], int]] = {}
    arrivals: list[Arrival] = []
    verdicts: list[bool] = []
    started = 0
    while started < n_trials or running:
        if started < n_trials and len(running) < 12 and (not running or rng.random() < 0.4):
            trial = study.ask()
            running[trial.number] = (trial, _curve(rng, len(rungs)), 0)
            started += 1
        else:
            arrival, continues = _report_next(study, running, rng.choice(sorted(running)), rungs)
            arrivals.append(arrival)
            verdicts.append(continues)
    return arrivals, verdicts


def _report_next(
    study: Any, running: dict[int, tuple[Any, list[float], int]], number: int, rungs: Sequence[int]
) -> tuple[Arrival, bool]:
    """Trial ``number`` reports its value at its next rung and asks Optuna; pruned, it reports nothing more."""
    from optuna.trial import TrialState

    trial, curve, k = running.pop(number)
    trial.report(curve[k], rungs[k])
    continues = not trial.should_prune()
    if not continues:
        study.tell(trial, state=TrialState.PRUNED)
    elif k + 1 == len(rungs):
        study.tell(trial, 0.0 if math.isnan(curve[k]) else curve[k])
    else:
        running[number] = (trial, curve, k + 1)
    return (number, rungs[k], curve[k]), continues


def _reference_asha(arrivals: Sequence[Arrival], eta: int, direction: str) -> list[bool]:
    """ASHA's stopping variant from the paper's definition (Li et al. 2020, Algorithm 2 with top_k).

    A trial that completes rung k with value v is promoted (continues) iff v is in top_k(rung k, |rung k| / eta):
    the best floor(n / eta) of the n values recorded at rung k so far. Where the paper leaves a choice open,
    this follows Optuna: while floor(n / eta) is 0 the best value so far is promoted; a value equal to one in
    the top is in the top; a NaN is never recorded and stops its trial.
    """
    rung: dict[int, list[float]] = defaultdict(list)
    verdicts = []
    for _trial, step, value in arrivals:
        if math.isnan(value):
            verdicts.append(False)
            continue
        rung[step].append(value)
        ordered = sorted(rung[step], reverse=direction == "maximize")
        verdicts.append(value in ordered[: max(len(ordered) // eta, 1)])
    return verdicts


def _assert_replayed_trials(decisions: list[Decision], arrivals: Sequence[Arrival]) -> None:
    assert [(d.trial, d.rung) for d in decisions] == [(t, r) for t, r, _ in arrivals]


@pytest.mark.parametrize(
    ("direction", "eta", "rungs"), [("minimize", 3, (1, 3, 9, 27)), ("maximize", 2, (2, 4, 8))]
)
def test_asha_agrees_with_its_definition_and_optuna_on_1000_asynchronous_curves(
    direction: str, eta: int, rungs: tuple[int, ...]
) -> None:
    optuna = pytest.importorskip("optuna")
    pruner = optuna.pruners.SuccessiveHalvingPruner(
        min_resource=rungs[0], reduction_factor=eta, min_early_stopping_rate=0, bootstrap_count=0
    )
    arrivals, optuna_says = _run_optuna(pruner, rungs, direction, n_trials=1000, seed=16)
    decisions = replay(Rule("asha", eta, rungs, directions=(direction,)), arrivals)

    _assert_replayed_trials(decisions, arrivals)
    hpcx_says = [d.continue_ for d in decisions]
    assert hpcx_says == optuna_says
    assert hpcx_says == _reference_asha(arrivals, eta, direction)
    # The replay was not trivial: every rung stopped some trials and kept others, at ties and NaNs too.
    for step in rungs[:-1]:
        assert {said for (_, r, _), said in zip(arrivals, hpcx_says) if r == step} == {True, False}
    assert sum(math.isnan(v) for _, _, v in arrivals) >= 10
    assert sum(1 for d in decisions if d.continue_ and d.rank == d.of // eta and d.rank > 1) >= 10


def test_hyperband_agrees_with_optuna_hyperband_pruner_on_1000_asynchronous_curves() -> None:
    optuna = pytest.importorskip("optuna")
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=27, reduction_factor=3)
    # The spec's rungs lie below the maximum resource (27), where a trial ends: Optuna's 4 brackets are one per
    # rung and one that never stops a trial.
    arrivals, optuna_says = _run_optuna(pruner, (1, 3, 9), "minimize", n_trials=1000, seed=61)
    decisions = replay(Rule("hyperband", 3, (1, 3, 9)), arrivals)

    _assert_replayed_trials(decisions, arrivals)
    assert [d.continue_ for d in decisions] == optuna_says
    brackets = {bracket_of(t, 4, 3) for t, _, _ in arrivals}
    assert brackets == {0, 1, 2, 3}
    assert any(d.continue_ and "first decision at rung" in d.reason for d in decisions)
    assert any(d.continue_ and "stops no trial" in d.reason for d in decisions)
    assert sum(not d.continue_ for d in decisions) >= 300


# -- ASHA, one objective ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "earlier", "eta", "direction", "continues"),
    [
        (9.0, [], 3, "minimize", True),  # the first at a rung always continues
        (2.0, [1.0], 3, "minimize", False),  # n < eta: only the best
        (1.0, [1.0], 3, "minimize", True),  # ... and a tie with the best counts as the best
        (1.0, [2.0, 3.0], 3, "minimize", True),
        (3.0, [1.0, 2.0], 3, "minimize", False),  # n = 3: the top 1
        (2.0, [1.0, 3.0, 4.0, 5.0, 6.0], 3, "minimize", True),  # n = 6: the top 2
        (3.0, [1.0, 2.0, 4.0, 5.0, 6.0], 3, "minimize", False),
        (2.0, [1.0, 2.0, 2.0, 5.0, 6.0], 3, "minimize", True),  # tied at the cut: all tied values continue
        (5.0, [1.0, 2.0, 3.0, 4.0, 6.0], 3, "maximize", True),
        (4.0, [1.0, 2.0, 3.0, 5.0, 6.0], 3, "maximize", False),
        (NAN, [], 3, "minimize", False),  # NaN stops, even the first
        (2.0, [1.0, NAN, NAN, NAN, NAN], 3, "minimize", False),  # NaNs do not count: n = 2, not 6
        (1.0, [NAN, 5.0], 2, "minimize", True),
        (math.inf, [1.0, 2.0, 3.0], 2, "maximize", True),
        (-math.inf, [1.0, 2.0, 3.0], 2, "maximize", False),
    ],
)
def test_asha_continues_only_the_top_of_each_rung(
    value: float, earlier: list[float], eta: int, direction: str, continues: bool
) -> None:
    assert asha_continues(value, earlier, eta, direction) is continues


def test_a_stop_says_where_and_why_in_one_sentence() -> None:
    def arriving_last(trial: int) -> dict[int, list[tuple[int, float]]]:
        return {30: [(t, float(t)) for t in range(9) if t != trial] + [(trial, float(trial))]}

    decision = decide(Rule("asha", 3, (10, 30, 90)), arriving_last(6), trial=6, step=30)
    assert decision == Decision(
        False, 30, 7, 9, "stopped at rung 30: 7th of 9 values, only the top 3 continue (eta 3)", 6
    )
    kept = decide(Rule("asha", 3, (10, 30, 90)), arriving_last(1), trial=1, step=30)
    assert kept.reason == "continues past rung 30: 2nd of 9 values, only the top 3 continue (eta 3)"
    first = decide(Rule("asha", 3, (10, 30, 90)), {10: [(4, 0.5)]}, trial=4, step=10)
    assert (
        first.reason
        == "continues past rung 10: 1st of 1 value, only the best continues until the rung holds 3 values (eta 3)"
    )
    nan = decide(Rule("asha", 3, (10, 30)), {10: [(4, NAN)]}, trial=4, step=10)
    assert (nan.continue_, nan.reason) == (False, "stopped at rung 10: its value is NaN")


def test_a_decision_ignores_values_that_arrived_after_the_trials_own() -> None:
    rule = Rule("asha", 2, (1, 2))
    later = {1: [(0, 5.0), (1, 1.0), (2, 1.0), (3, 0.5)]}
    assert decide(rule, later, trial=0, step=1).continue_  # it was first when it arrived
    assert decide(rule, later, trial=2, step=1).continue_  # 2nd of 3, top 1, but tied with the best
    second = decide(rule, later, trial=1, step=1)
    assert (second.continue_, second.rank, second.of) == (True, 1, 2)


def test_decide_refuses_a_step_that_is_not_a_rung_or_a_trial_that_recorded_nothing() -> None:
    rule = Rule("asha", 3, (1, 3))
    with pytest.raises(ValueError, match="step 2 is not a rung"):
        decide(rule, {2: [(0, 1.0)]}, trial=0, step=2)
    with pytest.raises(ValueError, match="trial 5 has no value recorded at rung 3"):
        decide(rule, {3: [(0, 1.0)]}, trial=5, step=3)


def test_no_rule_never_stops() -> None:
    decision = decide(Rule("none"), {3: [(0, 0.0), (1, 99.0)]}, trial=1, step=3)
    assert (decision.continue_, decision.reason) == (True, "continues past rung 3: no stopping rule")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"name": "asha2"}, "unknown stopping rule"),
        ({"name": "asha", "eta": 1, "rungs": (1,)}, "eta is 1"),
        ({"name": "asha", "rungs": ()}, "give one or more positive step counts"),
        ({"name": "asha", "rungs": (0, 3)}, "give one or more positive step counts"),
        ({"name": "asha", "rungs": (3, 3)}, "they must increase"),
        ({"name": "median", "rungs": (1,), "warmup": -1}, "warmup is -1"),
        ({"name": "asha", "rungs": (1,), "directions": ("min",)}, "directions are"),
        ({"name": "asha", "rungs": (1,), "directions": ()}, "directions are"),
        ({"name": "median", "rungs": (1,), "directions": ("minimize", "minimize")}, "one objective"),
    ],
)
def test_a_rule_with_impossible_settings_is_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rule(**settings)  # type: ignore[arg-type]


# -- the median rule ----------------------------------------------------------------------------------------------


def _median(
    value: float, others: list[float], direction: str = "minimize", warmup: int = 0, step: int = 10
) -> Decision:
    rung = [(t, v) for t, v in enumerate(others)] + [(len(others), value)]
    return decide(
        Rule("median", 3, (10, 20), warmup, (direction,)), {step: rung}, trial=len(others), step=step
    )


@pytest.mark.parametrize(
    ("value", "others", "direction", "continues"),
    [
        (2.5, [1.0, 2.0, 3.0], "minimize", False),
        (2.0, [1.0, 2.0, 3.0], "minimize", True),  # equal to the median is not worse
        (1.5, [1.0, 2.0, 3.0], "minimize", True),
        (2.6, [1.0, 2.0, 3.0, 4.0], "minimize", False),  # an even count: the mean of the middle two
        (2.5, [1.0, 2.0, 3.0, 4.0], "minimize", True),
        (1.5, [1.0, 2.0, 3.0], "maximize", False),
        (2.5, [1.0, 2.0, 3.0], "maximize", True),
        (9.0, [], "minimize", True),  # nobody to compare with
        (9.0, [NAN, NAN], "minimize", True),  # NaNs are left out
        (2.5, [1.0, NAN, 2.0, 3.0, NAN, NAN], "minimize", False),  # ... so the median is 2, not NaN's
        (NAN, [1.0, 2.0], "minimize", False),
    ],
)
def test_the_median_rule_stops_a_value_worse_than_the_others_median(
    value: float, others: list[float], direction: str, continues: bool
) -> None:
    assert _median(value, others, direction).continue_ is continues


def test_the_median_rule_stops_nobody_during_warmup_and_says_why() -> None:
    assert _median(9.0, [1.0, 2.0, 3.0], warmup=1, step=10).continue_
    stopped = _median(9.0, [1.0, 2.0, 3.0], warmup=1, step=20)
    assert (
        stopped.reason
        == "stopped at rung 20: its value 9 is worse than the median 2 of the 3 other values there (4th of 4)"
    )
    assert (stopped.continue_, stopped.rank, stopped.of) == (False, 4, 4)


# -- Hyperband ----------------------------------------------------------------------------------------------------


def _trials_in(bracket: int, n_brackets: int, count: int) -> list[int]:
    return [t for t in range(10_000) if bracket_of(t, n_brackets, 3) == bracket][:count]


def test_hyperband_brackets_take_the_papers_shares_of_trials() -> None:
    counts = [0, 0, 0, 0]
    for trial in range(49_000):
        counts[bracket_of(trial, 4, 3)] += 1
    shares = [27, 12, 6, 4]  # ceil(4 * 3**s / (s + 1)) for s = 3, 2, 1, 0
    assert all(abs(c / 49_000 - s / 49) < 0.01 for c, s in zip(counts, shares))


def test_hyperband_decides_in_each_bracket_over_that_brackets_trials_only() -> None:
    rule = Rule("hyperband", 3, (1, 3, 9))
    late = _trials_in(2, 4, 1)[0]
    *others, newcomer = _trials_in(0, 4, 6)
    rung_3 = [(t, 1.0) for t in others] + [(late, 50.0)]
    early = decide(rule, {3: rung_3}, trial=late, step=3)
    assert (
        early.continue_
        and early.reason == "continues past rung 3: its bracket 2 takes its first decision at rung 9"
    )

    rung_9 = [(t, 1.0) for t in others] + [(late, 50.0)]
    alone = decide(rule, {9: rung_9}, trial=late, step=9)
    assert alone.continue_ and (alone.rank, alone.of) == (1, 1)  # bracket 0's better values do not compete
    beaten = decide(rule, {9: [*rung_9, (newcomer, 2.0)]}, trial=newcomer, step=9)
    assert not beaten.continue_  # bracket 0 already holds 5 values, all better; its 6th keeps 2
    assert (
        beaten.reason
        == "stopped at rung 9 (bracket 0): 6th of 6 values in its bracket, only the top 2 continue (eta 3)"
    )


def test_hyperbands_last_bracket_runs_every_trial_to_the_end() -> None:
    rule = Rule("hyperband", 3, (1, 3, 9))
    last, *better = _trials_in(3, 4, 4)
    rung_9 = [(t, 1.0) for t in better] + [(last, 99.0)]
    decision = decide(rule, {9: rung_9}, trial=last, step=9)
    assert (decision.continue_, decision.reason) == (
        True,
        "continues past rung 9: its bracket 3 stops no trial",
    )


# -- several objectives -------------------------------------------------------------------------------------------


def test_nondominated_fronts_sort_known_vectors() -> None:
    a, b, c, d, e, f = (1, 5), (2, 2), (5, 1), (3, 3), (4, 4), (6, 6)
    vectors = [f, a, d, b, e, c, b]
    assert nondominated_fronts(vectors, ("minimize", "minimize")) == [[1, 3, 5, 6], [2], [4], [0]]
    assert nondominated_fronts(vectors, ("maximize", "maximize")) == [[0], [1, 4, 5], [2], [3, 6]]
    assert nondominated_fronts([(1, 1), (1, 2), (1, 1)], ("minimize", "minimize")) == [[0, 2], [1]]
    assert nondominated_fronts([], ("minimize",)) == []


def test_crowding_distance_of_a_2d_front_by_hand() -> None:
    # Objective 1 spans 1..5, objective 2 spans 1..5. (2, 3): gaps (4 - 1) / 4 and (5 - 2) / 4 = 1.5;
    # (4, 2): gaps (5 - 2) / 4 and (3 - 1) / 4 = 1.25; the ends of either sort are infinite.
    front = [(4, 2), (1, 5), (5, 1), (2, 3)]
    assert crowding_distance(front) == [1.25, math.inf, math.inf, 1.5]
    assert crowding_distance([(1, 1), (2, 2)]) == [math.inf, math.inf]
    assert crowding_distance([(1, 3), (1, 2), (1, 1)]) == [
        math.inf,
        1.0,
        math.inf,
    ]  # objective 1 is flat and adds nothing; objective 2 adds (3 - 1) / 2


def _mo_rung(
    order: Sequence[int], vectors: dict[int, tuple[float, float]]
) -> dict[int, list[tuple[int, object]]]:
    return {5: [(t, vectors[t]) for t in order]}


MO_VECTORS: dict[int, tuple[float, float]] = {
    0: (1.0, 5.0),  # front 1, an end
    1: (5.0, 1.0),  # front 1, the other end
    2: (4.0, 4.0),  # front 2: (3, 3) dominates it
    3: (1.5, 4.9),  # front 1, crowded next to trial 0: distance 0.5 + 0.5 = 1.0
    4: (3.0, 3.0),  # front 1, alone in the middle: distance 0.875 + 0.975 = 1.85
    5: (6.0, 6.0),  # front 3
}


def test_mo_asha_keeps_the_first_fronts_and_breaks_the_cut_by_crowding_distance() -> None:
    rule = Rule("asha", 2, (5,), directions=("minimize", "minimize"))
    spread = decide(rule, _mo_rung([0, 1, 2, 3, 5, 4], MO_VECTORS), trial=4, step=5)
    assert (spread.continue_, spread.rank, spread.of) == (True, 3, 6)
    assert (
        "3rd of 6 values (Pareto front 1, then crowding distance), only the top 3 continue" in spread.reason
    )
    crowded = decide(rule, _mo_rung([0, 1, 2, 4, 5, 3], MO_VECTORS), trial=3, step=5)
    assert (crowded.continue_, crowded.rank) == (False, 4)  # in the first front, but the most crowded of it
    dominated = decide(rule, _mo_rung([0, 1, 3, 4, 5, 2], MO_VECTORS), trial=2, step=5)
    assert (dominated.continue_, dominated.rank) == (False, 5)
    # Two ends of the front, both infinitely far: arrival order decides.
    assert not decide(rule, _mo_rung([0, 1], MO_VECTORS), trial=1, step=5).continue_
    assert decide(rule, _mo_rung([1, 0], MO_VECTORS), trial=1, step=5).continue_


def test_mo_asha_follows_each_objectives_direction() -> None:
    flipped = {t: (a, -b) for t, (a, b) in MO_VECTORS.items()}
    rule = Rule("asha", 2, (5,), directions=("minimize", "maximize"))
    for order in ([0, 1, 2, 3, 5, 4], [0, 1, 2, 4, 5, 3], [0, 1, 3, 4, 5, 2]):
        mine = decide(rule, _mo_rung(order, flipped), trial=order[-1], step=5)
        same = decide(
            Rule("asha", 2, (5,), directions=("minimize",) * 2), _mo_rung(order, MO_VECTORS), order[-1], 5
        )
        assert (mine.continue_, mine.rank) == (same.continue_, same.rank)


def test_mo_asha_stops_a_nan_vector_and_leaves_nan_vectors_out() -> None:
    rule = Rule("asha", 2, (5,), directions=("minimize", "minimize"))
    assert not decide(rule, {5: [(0, (NAN, 1.0))]}, trial=0, step=5).continue_
    rung = [(0, (NAN, 0.0)), (1, (0.0, NAN)), (2, (9.0, 9.0))]
    assert (decide(rule, {5: rung}, trial=2, step=5).rank, decide(rule, {5: rung}, trial=2, step=5).of) == (
        1,
        1,
    )


# -- replay -------------------------------------------------------------------------------------------------------


def test_replay_never_reports_or_counts_a_stopped_trial_again() -> None:
    arrivals = [
        (0, 1, 1.0),
        (1, 1, 5.0),  # 2nd of 2 at eta 2: stopped
        (1, 3, 0.1),  # a stopped trial's later value: neither decided nor counted
        (0, 3, 2.0),
        (2, 1, 0.5),
        (2, 3, 1.5),  # 1st of 2 at rung 3 without trial 1's 0.1 (2nd of 3 with it)
    ]
    decisions = replay(Rule("asha", 2, (1, 3)), arrivals)
    assert [(d.trial, d.rung, d.continue_) for d in decisions] == [
        (0, 1, True),
        (1, 1, False),
        (0, 3, True),
        (2, 1, True),
        (2, 3, True),
    ]


def test_replay_refuses_a_trial_that_arrives_twice_at_a_rung() -> None:
    with pytest.raises(ValueError, match="trial 0 arrives twice at rung 1"):
        replay(Rule("asha", 2, (1, 3)), [(0, 1, 1.0), (0, 1, 2.0)])
