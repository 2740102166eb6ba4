"""Parameter sweeps: a YAML spec expanded into a task table, submitted as job arrays. Pure: data in, data out.

A sweep's parameters combine as: grid (cross product) x zip (advance together) x random draws (recorded seed)
x repeats (seeds), minus the exclude rules. Every task gets a name made of its swept values and its own seed.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from hpcx.errors import UsageError

# The task table lives in hpcx.rundir.tasks (the job reads it too); its names stay importable from here.
from hpcx.rundir.tasks import TASK_FIELDS as TASK_FIELDS
from hpcx.rundir.tasks import fill_command as fill_command
from hpcx.rundir.tasks import placeholders as placeholders
from hpcx.rundir.tasks import read_task as read_task
from hpcx.rundir.tasks import task_env as task_env

SPEC_KEYS = {
    "version",
    "name",
    "kind",
    "resources",
    "command",
    "parameters",
    "exclude",
    "max_parallel",
    "seed",
    "variables",
    "inputs",
}
PARAM_KEYS = {"grid", "zip", "random", "repeats"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Slurm's largest local job id (26 bits): every array task takes one, so no cluster can hold a larger sweep.
MAX_TASKS = 67_108_863


class SweepError(UsageError):
    """A sweep spec that cannot be expanded (exit 3: nothing was submitted)."""

    exit_code = 3


@dataclass(frozen=True)
class Task:
    id: int
    name: str
    params: dict[str, Any]
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.id, "name": self.name, "params": self.params, "seed": self.seed}


@dataclass
class SweepSpec:
    name: str
    kind: str
    command: list[str]
    resources: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    zip: dict[str, list[Any]] = field(default_factory=dict)
    random: dict[str, Any] = field(default_factory=dict)
    repeats: int = 1
    exclude: list[dict[str, Any]] = field(default_factory=list)
    max_parallel: int | None = None
    seed: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)


def _values(name: str, raw: Any) -> list[Any]:
    """A grid axis: a list, or {range: [start, stop, step]}, {linspace: [a, b, n]}, {logspace: [a, b, n]}."""
    if isinstance(raw, list):
        if not raw:
            raise SweepError(f"parameters.grid.{name} is empty", hint="give at least one value")
        return raw
    if isinstance(raw, dict) and len(raw) == 1:
        ((how, args),) = raw.items()
        if how == "range" and isinstance(args, list) and len(args) in (2, 3):
            start, stop, step = (*args, 1) if len(args) == 2 else args
            if any(_number(v) is None for v in (start, stop, step)):
                raise SweepError(
                    f"parameters.grid.{name}: range {args} needs numbers",
                    hint="write {range: [start, stop]} or {range: [start, stop, step]}",
                )
            # none is None: checked just above
            start, stop, step = (v if _whole(v) else cast(float, _number(v)) for v in (start, stop, step))
            if step == 0 or (stop - start) / step <= 0:
                raise SweepError(
                    f"parameters.grid.{name}: range {args} is empty",
                    hint="stop lies beyond start in the step's direction, e.g. {range: [0, 10, 2]}",
                )
            count = math.ceil((stop - start) / step)
            _check_count(f"parameters.grid.{name}: range {args}", count)
            return [_tidy(start + i * step) for i in range(count)]
        if how in ("linspace", "logspace") and isinstance(args, list) and len(args) == 3:
            if _number(args[0]) is None or _number(args[1]) is None or not _whole(args[2]) or args[2] < 1:
                raise SweepError(
                    f"parameters.grid.{name}: {how} {args} needs [a, b, n]: two numbers and a whole "
                    f"number n >= 1 of values",
                    hint=f"e.g. {{{how}: [-4, -1, 4]}}",
                )
            a, b, n = cast(float, _number(args[0])), cast(float, _number(args[1])), args[2]  # checked above
            _check_count(f"parameters.grid.{name}: {how} {args}", n)
            pts = [a + (b - a) * i / (n - 1) for i in range(n)] if n > 1 else [a]
            try:
                return [_tidy(10**p if how == "logspace" else p) for p in pts]
            except OverflowError:
                raise SweepError(
                    f"parameters.grid.{name}: logspace {args} goes past 10**308, the largest float",
                    hint="give exponents below 308 (logspace takes powers of 10)",
                ) from None
    raise SweepError(
        f"parameters.grid.{name}: {raw!r} is not a list of values",
        hint="use a list, or {range: [start, stop, step]}, {linspace: [a, b, n]}, {logspace: [a, b, n]}",
    )


def _tidy(x: float) -> float | int:
    """Round away float noise (0.30000000000000004 -> 0.3) so values and task names read as written; a whole
    number stays exactly as it is (12 significant digits would turn 1000000000001 into 1000000000000)."""
    if isinstance(x, int):
        return x
    return float(f"{x:.12g}")


def _whole(value: Any) -> bool:
    """A whole number as YAML gives one (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    """A finite number, also as PyYAML reads ``1e-3`` (a string: YAML 1.1 wants ``1.0e-3``); else None."""
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _check_count(what: str, count: int) -> None:
    if count > MAX_TASKS:
        raise SweepError(
            f"{what} gives {count} tasks, more than Slurm can number ({MAX_TASKS} job ids)",
            hint="sweep fewer values, draws or repeats, or split the sweep into several specs",
        )


def check_max_parallel(what: str, value: Any, error: type[UsageError] = SweepError) -> None:
    """At most ``value`` tasks at once: a whole number from 1 to MAX_TASKS (Slurm keeps an array's throttle in
    32 bits and wraps a larger one around without a word: %4294967297 runs one task at a time)."""
    if not _whole(value) or not 1 <= value <= MAX_TASKS:
        raise error(
            f"{what} {value!r} must be a whole number from 1 to {MAX_TASKS} (no sweep has more tasks)",
            hint="e.g. 8 (at most 8 tasks run at once), or leave it out for no limit",
        )


def task_count(spec: SweepSpec) -> int:
    """How many tasks the sweep has before its exclude rules: grid product x zip length x draws x repeats."""
    zipped = len(next(iter(spec.zip.values()))) if spec.zip else 1
    draws = spec.random["draws"] if spec.random else 1
    return math.prod(len(v) for v in spec.grid.values()) * zipped * draws * spec.repeats


def parse_spec(doc: Any) -> SweepSpec:
    """Validate a sweep document; raise SweepError naming the key, the value and what was expected."""
    if not isinstance(doc, dict):
        raise SweepError(
            f"a sweep spec is a mapping, found {type(doc).__name__}",
            hint="give name:, command: and parameters: keys (see `hpcx sweep --help`)",
        )
    unknown = set(doc) - SPEC_KEYS
    if unknown:
        raise SweepError(
            f"unknown key(s) {', '.join(sorted(unknown))} in the sweep spec",
            hint=f"known keys: {', '.join(sorted(SPEC_KEYS))}",
        )
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise SweepError(
            f"parameters is a mapping, found {type(params).__name__}",
            hint="e.g. parameters: {grid: {lr: [0.1, 0.01]}, repeats: 2}",
        )
    if set(params) - PARAM_KEYS:
        raise SweepError(
            f"unknown key(s) in parameters: {', '.join(sorted(set(params) - PARAM_KEYS))}",
            hint=f"known: {', '.join(sorted(PARAM_KEYS))}",
        )
    command = doc.get("command")
    if isinstance(command, str):
        import shlex

        command = shlex.split(command)
    if isinstance(command, list):
        for word in command:  # YAML reads true/yes/on/no/off/null as values, not as the words typed
            if isinstance(word, bool) or word is None:
                raise SweepError(
                    f"command word {word!r} is YAML's {'boolean' if word is not None else 'null'}, "
                    "not text: YAML read true/false/yes/no/on/off/null (or an empty word) as a value",
                    hint='quote the word to pass it as text, e.g. command: ["true"] or [train.py, '
                    '--flag, "yes"]',
                )
    if (
        not command
        or not isinstance(command, list)
        or not all(isinstance(c, (str, int, float)) for c in command)
    ):
        raise SweepError(
            "the sweep spec needs a command: a list of words or one string",
            hint='e.g. command: [python, train.py, --lr, "{lr}"]',
        )
    spec = SweepSpec(
        name=str(doc.get("name") or "sweep"),
        kind=str(doc.get("kind") or "serial"),
        command=[str(c) for c in command],
        resources=dict(doc.get("resources") or {}),
        grid={str(k): _values(str(k), v) for k, v in (params.get("grid") or {}).items()},
        zip=dict(params.get("zip") or {}),
        random=dict(params.get("random") or {}),
        repeats=params.get("repeats", 1),
        exclude=list(doc.get("exclude") or []),
        max_parallel=doc.get("max_parallel"),
        seed=doc.get("seed", 0),
        variables={str(k): str(v) for k, v in (doc.get("variables") or {}).items()},
        inputs=[str(p) for p in doc.get("inputs") or []],
    )
    _check(spec)
    return spec


def _check(spec: SweepSpec) -> None:
    names = [*spec.grid, *spec.zip, *spec.random.get("params", {})]
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise SweepError(
            f"parameter name(s) {', '.join(map(repr, bad))} are not identifiers",
            hint="use letters, digits and _ (they become $HPCX_PARAM_<NAME>)",
        )
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SweepError(
            f"parameter(s) {', '.join(sorted(dupes))} appear in more than one of grid/zip/random",
            hint="give each parameter in one of them",
        )
    if spec.zip:
        lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in spec.zip.items()}
        if len(set(lengths.values())) != 1 or -1 in lengths.values() or 0 in lengths.values():
            shown = ", ".join(f"{k} has {n if n >= 0 else 'no list of'} values" for k, n in lengths.items())
            raise SweepError(
                f"parameters.zip lists must have the same, non-zero length: {shown}",
                hint="e.g. zip: {lr: [0.1, 0.01], bs: [32, 64]} (lr 0.1 runs with bs 32)",
            )
    if not _whole(spec.repeats) or spec.repeats < 1:
        raise SweepError(
            f"parameters.repeats {spec.repeats!r} must be a whole number >= 1",
            hint="e.g. repeats: 3 (each combination runs 3 times, each with its own seed)",
        )
    if spec.max_parallel is not None:
        check_max_parallel("max_parallel", spec.max_parallel)
    for key, seed in (("seed", spec.seed), ("parameters.random.seed", spec.random.get("seed", 0))):
        if not _whole(seed):
            raise SweepError(f"{key} {seed!r} must be a whole number", hint=f"e.g. {key.split('.')[-1]}: 42")
    if spec.random:
        _check_random(spec.random)
    for i, rule in enumerate(spec.exclude):
        if not isinstance(rule, dict) or not rule or set(rule) - set(names):
            raise SweepError(
                f"exclude[{i}] {rule!r} must map swept parameter names to values",
                hint=f"swept parameters: {', '.join(names) or 'none'}",
            )
    _check_placeholders(spec.command, [*names, *TASK_FIELDS])
    zipped = len(next(iter(spec.zip.values()))) if spec.zip else 1
    grid = ", ".join(f"{k}: {len(v)}" for k, v in spec.grid.items()) or "none"
    _check_count(
        f"the sweep (grid {grid}; zip {zipped}; draws {spec.random.get('draws', 1)}; repeats {spec.repeats})",
        task_count(spec),
    )


