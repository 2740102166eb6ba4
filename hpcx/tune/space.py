"""A study's search space: float, int and choice parameters, conditional ones, and the checks shared by the spec.

Pure: the ``space:`` mapping of a study spec in, frozen :class:`Param` values out, in the order a sampler asks
for them (parents before the parameters they condition, otherwise by name, so YAML's key order changes nothing).
Every refusal is one :class:`StudyError` naming the key path, the value, the limit and the fix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from hpcx.errors import UsageError
from hpcx.submit.sweeps import _number as _sweep_number
from hpcx.submit.sweeps import _whole as _sweep_whole

# As a sweep's parameter names: they become $HPCX_PARAM_<NAME> and {name} placeholders.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KINDS = ("float", "int", "choice")
_PARAM_KEYS = {
    "float": ("float", "log", "when"),
    "int": ("int", "log", "step", "when"),
    "choice": ("choice", "when"),
}
# Placeholders every trial defines besides its parameters: a parameter of the same name would be ambiguous.
TRIAL_FIELDS = ("seed", "trial")
_NONE = object()  # no value found (None could be one)
_EXAMPLE = (
    "e.g. lr: {float: [1.0e-5, 0.1], log: true}, layers: {int: [1, 8]}, optimizer: {choice: [adam, sgd]}"
)


class StudyError(UsageError):
    """A study spec hpcx cannot run (exit 2: nothing was written or submitted)."""


@dataclass(frozen=True)
class Param:
    """One parameter of the space: a float or int range (``log``: drawn on a log scale; ``step``: int only), or
    a choice among ``choices``; ``when`` maps parent choice parameters to the values that make it active."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: int | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The parameter as the spec writes it, every default spelt out."""
        body: dict[str, Any]
        if self.kind == "choice":
            body = {"choice": list(self.choices)}
        else:
            body = {self.kind: [self.low, self.high], "log": self.log}
            if self.kind == "int":
                body["step"] = self.step
        if self.when:
            body["when"] = {parent: list(values) for parent, values in self.when.items()}
        return body


# A whole number and a finite number as a YAML spec gives them: the sweep spec's own rules, one definition.
whole = _sweep_whole
number = _sweep_number


def mapping(path: str, value: Any, example: str) -> dict[Any, Any]:
    """``value`` when it is a mapping; else the refusal naming ``path``."""
    if not isinstance(value, dict):
        raise StudyError(f"{path} is a mapping, found {type(value).__name__} {value!r}", hint=example)
    return value


def known_keys(path: str, doc: dict[Any, Any], known: tuple[str, ...] | set[str]) -> None:
    """Refuse keys of ``doc`` outside ``known``, naming them and listing the known ones."""
    unknown = sorted(map(str, set(doc) - set(known)))
    if unknown:
        raise StudyError(
            f"unknown key(s) {', '.join(unknown)} in {path}", hint=f"known keys: {', '.join(sorted(known))}"
        )


