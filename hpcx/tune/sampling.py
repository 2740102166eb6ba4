"""Proposals from Optuna's samplers, used as a library over a study rebuilt in memory from the trial files.

There is no Optuna storage: each ask builds an in-memory study from the trials the listing gave (complete ones
with their values, stopped ones as pruned with their rung values, failed and lost ones as failed, running ones as
running, so a sampler that knows about them, TPE with its constant liar, does not propose them twice), then asks
it once. The sampler's seed is derived from the study's seed and the trial's number, and the trial records which
trials it was based on (``based_on``), so `hpcx tune --replay` rebuilds the same study and gets the same
parameters, bit for bit. Optuna is imported here only (the ``tune`` extra).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpcx.errors import UsageError
from hpcx.tune.store import Trial

if TYPE_CHECKING:
    import optuna

SAMPLERS = ("random", "grid", "tpe", "gp", "nsga2")


def optuna_module() -> Any:
    """optuna, or a UsageError naming the install command."""
    try:
        import optuna
    except ImportError:
        raise UsageError(
            "hpcx tune needs Optuna, which is not installed here", hint="pip install 'hpcx[tune]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def trial_seed(study_seed: int, number: int) -> int:
    """The sampler's seed for trial ``number``: the same for a replay, different for every trial."""
    digest = hashlib.sha256(f"hpcx-tune:{study_seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def distribution(param: Any) -> Any:
    """The Optuna distribution of one space parameter (hpcx.tune.spec.Param)."""
    dist = optuna_module().distributions
    if param.kind == "float":
        return dist.FloatDistribution(
            param.low, param.high, log=bool(param.log), step=param.step if not param.log else None
        )
    if param.kind == "int":
        return dist.IntDistribution(
            int(param.low), int(param.high), log=bool(param.log), step=int(param.step or 1)
        )
    return dist.CategoricalDistribution(tuple(param.choices))


def make_sampler(name: str, seed: int, options: Mapping[str, Any], space: Sequence[Any]) -> Any:
    """Optuna's sampler ``name`` seeded with ``seed`` (``options`` passed on as the sampler takes them)."""
    samplers = optuna_module().samplers
    opts = dict(options)
    if name == "random":
        return samplers.RandomSampler(seed=seed, **opts)
    if name == "tpe":
        return samplers.TPESampler(seed=seed, constant_liar=opts.pop("constant_liar", True), **opts)
    if name == "gp":
        return samplers.GPSampler(seed=seed, **opts)
    if name == "nsga2":
        return samplers.NSGAIISampler(seed=seed, **opts)
    raise UsageError(f"sampler {name!r} is not one of {', '.join(SAMPLERS)}")


def grid_points(space: Sequence[Any]) -> list[dict[str, Any]]:
    """Every configuration of a grid over ``space`` (choice and int parameters), in the order of the product of
    their values, a conditional parameter dropped where its parent's value makes it inactive (and the
    configurations that then repeat kept once)."""
    import itertools

    from hpcx.tune.space import active, grid_values

    points: list[dict[str, Any]] = []
    for values in itertools.product(*(grid_values(p) or () for p in space)):
        point: dict[str, Any] = {}
        for param, value in zip(space, values):
            if active(param, point):
                point[param.name] = value
        if point not in points:
            points.append(point)
    return points


def _frozen(trial: Trial, dists: Mapping[str, Any], directions: int) -> Any:
    """One trial of the files as an Optuna FrozenTrial."""
    optuna = optuna_module()
    state = optuna.trial.TrialState
    params = {k: v for k, v in trial.params.items() if k in dists}
    used = {k: dists[k] for k in params}
    rungs = (
        {int(r): float(v) for r, v in trial.rungs.items() if isinstance(v, (int, float))}
        if directions == 1
        else {}
    )
    end = trial.end or {}
    kind = {"complete": state.COMPLETE, "stopped": state.PRUNED, "failed": state.FAIL, "lost": state.FAIL}
    chosen = kind.get(str(end.get("state")), state.RUNNING)
    values = end.get("values") if chosen == state.COMPLETE else None
    return optuna.trial.create_trial(
        state=chosen, params=params, distributions=used, values=values, intermediate_values=rungs
    )


def rebuild(
    directions: Sequence[str], sampler: Any, trials: Sequence[Trial], dists: Mapping[str, Any]
) -> optuna.Study:
    """An in-memory Optuna study holding ``trials`` (in their numbers' order) and using ``sampler``."""
    optuna = optuna_module()
    study = optuna.create_study(directions=list(directions), sampler=sampler)
    study.add_trials([_frozen(t, dists, len(directions)) for t in sorted(trials, key=lambda t: t.number)])
    return study


def propose(spec: Any, trials: Mapping[int, Trial], number: int) -> tuple[dict[str, Any], list[list[Any]]]:
    """The parameters of trial ``number`` from the spec's sampler over ``trials`` (a listing), and what they
    were based on: ``[number, state]`` of every other trial as the listing showed it (running, complete, ...).
    Conditional parameters are asked only when their parents' values make them active."""
    seen = [_as_seen(t, t.state) for n, t in sorted(trials.items()) if n != number and t.doc]
    return _ask(spec, seen, number), [[t.number, t.state] for t in seen]


def replay(spec: Any, trials: Mapping[int, Trial], number: int) -> dict[str, Any]:
    """The parameters trial ``number`` gets when asked again from what it was based on (its ``based_on``: each
    trial in the state it had then; one running then counts as running, whatever it became)."""
    based = trials[number].doc.get("based_on") or []
    seen = [_as_seen(trials[int(n)], str(state)) for n, state in based if int(n) in trials]
    return _ask(spec, seen, number)


def _as_seen(trial: Trial, state: str) -> Trial:
    """``trial`` as it was when its state was ``state``: a running one had no end, and its rung values are not
    given to the sampler (only finished trials' are final)."""
    if state == "running":
        return Trial(trial.number, trial.doc)
    return trial


def _ask(spec: Any, seen: Sequence[Trial], number: int) -> dict[str, Any]:
    """Optuna's proposal; for a grid, configuration ``number`` of the grid (trial numbers are claimed once each,
    so concurrent workers cover the grid without repeating a point: Optuna's GridSampler cannot tell which
    point a rebuilt trial took)."""
    from hpcx.tune.spec import active

    if spec.sampler.name == "grid":
        points = grid_points(spec.space)
        return dict(points[number % len(points)])

    dists = {p.name: distribution(p) for p in spec.space}
    seed = trial_seed(spec.sampler.seed if spec.sampler.seed is not None else spec.seed, number)
    sampler = make_sampler(spec.sampler.name, seed, spec.sampler.options, spec.space)
    study = rebuild([o.direction for o in spec.objectives], sampler, seen, dists)
    asked = study.ask()
    params: dict[str, Any] = {}
    for param in spec.space:
        if active(param, params):
            params[param.name] = _suggest(asked, param)
    return params


def _suggest(trial: Any, param: Any) -> Any:
    if param.kind == "float":
        step = None if param.log else param.step
        return trial.suggest_float(param.name, param.low, param.high, log=bool(param.log), step=step)
    if param.kind == "int":
        return trial.suggest_int(
            param.name, int(param.low), int(param.high), step=int(param.step or 1), log=bool(param.log)
        )
    return trial.suggest_categorical(param.name, list(param.choices))
