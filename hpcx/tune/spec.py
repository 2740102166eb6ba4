"""The study spec of `hpcx tune SPEC.yaml`: a YAML document (loaded by the caller) checked into frozen data.

The spec follows the sweep spec's conventions (``name``, ``kind``, ``resources``, ``command`` with ``{name}``
placeholders, ``variables``, ``seed``, ``max_parallel``) and adds the search space (:mod:`hpcx.tune.space`), the
objectives, the budget, the sampler, the early-stopping rule and the workers. Every bad input is refused by
:func:`parse_study` with one :class:`StudyError` (exit 2) naming the key path, the value, the limit and the fix.
:meth:`StudySpec.to_dict` is the canonical form written into the study's run directory; :func:`spec_digest`
compares it on ``--resume``. Pure: no I/O, and Optuna is not imported (its samplers' rules are restated here).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from hpcx.errors import UsageError
from hpcx.rundir.tasks import placeholders
from hpcx.spec.values import check_token, format_time, parse_time_min
from hpcx.submit.sweeps import MAX_TASKS, check_max_parallel
from hpcx.tune.space import (
    TRIAL_FIELDS,
    Param,
    StudyError,
    active,
    grid_size,
    grid_values,
    known_keys,
    mapping,
    number,
    parse_space,
    whole,
)

__all__ = [
    "Budget",
    "Objective",
    "Param",
    "Sampler",
    "Stopping",
    "StudyError",
    "StudySpec",
    "active",
    "grid_size",
    "grid_values",
    "parse_study",
    "rungs_of",
    "spec_digest",
]

STUDY_VERSION = 1  # the newest study spec this hpcx reads
SPEC_KEYS = (
    *("version", "name", "kind", "resources", "command", "variables", "space", "objectives", "budget"),
    *("sampler", "stopping", "workers", "seed", "max_parallel"),
)
SAMPLERS = ("random", "grid", "tpe", "gp", "nsga2")
RULES = ("none", "asha", "hyperband", "median")
DIRECTIONS = ("minimize", "maximize")
PER_TRIAL = "per-trial"  # workers: one array task per trial
DEFAULT_WORKERS = 4
DEFAULT_ETA = 3
DEFAULT_WARMUP = 0  # the median rule's first rungs where it stops nobody
# Optuna's samplers seed numpy's RandomState, which takes 0 .. 2**32 - 1 only.
MAX_SEED = 2**32 - 1
# The options each sampler passes on to Optuna (the data ones: callables cannot be written in YAML), by type.
SAMPLER_OPTIONS: dict[str, dict[str, str]] = {
    "random": {},
    "grid": {},
    "tpe": {
        "n_startup_trials": "count",
        "n_ei_candidates": "positive",
        "multivariate": "flag",
        "group": "flag",
        "constant_liar": "flag",
        "warn_independent_sampling": "flag",
    },
    "gp": {
        "n_startup_trials": "count",
        "deterministic_objective": "flag",
        "warn_independent_sampling": "flag",
    },
    "nsga2": {
        "population_size": "population",
        **dict.fromkeys(("mutation_prob", "crossover_prob", "swapping_prob"), "probability"),
    },
}
_OPTION_TYPES = {  # type -> (what it is, an example, the check)
    "count": ("a whole number >= 0", "10", lambda v: whole(v) and v >= 0),
    "positive": ("a whole number >= 1", "24", lambda v: whole(v) and v >= 1),
    "population": ("a whole number >= 2", "50", lambda v: whole(v) and v >= 2),
    "flag": ("true or false", "true", lambda v: isinstance(v, bool)),
    "probability": (
        "a number from 0 to 1",
        "0.5",
        lambda v: isinstance(v, (int, float)) and number(v) is not None and 0 <= v <= 1,
    ),
}
_RULE_KEYS = {
    "none": ("rule",),
    "asha": ("rule", "eta", "rungs"),
    "hyperband": ("rule", "eta"),
    "median": ("rule", "eta", "rungs", "warmup"),
}


@dataclass(frozen=True)
class Objective:
    """A metric the trials log, and whether smaller or larger is better."""

    metric: str
    direction: str = "minimize"


@dataclass(frozen=True)
class Budget:
    """``trials`` in all; the resource levels (steps, epochs) from which early stopping may act and where a trial
    ends; each worker's wall time as Slurm writes it (None: the job's own)."""

    trials: int
    resource_min: int | None = None
    resource_max: int | None = None
    time: str | None = None

    @property
    def time_min(self) -> int | None:
        """Each worker's wall time in whole minutes."""
        return parse_time_min(self.time) if self.time else None