def same(a: Any, b: Any) -> bool:
    """Two values are one: equal, and ``true`` is not ``1`` (a choice's values keep their YAML types)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def parse_space(raw: Any) -> tuple[Param, ...]:
    """The ``space:`` mapping as parameters in suggest order; refuse an empty space and every bad parameter."""
    if raw is None or raw == {}:
        raise StudyError("space has no parameters: a study searches at least one", hint=_EXAMPLE)
    params = {}
    for name, body in mapping("space", raw, _EXAMPLE).items():
        params[name] = _param(name, body)
    params = {name: replace(p, when=_check_when(p, params) or None) for name, p in params.items()}
    _check_acyclic(params)
    return _suggest_order(params)


def _param(name: Any, body: Any) -> Param:
    path = f"space.{name}"
    if not isinstance(name, str) or not _NAME.match(name) or name in TRIAL_FIELDS:
        why = f"is the trial's own {{{name}}}" if name in TRIAL_FIELDS else "is not an identifier"
        raise StudyError(
            f"space: parameter name {name!r} {why}",
            hint="use letters, digits and _, not seed or trial (a parameter becomes $HPCX_PARAM_<NAME> and {name})",
        )
    body = mapping(path, body, _EXAMPLE)
    kinds = [k for k in KINDS if k in body]
    if len(kinds) != 1:
        raise StudyError(
            f"{path} {body!r} needs exactly one of float, int or choice, found {', '.join(kinds) or 'none'}",
            hint=_EXAMPLE,
        )
    kind = kinds[0]
    known_keys(path, body, _PARAM_KEYS[kind])
    when = _when(path, body["when"]) if body.get("when") is not None else None
    if kind == "choice":
        return Param(name, kind, choices=_choices(path, body["choice"]), when=when)
    log = body.get("log", False)
    if not isinstance(log, bool):
        raise StudyError(f"{path}.log {log!r} is true or false", hint="e.g. log: true (drawn on a log scale)")
    if kind == "float":
        low, high = _float_range(path, body["float"], log)
        return Param(name, kind, low, high, log, when=when)
    low_i, high_i, step = _int_range(path, body["int"], log, body.get("step", 1))
    return Param(name, kind, low_i, high_i, log, step, when=when)


def _float_range(path: str, raw: Any, log: bool) -> tuple[float, float]:
    bounds = raw if isinstance(raw, list) and len(raw) == 2 else [None, None]
    low, high = number(bounds[0]), number(bounds[1])
    if low is None or high is None:
        raise StudyError(
            f"{path}: float {raw!r} needs [low, high], two numbers", hint="e.g. {float: [0.0, 0.5]}"
        )
    if low >= high:
        raise StudyError(
            f"{path}: float [{low}, {high}] needs low < high",
            hint="swap the bounds, or write a fixed value in the command instead of the space",
        )
    if log and low <= 0:
        raise StudyError(
            f"{path}: a log range through zero: float [{low}, {high}] with log: true needs low > 0",
            hint=f"raise low above 0, e.g. [1.0e-5, {high}], or drop log: true",
        )
    return low, high


def _int_range(path: str, raw: Any, log: bool, step: Any) -> tuple[int, int, int]:
    if not (isinstance(raw, list) and len(raw) == 2 and whole(raw[0]) and whole(raw[1])):
        raise StudyError(
            f"{path}: int {raw!r} needs [low, high], two whole numbers", hint="e.g. {int: [1, 8]}"
        )
    low, high = raw
    if low >= high:
        raise StudyError(
            f"{path}: int [{low}, {high}] needs low < high",
            hint="swap the bounds, or write a fixed value in the command instead of the space",
        )
    if not whole(step) or step < 1 or step > high - low:
        raise StudyError(
            f"{path}.step {step!r} must be a whole number from 1 to {high - low} (high - low)",
            hint="e.g. step: 2 draws low, low + 2, ... (a step beyond the range leaves one value)",
        )
    if log and low < 1:
        raise StudyError(
            f"{path}: a log range through zero: int [{low}, {high}] with log: true needs low >= 1",
            hint=f"raise low to 1 or more, e.g. [1, {high}], or drop log: true",
        )
    if log and step != 1:
        raise StudyError(
            f"{path}: step {step} with log: true: Optuna draws a log int range with step 1 only",
            hint="drop step, or drop log: true",
        )
    return low, high, step


def _scalar(value: Any) -> bool:
    """A value a choice may hold: text, a whole number, a finite number, true or false."""
    return isinstance(value, (str, int, bool)) or (isinstance(value, float) and math.isfinite(value))


def _choices(path: str, raw: Any) -> tuple[Any, ...]:
    if raw == []:
        raise StudyError(
            f"{path}: a space with no values: choice []",
            hint="give at least one value, e.g. {choice: [adam, sgd]}",
        )
    if not isinstance(raw, list) or not all(_scalar(v) for v in raw):
        raise StudyError(
            f"{path}: choice {raw!r} needs a list of values: text, numbers, true or false",
            hint='e.g. {choice: [adam, sgd]}; quote a YAML null as "null"',
        )
    for i, value in enumerate(raw):
        twin = next((v for v in raw[:i] if v == value), _NONE)
        if twin is not _NONE:
            raise StudyError(
                f"{path}: choice {raw!r} gives {twin!r} and {value!r}, one value to Optuna",
                hint="give each value once (true, 1 and 1.0 count as one value)",
            )
    return tuple(raw)


def _when(path: str, raw: Any) -> dict[str, tuple[Any, ...]]:
    example = "e.g. when: {optimizer: sgd} or when: {optimizer: [sgd, rmsprop]}"
    conditions = mapping(f"{path}.when", raw, example)
    if not conditions:
        raise StudyError(f"{path}.when {{}} names no parent parameter", hint=example)
    out = {}
    for parent, values in conditions.items():
        listed = values if isinstance(values, list) else [values]
        if not listed or not all(_scalar(v) for v in listed):
            raise StudyError(
                f"{path}.when.{parent} {values!r} needs a value or a list of values", hint=example
            )
        out[str(parent)] = tuple(listed)
    return out


def _check_when(param: Param, params: dict[str, Param]) -> dict[str, tuple[Any, ...]] | None:
    """``param.when`` in canonical order, once each parent is a choice parameter of the space and each value one
    of its choices."""
    for parent, values in (param.when or {}).items():
        path = f"space.{param.name}.when.{parent}"
        choices = [p.name for p in params.values() if p.kind == "choice" and p.name != param.name]
        if parent not in params or params[parent].kind != "choice":
            found = f"is a {params[parent].kind} parameter" if parent in params else "is not in the space"
            raise StudyError(
                f"{path}: {parent!r} {found}; a condition names a choice parameter of the space",
                hint=f"choice parameters: {', '.join(choices) or 'none (add one, e.g. optimizer: {choice: [adam, sgd]})'}",
            )
        for value in values:
            if not any(same(value, c) for c in params[parent].choices):
                raise StudyError(
                    f"{path}: {value!r} is not one of {parent}'s choices {list(params[parent].choices)!r}",
                    hint=f"use one of {parent}'s values, or add {value!r} to its choices",
                )
    # canonical: the parent's values in the parent's order, whatever order the spec gave them in
    return {
        parent: tuple(c for c in params[parent].choices if any(same(c, v) for v in values))
        for parent, values in (param.when or {}).items()
    }


def _check_acyclic(params: dict[str, Param]) -> None:
    """No parameter depends on itself, directly or through its parents' conditions."""

    def walk(name: str, trail: list[str]) -> None:
        if name in trail:
            cycle = " -> ".join([*trail[trail.index(name) :], name])
            raise StudyError(
                f"space.{trail[-1]}.when: the conditions form a cycle: {cycle}",
                hint="a parameter cannot depend on itself; condition on a choice that has no condition of its own",
            )
        for parent in params[name].when or {}:
            walk(parent, [*trail, name])

    for name in sorted(params):
        walk(name, [])