def _check_random(rnd: dict[str, Any]) -> None:
    """parameters.random: draws, params and an optional seed, each distribution drawable."""
    extra = set(rnd) - {"seed", "draws", "params"}
    example = "e.g. random: {seed: 7, draws: 8, params: {dropout: {uniform: [0, 0.5]}}}"
    if extra or not rnd.get("params"):
        unknown = f" (not {', '.join(sorted(map(str, extra)))})" if extra else ""
        raise SweepError(
            f"parameters.random needs draws (>= 1), params and optionally seed{unknown}", hint=example
        )
    draws: Any = rnd.get("draws")
    if not _whole(draws) or draws < 1:
        raise SweepError(f"parameters.random.draws {draws!r} must be a whole number >= 1", hint=example)
    for name, dist in (rnd.get("params") or {}).items():
        _draw(name, dist, random.Random(0))  # validates the distribution


def _check_placeholders(command: list[str], defined: list[str]) -> None:
    """Every ``{name}`` of the command names a parameter or a task field: a typo would otherwise reach every
    task as written."""
    for word in command:
        for name in placeholders(word):
            if name not in defined:
                raise SweepError(
                    f"command word {word!r} uses {{{name}}}, which no parameter defines",
                    hint=f"defined: {', '.join('{' + n + '}' for n in defined)}; "
                    "write {{ for a literal brace ({{name}} gives {name})",
                )


