"""Early-stopping rules for `hpcx tune`: ASHA, Hyperband's brackets, the median rule, and ASHA over several objectives.

Every decision is a pure function of the study's files. They give, per rung (a resource level: a step count), the
values that trials recorded there in arrival order (the order their rung files were created). A worker whose
trial reaches a rung records its value there, then asks :func:`decide` whether to go on. The decision looks only
at the values that arrived at that rung up to and including the trial's own, so it is the same whenever it is
taken and whoever takes it: a worker now, ``hpcx status`` later, or ``hpcx tune --replay`` from the files.

The single-objective rule is the stopping variant of asynchronous successive halving (Li et al., "A System for
Massively Parallel Hyperparameter Tuning", MLSys 2020) with the semantics of Optuna's ``SuccessiveHalvingPruner``
(``min_early_stopping_rate=0``, ``bootstrap_count=0``), choice by choice:

- a trial continues past a rung iff its value is among the top ``floor(n / eta)`` of the ``n`` values recorded
  at that rung so far, its own included;
- while ``n < eta`` (``floor(n / eta)`` is 0) only the best value so far continues, so the first trial to reach
  a rung always continues (Optuna cannot pause a trial until enough others arrive, nor can an array task);
- ties count in the trial's favour: "among the top k" means no more than ``k - 1`` values are strictly better, so
  every value equal to the k-th best continues (Optuna's ``value <= sorted(values)[k - 1]``);
- a NaN value stops its trial at once and is not a competing value for anyone (Optuna prunes it before recording
  it at the rung); ``inf`` and ``-inf`` are ordinary values.

Several objectives use MO-ASHA (Schmucker et al., "Multi-objective Asynchronous Successive Halving", 2021): the
vectors at a rung are sorted into non-dominated fronts, the fronts in order, ties inside a front broken by
NSGA-II's crowding distance (larger first) and then by arrival order; the first ``max(floor(n / eta), 1)``
continue. A vector with a NaN in it is treated as a NaN value above.

Hyperband (:func:`hyperband_brackets`, :func:`bracket_of`) runs ASHA in brackets that start deciding at later
rungs, each over its own trials only; the median rule follows Optuna's ``MedianPruner`` at rung granularity
(:func:`_median_decision` gives its differences). :func:`replay` re-derives every decision of a study from its
arrivals, for ``hpcx tune --replay`` and the tests.
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Callable, Union

Value = Union[float, tuple[float, ...]]
"""What a trial records at a rung: one float, or one float per objective."""

RungValues = Mapping[int, Sequence[tuple[int, Value]]]
"""Rung (a step count) -> [(trial number, value)] in arrival order."""

RULES = ("asha", "hyperband", "median", "none")
DIRECTIONS = ("minimize", "maximize")

BRACKET_SALT = "hpcx"
"""Hashed with the trial number into its Hyperband bracket: the assignment Optuna's ``HyperbandPruner`` makes for a
study named ``hpcx`` (see :func:`bracket_of`)."""


@dataclass(frozen=True)
class Rule:
    """An early-stopping rule's settings, as the study spec gives them.

    ``rungs`` are the step counts at which the rule decides, in increasing order. ``warmup`` is the number of
    first rungs where the median rule stops nobody. ``directions`` has one entry per objective.
    """

    name: str
    eta: int = 3
    rungs: tuple[int, ...] = ()
    warmup: int = 0
    directions: tuple[str, ...] = ("minimize",)

    def __post_init__(self) -> None:
        if self.name not in RULES:
            raise ValueError(f"unknown stopping rule {self.name!r}: use one of {', '.join(RULES)}")
        _check_directions(self.name, self.directions)
        if self.name == "none":
            return
        if not isinstance(self.eta, int) or self.eta < 2:
            raise ValueError(f"eta is {self.eta!r}: it must be an integer of at least 2")
        if not self.rungs or any(not isinstance(r, int) or r < 1 for r in self.rungs):
            raise ValueError(f"rungs are {self.rungs!r}: give one or more positive step counts")
        if any(b <= a for a, b in zip(self.rungs, self.rungs[1:])):
            raise ValueError(f"rungs are {self.rungs!r}: they must increase")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup is {self.warmup!r}: it must be a number of rungs, 0 or more")


def _check_directions(name: str, directions: tuple[str, ...]) -> None:
    if not directions or any(d not in DIRECTIONS for d in directions):
        raise ValueError(f"directions are {directions!r}: give one or more of {', '.join(DIRECTIONS)}")
    if name == "median" and len(directions) > 1:
        raise ValueError("the median rule takes one objective: use asha or hyperband for several")


@dataclass(frozen=True)
class Decision:
    """Whether a trial goes on past a rung, and why.

    ``rank`` is the trial's place (1 = best) among the ``of`` values it was judged against, its own included;
    both are 0 when no ranking was made (no rule, warm-up, a rung before its bracket's first, a NaN value).
    ``reason`` is the sentence ``hpcx status`` shows.
    """

    continue_: bool
    rung: int
    rank: int
    of: int
    reason: str
    trial: int


# -- single objective -------------------------------------------------------------------------------------------


def _better(a: float, b: float, direction: str) -> bool:
    """Whether ``a`` is strictly better than ``b``."""
    return a > b if direction == "maximize" else a < b


def _keep(n: int, eta: int) -> int:
    """How many of ``n`` values at a rung continue: ``floor(n / eta)``, and the best one while that is 0."""
    return max(n // eta, 1)


def _scalar_rank(value: float, earlier: Iterable[float], direction: str) -> tuple[int, int]:
    """(rank, n): 1 + the number of earlier values strictly better than ``value``, and how many values compete.

    NaN values among ``earlier`` do not compete; ``value`` must not be NaN.
    """
    competing = [v for v in earlier if not math.isnan(v)]
    return 1 + sum(_better(v, value, direction) for v in competing), len(competing) + 1


def asha_continues(value: float, earlier: Iterable[float], eta: int, direction: str) -> bool:
    """Whether a trial that recorded ``value`` at a rung continues past it (asynchronous successive halving).

    ``earlier`` are the values recorded at that rung before it, in any order. The trial continues iff its value
    is among the top ``max(floor(n / eta), 1)`` of the ``n`` values, its own included, ties in its favour; a NaN
    value stops it and NaN values in ``earlier`` do not count (the module docstring gives each choice).
    """
    if math.isnan(value):
        return False
    rank, n = _scalar_rank(value, earlier, direction)
    return rank <= _keep(n, eta)


# -- several objectives -----------------------------------------------------------------------------------------


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """Whether vector ``a`` dominates ``b``: no worse in every objective (by its direction) and better in one."""
    pairs = list(zip(a, b, directions))
    return not any(_better(y, x, d) for x, y, d in pairs) and any(_better(x, y, d) for x, y, d in pairs)


def nondominated_fronts(vectors: Sequence[Sequence[float]], directions: Sequence[str]) -> list[list[int]]:
    """The indices of ``vectors`` sorted into non-dominated fronts (Pareto ranks), best front first.

    The first front holds the vectors that no other dominates; each next front, those dominated only by vectors
    of the fronts before it (Deb et al.'s fast non-dominated sort, NSGA-II). Equal vectors share a front. Indices
    inside a front are in increasing order.
    """
    n = len(vectors)
    beats = [[j for j in range(n) if dominates(vectors[i], vectors[j], directions)] for i in range(n)]
    beaten = [0] * n
    for losers in beats:
        for j in losers:
            beaten[j] += 1
    fronts: list[list[int]] = []
    front = [i for i in range(n) if beaten[i] == 0]
    while front:
        fronts.append(front)
        following: list[int] = []
        for i in front:
            for j in beats[i]:
                beaten[j] -= 1
                if beaten[j] == 0:
                    following.append(j)
        front = sorted(following)
    return fronts


def crowding_distance(front: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II's crowding distance of each vector of one front (Deb et al. 2002), in the order given.

    Per objective, the front is sorted by that objective (equal values keep their order); the two ends get an
    infinite distance and every other vector adds the gap between its two neighbours divided by the objective's
    range (an objective with no range adds nothing). Directions do not matter: only gaps are measured.
    """
    distance = [0.0] * len(front)
    for objective in range(len(front[0]) if front else 0):
        order = sorted(range(len(front)), key=lambda i: front[i][objective])
        low, high = front[order[0]][objective], front[order[-1]][objective]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for before, here, after in zip(order, order[1:], order[2:]):
            distance[here] += (front[after][objective] - front[before][objective]) / (high - low)
    return distance


def _vector_rank(
    own: tuple[float, ...], earlier: Iterable[tuple[float, ...]], directions: Sequence[str]
) -> tuple[int, int, int]:
    """(rank, n, front): the trial's place when the vectors at a rung are ordered as MO-ASHA orders them.

    Fronts first; inside the trial's front, larger crowding distance first, then arrival order (the trial's own
    vector arrived last). Vectors with a NaN do not compete; ``own`` must have none.
    """
    vectors = [v for v in earlier if not any(math.isnan(x) for x in v)] + [own]
    me = len(vectors) - 1
    fronts = nondominated_fronts(vectors, directions)
    front_index = next(k for k, front in enumerate(fronts) if me in front)
    front = fronts[front_index]
    crowding = crowding_distance([vectors[i] for i in front])
    order = sorted(range(len(front)), key=lambda k: (-crowding[k], front[k]))
    ahead = sum(len(f) for f in fronts[:front_index]) + order.index(front.index(me))
    return ahead + 1, len(vectors), front_index + 1


# -- decisions --------------------------------------------------------------------------------------------------


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _scalar(value: Value) -> float:
    if isinstance(value, tuple):
        if len(value) != 1:
            raise ValueError(f"value {value!r} has {len(value)} entries: the study has one objective")
        return float(value[0])
    return float(value)


def _vector(value: Value, n_objectives: int) -> tuple[float, ...]:
    if not isinstance(value, tuple) or len(value) != n_objectives:
        raise ValueError(f"value {value!r} is not one number per objective ({n_objectives} objectives)")
    return tuple(float(x) for x in value)


def _has_nan(value: Value) -> bool:
    return any(math.isnan(x) for x in value) if isinstance(value, tuple) else math.isnan(value)


def _nan_decision(trial: int, step: int, where: str) -> Decision:
    return Decision(False, step, 0, 0, f"stopped at rung {step}{where}: its value is NaN", trial)


def _asha_decision(rule: Rule, arrived: Sequence[tuple[int, Value]], step: int, where: str) -> Decision:
    """ASHA (one objective) or MO-ASHA (several) over ``arrived``, whose last entry is the deciding trial's."""
    trial, value = arrived[-1]
    if _has_nan(value):
        return _nan_decision(trial, step, where)
    how = ""
    if len(rule.directions) == 1:
        rank, n = _scalar_rank(_scalar(value), (_scalar(v) for _, v in arrived[:-1]), rule.directions[0])
    else:
        size = len(rule.directions)
        earlier = (_vector(v, size) for _, v in arrived[:-1])
        rank, n, front = _vector_rank(_vector(value, size), earlier, rule.directions)
        how = f" (Pareto front {front}, then crowding distance)"
    keep = _keep(n, rule.eta)
    goes_on = rank <= keep
    cut = "only the best continues" if keep == 1 else f"only the top {keep} continue"
    if n < rule.eta:
        cut += f" until the rung holds {rule.eta} values"
    verb = "continues past" if goes_on else "stopped at"
    values = ("value" if n == 1 else "values") + (" in its bracket" if where else "")
    reason = f"{verb} rung {step}{where}: {_ordinal(rank)} of {n} {values}{how}, {cut} (eta {rule.eta})"
    return Decision(goes_on, step, rank, n, reason, trial)


def _bracket_budgets(n_brackets: int, eta: int) -> list[int]:
    """Hyperband's share of trials per bracket (its n_s): ``ceil(B * eta**s / (s + 1))``, most aggressive first."""
    shares = []
    for bracket in range(n_brackets):
        s = n_brackets - 1 - bracket
        shares.append(math.ceil(n_brackets * eta**s / (s + 1)))
    return shares


def bracket_of(trial: int, n_brackets: int, eta: int) -> int:
    """The Hyperband bracket of a trial, of ``n_brackets`` (:func:`hyperband_brackets` says what each does).

    Deterministic from the trial number alone, and the assignment Optuna's ``HyperbandPruner`` makes for a study
    named :data:`BRACKET_SALT`: CRC-32 of ``"hpcx_<trial>"`` modulo the sum of the brackets' shares, each bracket
    taking its share in turn. The shares are the Hyperband paper's n_s, so the aggressive brackets get more
    trials; hashing spreads consecutive trial numbers over the brackets (a plain modulo would too, but with
    equal shares).
    """
    shares = _bracket_budgets(n_brackets, eta)
    point = zlib.crc32(f"{BRACKET_SALT}_{trial}".encode()) % sum(shares)
    for bracket, share in enumerate(shares):
        point -= share
        if point < 0:
            return bracket
    raise AssertionError("unreachable: the point lies below the sum of the shares")


def hyperband_brackets(rule: Rule) -> int:
    """How many brackets Hyperband runs over the rule's rungs: one per rung, and one that stops nobody.

    Bracket b decides with ASHA from ``rungs[b]`` on (Optuna's ``min_early_stopping_rate`` b); the last bracket
    runs each of its trials to the maximum resource, as the Hyperband paper's s = 0 bracket does. With the spec's
    rungs (min * eta**k below max) and max = min * eta**len(rungs), this is Optuna's count,
    ``floor(log_eta(max / min)) + 1``.
    """
    return len(rule.rungs) + 1


def _hyperband_decision(rule: Rule, arrived: Sequence[tuple[int, Value]], step: int) -> Decision:
    """ASHA inside the trial's bracket: over the values of that bracket's trials only, from its first rung on."""
    trial = arrived[-1][0]
    n_brackets = hyperband_brackets(rule)
    bracket = bracket_of(trial, n_brackets, rule.eta)
    if bracket == len(rule.rungs):
        reason = f"continues past rung {step}: its bracket {bracket} stops no trial"
        return Decision(True, step, 0, 0, reason, trial)
    if rule.rungs.index(step) < bracket:
        first = rule.rungs[bracket]
        reason = f"continues past rung {step}: its bracket {bracket} takes its first decision at rung {first}"
        return Decision(True, step, 0, 0, reason, trial)
    same = [(t, v) for t, v in arrived if bracket_of(t, n_brackets, rule.eta) == bracket]
    return _asha_decision(rule, same, step, f" (bracket {bracket})")


def _median_decision(rule: Rule, arrived: Sequence[tuple[int, Value]], step: int) -> Decision:
    """Stop when the value is worse than the median of the other values at the rung (Optuna's MedianPruner).

    At rung granularity: the others are every trial that recorded a value at this rung before this one (Optuna
    counts completed trials only, which an asynchronous study would wait for), and the trial is judged by its
    value at the rung (Optuna takes its best value so far; here both rules judge the same number). Equal to the
    median continues; NaN stops; NaN values of others are left out; with no other value the trial continues.
    """
    trial, own = arrived[-1]
    if rule.rungs.index(step) < rule.warmup:
        return Decision(True, step, 0, 0, f"continues past rung {step}: warm-up ({rule.warmup} rungs)", trial)
    value = _scalar(own)
    if math.isnan(value):
        return _nan_decision(trial, step, "")
    others = [v for v in (_scalar(v) for _, v in arrived[:-1]) if not math.isnan(v)]
    if not others:
        return Decision(True, step, 1, 1, f"continues past rung {step}: no other value there yet", trial)
    median = statistics.median(others)
    rank, n = _scalar_rank(value, others, rule.directions[0])
    worse = _better(median, value, rule.directions[0])
    verb, compare = ("stopped at", "worse than") if worse else ("continues past", "not worse than")
    reason = (
        f"{verb} rung {step}: its value {value:.6g} is {compare} the median {median:.6g} of the {n - 1} other"
        f" values there ({_ordinal(rank)} of {n})"
    )
    return Decision(not worse, step, rank, n, reason, trial)


def _arrived_until(entries: Sequence[tuple[int, Value]], trial: int, step: int) -> list[tuple[int, Value]]:
    """The entries of a rung up to and including the trial's first one: what had arrived when it arrived."""
    for position, (number, _) in enumerate(entries):
        if number == trial:
            return list(entries[: position + 1])
    raise ValueError(f"trial {trial} has no value recorded at rung {step}: record it before deciding")


def decide(rule: Rule, rung_values: RungValues, trial: int, step: int) -> Decision:
    """Whether ``trial``, which just recorded its value at rung ``step``, goes on past it.

    ``rung_values`` gives the values recorded at each rung in arrival order, the trial's own included; values
    that arrived at the rung after the trial's are ignored, so the decision never changes once taken. Raises
    ValueError when ``step`` is not one of the rule's rungs or the trial recorded nothing there.
    """
    if rule.name == "none":
        return Decision(True, step, 0, 0, f"continues past rung {step}: no stopping rule", trial)
    if step not in rule.rungs:
        raise ValueError(
            f"step {step} is not a rung of this study (rungs: {', '.join(map(str, rule.rungs))})"
        )
    arrived = _arrived_until(rung_values.get(step, ()), trial, step)
    return _DECIDERS[rule.name](rule, arrived, step)


_DECIDERS: dict[str, Callable[[Rule, Sequence[tuple[int, Value]], int], Decision]] = {
    "asha": lambda rule, arrived, step: _asha_decision(rule, arrived, step, ""),
    "hyperband": _hyperband_decision,
    "median": _median_decision,
}


def replay(rule: Rule, arrivals: Iterable[tuple[int, int, Value]]) -> list[Decision]:
    """Every decision of a study, re-derived from its (trial, rung, value) arrivals in arrival order.

    An arrival of a trial already stopped is skipped: it is neither recorded nor decided, so a stopped trial
    reports no later rung. Raises ValueError when a trial arrives twice at one rung.
    """
    recorded: dict[int, list[tuple[int, Value]]] = {}
    stopped: set[int] = set()
    decisions: list[Decision] = []
    for trial, step, value in arrivals:
        if trial in stopped:
            continue
        entries = recorded.setdefault(step, [])
        if any(number == trial for number, _ in entries):
            raise ValueError(f"trial {trial} arrives twice at rung {step}")
        entries.append((trial, value))
        decision = decide(rule, recorded, trial, step)
        decisions.append(decision)
        if not decision.continue_:
            stopped.add(trial)
    return decisions