def _suggest_order(params: dict[str, Param]) -> tuple[Param, ...]:
    """Parents before their children, otherwise by name: the order is the spec's meaning, not its key order."""
    placed: list[str] = []
    while len(placed) < len(params):
        ready = [n for n in sorted(params) if n not in placed and set(params[n].when or {}) <= set(placed)]
        placed.append(ready[0])  # acyclic: something is always ready
    return tuple(params[n] for n in placed)


def active(param: Param, values: dict[str, Any]) -> bool:
    """Whether ``param`` takes a value in a trial whose parameters so far are ``values``: unconditional, or every
    parent named in its ``when`` has a value and that value is one of those listed."""
    return all(
        parent in values and any(same(values[parent], v) for v in allowed)
        for parent, allowed in (param.when or {}).items()
    )


def grid_values(param: Param) -> tuple[Any, ...] | None:
    """Every value a grid visits for ``param``: its choices, or its int range by step; None for a float."""
    if param.kind == "choice":
        return param.choices
    if param.kind == "int":
        assert (
            param.low is not None and param.high is not None and param.step is not None
        )  # an int has all three
        return tuple(range(int(param.low), int(param.high) + 1, param.step))
    return None


def grid_size(space: tuple[Param, ...]) -> int | None:
    """How many configurations a grid over ``space`` has (the product of each parameter's values), None when a
    float parameter makes it unbounded."""
    sizes = [grid_values(p) for p in space]
    return None if any(s is None for s in sizes) else math.prod(len(s or ()) for s in sizes)