@dataclass(frozen=True)
class Sampler:
    """An Optuna sampler by name, its seed (the study's when the spec gives none) and its options."""

    name: str
    seed: int
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stopping:
    """The early-stopping rule: ``eta`` (at each rung the best 1/eta go on), ``rungs`` when the spec lists them
    (else derived: :func:`rungs_of`), and for median ``warmup``, its first rungs where it stops nobody."""

    rule: str = "none"
    eta: int | None = None
    rungs: tuple[int, ...] = ()
    warmup: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule}
        if self.eta is not None:
            out["eta"] = self.eta
        if self.rungs:
            out["rungs"] = list(self.rungs)
        if self.warmup is not None:
            out["warmup"] = self.warmup
        return out


@dataclass(frozen=True)
class StudySpec:
    """A checked study spec; ``space`` in suggest order; ``workers`` None means one array task per trial."""

    name: str
    kind: str
    command: tuple[str, ...]
    space: tuple[Param, ...]
    objectives: tuple[Objective, ...]
    budget: Budget
    sampler: Sampler
    stopping: Stopping = Stopping()
    workers: int | None = DEFAULT_WORKERS
    seed: int = 0
    resources: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    max_parallel: int | None = None
    version: int = STUDY_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The canonical spec: JSON-able, keys sorted at every level, every default spelt out; read back by
        :func:`parse_study` as equal."""
        b = self.budget
        resource = {"min": b.resource_min, "max": b.resource_max} if b.resource_min is not None else None
        return _sorted_keys(
            {
                "version": self.version,
                "name": self.name,
                "kind": self.kind,
                "resources": dict(self.resources),
                "command": list(self.command),
                "variables": dict(self.variables),
                "space": {p.name: p.to_dict() for p in self.space},
                "objectives": [{"metric": o.metric, "direction": o.direction} for o in self.objectives],
                "budget": {"trials": b.trials, "resource": resource, "time": b.time},
                "sampler": {**self.sampler.options, "name": self.sampler.name, "seed": self.sampler.seed},
                "stopping": self.stopping.to_dict(),
                "workers": PER_TRIAL if self.workers is None else self.workers,
                "seed": self.seed,
                "max_parallel": self.max_parallel,
            }
        )


def _sorted_keys(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order (lists keep theirs: a choice's order is its meaning)."""
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def canonical_json(spec: StudySpec) -> str:
    """The canonical spec as JSON text: sorted keys, no spaces, so equal specs give equal bytes."""
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_digest(spec: StudySpec) -> str:
    """sha256 (hex) of the canonical JSON: two specs mean the same study exactly when their digests agree."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def parse_study(doc: Any) -> StudySpec:
    """Check a study document (the YAML already loaded) and return the spec; raise StudyError naming the key path,
    the value, the limit and the fix for the first bad input."""
    doc = mapping("the study spec", doc, "give name:, command:, space:, objectives: and budget: keys")
    known_keys("the study spec", doc, SPEC_KEYS)
    version = _version(doc.get("version"))
    for key in ("name", "command", "space", "objectives", "budget"):
        if doc.get(key) is None:
            raise StudyError(f"the study spec needs {key}:", hint=_NEEDED[key])
    space = parse_space(doc["space"])
    objectives = _objectives(doc["objectives"])
    budget = _budget(doc["budget"])
    seed = _seed("seed", doc.get("seed", 0))
    return StudySpec(
        name=_plain("name", doc["name"]),
        kind=_plain("kind", doc.get("kind", "serial")),
        command=_command(doc["command"], space),
        space=space,
        objectives=objectives,
        budget=budget,
        sampler=_sampler(doc.get("sampler", "tpe"), seed, space),
        stopping=_stopping(doc.get("stopping"), budget, objectives),
        workers=_workers(doc.get("workers"), budget.trials),
        seed=seed,
        resources=_resources(doc.get("resources"), budget),
        variables={
            str(k): str(v) for k, v in mapping("variables", doc.get("variables") or {}, _VARS).items()
        },
        max_parallel=_max_parallel(doc.get("max_parallel")),
        version=version,
    )


_VARS = "e.g. variables: {conda_env: torch}"
_NEEDED = {
    "name": "e.g. name: lr-search (letters, digits and . _ + : @ -)",
    "command": 'e.g. command: [python, train.py, --lr, "{lr}"]',
    "space": "e.g. space: {lr: {float: [1.0e-5, 0.1], log: true}}",
    "objectives": "e.g. objectives: [{metric: val_loss, direction: minimize}]",
    "budget": "e.g. budget: {trials: 64, resource: {min: 10, max: 810}}",
}


def _version(raw: Any) -> int:
    if raw is None:
        return STUDY_VERSION
    if not whole(raw) or raw < 1:
        raise StudyError(
            f"version {raw!r} must be a whole number >= 1", hint="write version: 1, or leave it out"
        )
    if raw > STUDY_VERSION:
        raise StudyError(
            f"version {raw} of the study spec is newer than this hpcx reads (version {STUDY_VERSION} at most)",
            hint="upgrade hpcx (pip install --upgrade 'hpcx[tune]'), or write the spec for version 1",
        )
    return int(raw)


def _plain(key: str, raw: Any) -> str:
    """A name that goes on an #SBATCH line (the job name) or names a job kind: one plain token."""
    hint = "use letters, digits and . _ + : @ - only, starting with a letter or digit"
    if not isinstance(raw, str):
        raise StudyError(f"{key} {raw!r} is not a plain name", hint=hint)
    try:
        return str(check_token(key, raw))
    except UsageError as exc:
        raise StudyError(f"{key} {raw!r} is not a plain name", hint=hint) from exc