def _draw(name: str, dist: Any, rng: random.Random) -> Any:
    if isinstance(dist, dict) and len(dist) == 1:
        ((how, args),) = dist.items()
        where = f"parameters.random.params.{name}: {how} {args}"
        if how in ("uniform", "loguniform") and isinstance(args, list) and len(args) == 2:
            lo, hi = _number(args[0]), _number(args[1])
            if lo is None or hi is None:
                raise SweepError(f"{where} needs two numbers", hint=f"e.g. {{{how}: [0.001, 0.1]}}")
            if how == "uniform":
                return _tidy(rng.uniform(lo, hi))
            if lo <= 0 or hi <= 0:
                raise SweepError(
                    f"{where} needs bounds > 0 (it draws their logarithms)",
                    hint="e.g. {loguniform: [1.0e-5, 0.1]}, or {uniform: [a, b]} for bounds <= 0",
                )
            return _tidy(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        if how == "randint" and isinstance(args, list) and len(args) == 2:
            if not (_whole(args[0]) and _whole(args[1])) or args[0] > args[1]:
                raise SweepError(
                    f"{where} needs two whole numbers, low <= high (both can be drawn)",
                    hint="e.g. {randint: [1, 8]}",
                )
            return rng.randint(args[0], args[1])
        if how == "choice" and isinstance(args, list) and args:
            return rng.choice(args)
    raise SweepError(
        f"parameters.random.params.{name}: {dist!r} is not a distribution",
        hint="use {uniform: [a, b]}, {loguniform: [a, b]}, {randint: [a, b]} or {choice: [...]}",
    )


def _combinations(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    grid_keys = list(spec.grid)
    grid = [dict(zip(grid_keys, combo)) for combo in itertools.product(*spec.grid.values())] or [{}]
    zipped = [dict(zip(spec.zip, row)) for row in zip(*spec.zip.values())] or [{}]
    draws: list[dict[str, Any]] = [{}]
    if spec.random:
        rng = random.Random(spec.random.get("seed", spec.seed))
        draws = [
            {n: _draw(n, d, rng) for n, d in spec.random["params"].items()}
            for _ in range(spec.random["draws"])
        ]
    for g, z, d in itertools.product(grid, zipped, draws):
        yield {**g, **z, **d}


def _same(value: Any, wanted: Any) -> bool:
    """A task's value equals a rule's as the command sees them: 0.1 and "0.1" are one value, true and 1 are not."""
    if isinstance(value, bool) or isinstance(wanted, bool):
        return type(value) is type(wanted) and value == wanted
    if value == wanted:
        return True
    pair = {type(value), type(wanted)}
    if str in pair and pair & {int, float}:
        try:
            return float(value) == float(wanted)
        except ValueError:
            return False
    return False


def _matches(params: dict[str, Any], rule: dict[str, Any]) -> bool:
    return all(k in params and _same(params[k], v) for k, v in rule.items())


def _check_rules_match(combos: list[dict[str, Any]], rules: list[dict[str, Any]]) -> None:
    """An exclude rule that matches nothing is a mistake (a value not in the grid, a misspelt one): say so."""
    for i, rule in enumerate(rules):
        if not any(_matches(c, rule) for c in combos):
            taken = []
            for k in rule:
                values = list(dict.fromkeys(repr(c[k]) for c in combos if k in c))
                more = f", ... ({len(values)} values)" if len(values) > 8 else ""
                taken.append(f"{k} takes {', '.join(values[:8])}{more}")
            raise SweepError(
                f"exclude[{i}] {rule!r} matches no task: {'; '.join(taken)}",
                hint="fix the value (it must be one the sweep takes) or remove the rule",
            )


def task_seed(sweep_seed: int, name: str, repeat: int) -> int:
    """A task's seed: stable for the same sweep seed, parameters and repeat, whatever the task order."""
    digest = hashlib.sha256(f"{sweep_seed}:{name}:{repeat}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _name(params: dict[str, Any], repeat: int, repeats: int) -> str:
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()]
    if repeats > 1:
        parts.append(f"rep={repeat}")
    return ",".join(parts) or "task"


def expand(spec: SweepSpec) -> list[Task]:
    """Every task of the sweep, numbered from 0; raise SweepError when nothing is left to run."""
    tasks: list[Task] = []
    combos = list(_combinations(spec))
    _check_rules_match(combos, spec.exclude)
    for params in combos:
        if any(_matches(params, rule) for rule in spec.exclude):
            continue
        for rep in range(spec.repeats):
            name = _name(params, rep, spec.repeats)
            tasks.append(Task(len(tasks), name, params, task_seed(spec.seed, _name(params, 0, 1), rep)))
    if not tasks:
        raise SweepError(
            f"sweep {spec.name!r} has no tasks left after the exclude rules",
            hint="loosen exclude, or add values",
        )
    return tasks


@dataclass(frozen=True)
class Chunk:
    """One job array of a sweep: tasks ``offset`` .. ``offset + count - 1`` as array indices 0 .. count-1."""

    offset: int
    count: int

    def array_spec(self, max_parallel: int | None) -> str:
        base = f"0-{self.count - 1}" if self.count > 1 else "0"
        return f"{base}%{max_parallel}" if max_parallel else base


def chunk_tasks(recorded: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], int, int]]:
    """``(chunk, array index, task id)`` of every task of the chunks a sweep recorded in job.json, in order:
    a chunk covers indices 0 .. count-1 (task ``offset + index``), or the ``indices`` a retry resubmitted;
    a later chunk's entry for a task is the one that ran it last."""
    for c in recorded:
        for i in c.get("indices") or range(c["count"]):
            yield c, i, c["offset"] + i


def chunks(n_tasks: int, max_array_size: int) -> list[Chunk]:
    """Split ``n_tasks`` into arrays whose indices stay below ``max_array_size`` (Slurm's MaxArraySize)."""
    return [Chunk(o, min(max_array_size, n_tasks - o)) for o in range(0, n_tasks, max_array_size)]