def _command(raw: Any, space: tuple[Param, ...]) -> tuple[str, ...]:
    """The command as a sweep's: a list of words or one string; every {name} names a parameter, {trial}, {seed}."""
    example = 'e.g. command: [python, train.py, --lr, "{lr}"]'
    try:
        words = shlex.split(raw) if isinstance(raw, str) else raw
    except ValueError as exc:  # an unclosed quote
        raise StudyError(f"command {raw!r} cannot be split into words: {exc}", hint=example) from exc
    if not words or not isinstance(words, list):
        raise StudyError(f"command {raw!r} needs a list of words or one string", hint=example)
    for word in words:
        if isinstance(word, bool) or word is None:  # YAML reads true/yes/on/no/off/null as values
            raise StudyError(
                f"command word {word!r} is not text: YAML read true/false/yes/no/on/off/null as a value",
                hint='quote the word to pass it as text, e.g. command: [train.py, --flag, "yes"]',
            )
        if not isinstance(word, (str, int, float)):
            raise StudyError(f"command word {word!r} is not one word", hint=example)
    command = tuple(str(w) for w in words)
    names = {p.name: p for p in space}
    for word in command:
        for name in placeholders(word):
            _check_placeholder(word, name, names)
    return command


def _check_placeholder(word: str, name: str, params: dict[str, Param]) -> None:
    if name in TRIAL_FIELDS:
        return
    if name not in params:
        defined = [*params, *TRIAL_FIELDS]
        raise StudyError(
            f"command word {word!r} uses {{{name}}}, which no parameter defines",
            hint=f"defined: {', '.join('{' + n + '}' for n in defined)}; "
            "write {{ for a literal brace ({{name}} gives {name})",
        )
    if params[name].when:
        raise StudyError(
            f"command word {word!r} uses {{{name}}}, but {name} is conditional (when: {params[name].when}): "
            "the trials where it is inactive have no value for it",
            hint=f"read {name} in the program through hpcx.tune.trial(), or drop its when:",
        )


def _objectives(raw: Any) -> tuple[Objective, ...]:
    items = [raw] if isinstance(raw, dict) else raw
    example = "e.g. objectives: [{metric: val_loss, direction: minimize}]"
    if not isinstance(items, list) or not items:
        raise StudyError(f"objectives {raw!r} needs one or more {{metric, direction}}", hint=example)
    out: list[Objective] = []
    for i, item in enumerate(items):
        path = f"objectives[{i}]"
        known_keys(path, mapping(path, item, example), ("metric", "direction"))
        metric, direction = item.get("metric"), item.get("direction", "minimize")
        if not isinstance(metric, str) or not metric.strip():
            raise StudyError(f"{path}.metric {metric!r} must name a logged metric", hint=example)
        if direction not in DIRECTIONS:
            raise StudyError(f"{path}.direction {direction!r} is minimize or maximize", hint=example)
        if any(o.metric == metric for o in out):
            raise StudyError(f"{path}.metric {metric!r} appears twice", hint="give each metric once")
        out.append(Objective(metric, direction))
    return tuple(out)


def _budget(raw: Any) -> Budget:
    example = 'e.g. budget: {trials: 64, resource: {min: 10, max: 810}, time: "04:00:00"}'
    known_keys("budget", mapping("budget", raw, example), ("trials", "resource", "time"))
    trials = raw.get("trials")
    if not whole(trials) or not 1 <= trials <= MAX_TASKS:
        raise StudyError(
            f"budget.trials {trials!r} must be a whole number from 1 to {MAX_TASKS}",
            hint="e.g. trials: 64 (the study runs 64 configurations in all)",
        )
    low: Any = None
    high: Any = None
    if raw.get("resource") is not None:
        resource = mapping("budget.resource", raw["resource"], example)
        known_keys("budget.resource", resource, ("min", "max"))
        low, high = resource.get("min"), resource.get("max")
        if not whole(low) or low < 1 or not whole(high) or high < low:
            raise StudyError(
                f"budget.resource min {low!r} and max {high!r} must be whole numbers with 1 <= min <= max",
                hint="e.g. resource: {min: 10, max: 810} (steps or epochs: stopping acts from min, a trial ends at max)",
            )
    return Budget(trials, low, high, _time("budget.time", raw.get("time")))


def _time(key: str, raw: Any) -> str | None:
    """A Slurm time in Slurm's own spelling (D-HH:MM:SS or HH:MM:SS), None when not given."""
    if raw is None:
        return None
    try:
        minutes = parse_time_min(
            raw if isinstance(raw, (str, int)) and not isinstance(raw, bool) else repr(raw)
        )
    except UsageError as exc:
        raise StudyError(
            f"{key} {raw!r} is not a positive Slurm time",
            hint='use MM, HH:MM:SS or D-HH:MM:SS, e.g. "04:00:00"',
        ) from exc
    return format_time(minutes)


def _seed(key: str, raw: Any) -> int:
    if not whole(raw) or not 0 <= raw <= MAX_SEED:
        raise StudyError(
            f"{key} {raw!r} must be a whole number from 0 to {MAX_SEED} (Optuna's samplers take no other)",
            hint=f"e.g. {key.split('.')[-1]}: 7",
        )
    return int(raw)


def _sampler(raw: Any, seed: int, space: tuple[Param, ...]) -> Sampler:
    body = (
        {"name": raw}
        if isinstance(raw, str)
        else mapping("sampler", raw, "e.g. sampler: {name: tpe, seed: 1}")
    )
    name = body.get("name")
    if name not in SAMPLERS:
        raise StudyError(f"sampler {name!r} is not one hpcx offers", hint=f"use one of {', '.join(SAMPLERS)}")
    known_keys(f"sampler {name}", body, ("name", "seed", *SAMPLER_OPTIONS[name]))
    options = {k: v for k, v in body.items() if k not in ("name", "seed")}
    for key, value in options.items():
        what, example, fits = _OPTION_TYPES[SAMPLER_OPTIONS[name][key]]
        if not fits(value):
            raise StudyError(
                f"sampler.{key} {value!r} must be {what}",
                hint=f"e.g. sampler: {{name: {name}, {key}: {example}}}",
            )
    if options.get("group") and options.get("multivariate") is False:
        raise StudyError(
            "sampler.group true needs multivariate TPE, but multivariate is false",
            hint="set multivariate: true, or drop group",
        )
    floats = [p.name for p in space if grid_values(p) is None]
    if name == "grid" and floats:
        raise StudyError(
            f"sampler grid cannot enumerate float parameter(s) {', '.join(floats)}",
            hint="give each as {choice: [...]} or an {int: [low, high], step: s}, or use another sampler",
        )
    return Sampler(str(name), _seed("sampler.seed", body.get("seed", seed)), options)


def _stopping(raw: Any, budget: Budget, objectives: tuple[Objective, ...]) -> Stopping:
    body: dict[Any, Any] = raw if isinstance(raw, dict) else {"rule": "none" if raw is None else raw}
    rule = body.get("rule")
    if rule not in RULES:
        raise StudyError(
            f"stopping {rule!r} is not a rule hpcx offers",
            hint=f"use one of {', '.join(RULES)}, e.g. stopping: asha or {{rule: asha, eta: 3}}",
        )
    known_keys(f"stopping {rule}", body, _RULE_KEYS[rule])
    if rule == "none":
        return Stopping()
    low, high = _check_rule_fits(rule, budget, objectives)
    eta = body.get("eta", DEFAULT_ETA)
    if not whole(eta) or eta < 2:
        raise StudyError(
            f"stopping.eta {eta!r} must be a whole number >= 2",
            hint="e.g. eta: 3 (a third of the trials at a rung go on to the next)",
        )
    stopping = Stopping(rule, eta, _rungs(body.get("rungs"), low, high))
    if rule != "median":
        return stopping
    return Stopping(rule, eta, stopping.rungs, _warmup(body.get("warmup", DEFAULT_WARMUP), stopping, budget))


def _warmup(warmup: Any, stopping: Stopping, budget: Budget) -> int:
    """The median rule's warm-up: its first rungs, where it stops nobody; fewer than it has rungs."""
    rungs = rungs_of(stopping, budget)
    if not whole(warmup) or not 0 <= warmup < len(rungs):
        raise StudyError(
            f"stopping.warmup {warmup!r} must be a whole number from 0 to {len(rungs) - 1}: the median rule "
            f"decides at {len(rungs)} rung(s) {list(rungs)} and stops nobody at the first warmup of them",
            hint="e.g. warmup: 1, or add rungs (a larger budget.resource max, a smaller eta)",
        )
    return int(warmup)


def _check_rule_fits(rule: str, budget: Budget, objectives: tuple[Objective, ...]) -> tuple[int, int]:
    """Resource min and max, once budget.resource leaves a rung below max; several objectives take asha only."""
    low, high = budget.resource_min, budget.resource_max
    if low is None or high is None:
        raise StudyError(
            f"stopping {rule} needs budget.resource: the steps at which it may stop a trial",
            hint="add e.g. budget: {resource: {min: 10, max: 810}}, or set stopping: none",
        )
    if low >= high:
        raise StudyError(
            f"a budget below one rung: budget.resource min {low} and max {high} leave stopping {rule} "
            "no step below max to decide at",
            hint=f"raise max above min (e.g. max: {low * DEFAULT_ETA**4}), or set stopping: none",
        )
    if len(objectives) > 1 and rule != "asha":
        raise StudyError(
            f"stopping {rule} ranks one objective, but the study has {len(objectives)}",
            hint="use stopping: asha (non-dominated sorting at each rung) or none, or keep one objective",
        )
    return low, high


def _rungs(raw: Any, low: int, high: int) -> tuple[int, ...]:
    """Explicit rungs: whole numbers, increasing, each in [resource min, resource max)."""
    if raw is None:
        return ()
    fits = isinstance(raw, list) and raw and all(whole(r) for r in raw)
    if not fits or any(b <= a for a, b in zip(raw, raw[1:])) or raw[0] < low or raw[-1] >= high:
        raise StudyError(
            f"stopping.rungs {raw!r} must be whole numbers, increasing, from budget.resource min {low} "
            f"to below max {high}",
            hint=f"e.g. rungs: [{low}, {low * DEFAULT_ETA}], or leave rungs out (min * eta^k below max)",
        )
    return tuple(raw)


def rungs_of(stopping: Stopping, budget: Budget) -> tuple[int, ...]:
    """The resource levels (steps) where the rule decides: the spec's rungs, else min * eta^k (k = 0, 1, ...)
    below budget.resource max; () for stopping none."""
    if stopping.rule == "none":
        return ()
    if stopping.rungs:
        return stopping.rungs
    low, high, eta = budget.resource_min, budget.resource_max, stopping.eta
    if low is None or high is None or eta is None or low >= high or eta < 2:
        raise StudyError(
            f"stopping {stopping.rule} with eta {eta} has no rung in budget.resource [{low}, {high})",
            hint="give budget.resource with min < max and eta >= 2",
        )
    rungs = []
    level = low
    while level < high:
        rungs.append(level)
        level *= eta
    return tuple(rungs)


def _workers(raw: Any, trials: int) -> int | None:
    if raw == PER_TRIAL:
        return None
    if raw is None:
        return min(DEFAULT_WORKERS, trials)
    if not whole(raw) or not 1 <= raw <= trials:
        raise StudyError(
            f"workers {raw!r} must be a whole number from 1 to budget.trials {trials}, or {PER_TRIAL}",
            hint=f"e.g. workers: {min(DEFAULT_WORKERS, trials)} (array tasks that each run trial after trial), "
            f"or workers: {PER_TRIAL} (one array task per trial)",
        )
    return int(raw)


def _max_parallel(raw: Any) -> int | None:
    if raw is not None:
        check_max_parallel("max_parallel", raw, StudyError)
    return raw


def _resources(raw: Any, budget: Budget) -> dict[str, Any]:
    """The job's resources as a sweep passes them on (checked at submission); here: a mapping of plain values,
    and one wall time, not two that disagree."""
    example = 'e.g. resources: {time: "01:00:00", cpus_per_task: 4}'
    resources = mapping("resources", raw if raw is not None else {}, example)
    for key, value in resources.items():
        if not isinstance(key, str) or isinstance(value, (dict, list)):
            raise StudyError(f"resources.{key} {value!r} must be one value", hint=example)
    job_time = resources.get("time")
    if budget.time is not None and job_time is not None and _time("resources.time", job_time) != budget.time:
        raise StudyError(
            f"resources.time {job_time!r} and budget.time {budget.time!r} give a worker two wall times",
            hint="give the worker's wall time once, as budget.time or as resources.time",
        )
    return dict(resources)
