"""Scheduler-neutral description of a job: frozen data, parsing of user spellings, and pure checks."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hpcx.errors import UsageError

# Values that end up on an #SBATCH line must be single plain tokens: no spaces, quotes or newlines.
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:@-]*$")
# ASCII digits only, whole numbers only, B only after a unit: what sbatch itself accepts (an own script's values
# reach sbatch as written, so hpcx must refuse what sbatch would).
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$", re.ASCII)
_MEM = re.compile(r"^(\d+)(?:([KMGT])B?)?$", re.IGNORECASE | re.ASCII)
_MEM_FACTOR_MB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}

RESOURCE_FIELDS = (
    "partition",
    "nodes",
    "ntasks_per_node",
    "cpus_per_task",
    "gpus_per_node",
    "mem_mb",
    "time_min",
    "account",
    "qos",
    "name",
)


@dataclass(frozen=True)
class Resources:
    """What a job asks the scheduler for. ``mem_mb`` is per node; ``time_min`` is the wall-clock limit."""

    partition: str | None = None
    nodes: int = 1
    ntasks_per_node: int = 1
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    mem_mb: int | None = None
    time_min: int = 10
    account: str | None = None
    qos: str | None = None
    name: str = "hpcx"

    @property
    def ntasks(self) -> int:
        return self.nodes * self.ntasks_per_node

    @property
    def cpus_per_node(self) -> int:
        return self.ntasks_per_node * self.cpus_per_task


@dataclass(frozen=True)
class JobSpec:
    """A whole request: template kind, resources, the command to run, and template variables."""

    kind: str
    resources: Resources
    command: tuple[str, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "resources": asdict(self.resources),
            "command": list(self.command),
            "variables": dict(self.variables),
        }


# Where a value came from: the layer (cli, script, env, user, site, ...) and the file, for user and site.
Origin = tuple[str, "str | None"]


def spell(key: str, value: object, origin: Origin | None = None) -> str:
    """Request value ``key`` as the user can find it where it was set: ``--time 2h`` (the command line or the
    script's #SBATCH lines; also when ``origin`` is None), ``HPCX_TIME=2h``, ``defaults.time 2h (from the site
    file F)``."""
    layer, file = origin or ("cli", None)
    flag = "--" + key.replace("_", "-")
    if layer == "env":
        return f"HPCX_{key.upper()}={value}"
    if layer in ("site", "user"):
        what = "the site file" if layer == "site" else "the user config"
        return f"defaults.{key} {value} (from {what}{' ' + file if file else ''})"
    return f"{flag} {value}"  # typed on the command line or in the script's #SBATCH lines


def example(key: str, value: object, origin: Origin | None = None) -> str:
    """A right value for ``key`` written the way it is set at ``origin``: ``--time 01:30:00``, ``HPCX_TIME=...``,
    ``defaults.time: 01:30:00`` (in the file)."""
    if origin is not None and origin[0] in ("site", "user"):
        return f"defaults.{key}: {value}"
    return spell(key, value, origin)


def parse_time_min(text: str | int, *, origin: Origin | None = None) -> int:
    """Parse a Slurm time ("MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM[:SS]") into whole minutes, rounded up.

    Errors name the value where ``origin`` says it was set (default: the --time option)."""
    if isinstance(text, int):
        return _positive("time", text, "minutes", origin)
    m = _TIME.match(str(text).strip())
    if not m:
        raise UsageError(
            f"{spell('time', repr(text), origin)} is not a Slurm time",
            hint=f"use MM, HH:MM:SS or D-HH:MM:SS, e.g. {example('time', '01:30:00', origin)}",
        )
    days, a, b, c = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:  # MM:SS
        seconds = int(a) * 60 + int(b)
    else:  # MM
        seconds = int(a) * 60
    return _positive("time", -(-seconds // 60), "minutes", origin)


def format_time(minutes: int) -> str:
    """Format minutes the way Slurm prints limits: D-HH:MM:SS, or HH:MM:SS under a day."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00" if days else f"{hours:02d}:{mins:02d}:00"


def parse_mem_mb(text: str | int, *, origin: Origin | None = None) -> int:
    """Parse a memory size ("4000", "4000M", "4G", "4GB") into whole MB (Slurm's unit), rounded up.

    Shaped like :func:`parse_time_min` on purpose (an int is checked as is, text is matched, the refusal names the
    spelling and an example): the two share that form, not their logic."""
    if isinstance(text, int):
        return _positive("mem", text, "MB", origin)
    m = _MEM.match(str(text).strip())
    if not m:
        raise UsageError(
            f"{spell('mem', repr(text), origin)} is not a memory size",
            hint=f"use e.g. {example('mem', '4000M', origin)} or 4G",
        )
    value = int(m.group(1)) * _MEM_FACTOR_MB[(m.group(2) or "").upper()]
    return _positive("mem", int(-(-value // 1)), "MB", origin)


def parse_count(option: str, text: str | int, *, minimum: int = 1, origin: Origin | None = None) -> int:
    """Parse a whole count for ``option`` (spelled as the flag: ``ntasks-per-node``); at least ``minimum``."""
    key = option.replace("-", "_")
    digits = str(text).strip()
    # ASCII digits as sbatch reads them: int() would also take '1_0', '+2' and '３', which sbatch refuses.
    if not re.fullmatch(r"-?[0-9]+", digits):
        raise UsageError(
            f"{spell(key, repr(text), origin)} is not a whole number", hint=f"e.g. {example(key, 2, origin)}"
        )
    value = int(digits)
    if value < minimum:
        raise UsageError(
            f"{spell(key, value, origin)} is below {minimum}",
            hint=f"use {example(key, minimum, origin)} or more",
        )
    return value


def check_token(option: str, value: str | None, *, origin: Origin | None = None) -> str | None:
    """Check a name that goes on an #SBATCH line: one plain token, no spaces, quotes or newlines."""
    if value is None or _TOKEN.fullmatch(value):  # fullmatch: $ would let a trailing newline through
        return value
    raise UsageError(
        f"{spell(option, repr(value), origin)} is not a plain name",
        hint="use letters, digits and . _ + : @ - only, starting with a letter or digit",
    )


def _positive(option: str, value: int, unit: str, origin: Origin | None = None) -> int:
    if value <= 0:
        raise UsageError(f"{spell(option, value, origin)} {unit} must be positive")
    return value


def build_resources(
    values: dict[str, Any], base: Resources | None = None, *, origins: dict[str, Origin] | None = None
) -> Resources:
    """Build Resources from user spellings (``time`` "1:00:00", ``mem`` "4G", counts as text or int).

    ``origins`` says where each value came from (keyed like ``values``); errors then name that place, not a flag
    the user never typed."""
    res = base or Resources()
    origins = origins or {}
    changes: dict[str, Any] = {}
    for key, raw in values.items():
        if raw is None:
            continue
        origin = origins.get(key)
        if key in ("time", "time_min"):
            changes["time_min"] = parse_time_min(raw, origin=origin)
        elif key in ("mem", "mem_mb"):
            changes["mem_mb"] = parse_mem_mb(raw, origin=origin)
        elif key in ("nodes", "ntasks_per_node", "cpus_per_task"):
            changes[key] = parse_count(key.replace("_", "-"), raw, origin=origin)
        elif key == "gpus_per_node":
            changes[key] = parse_count("gpus-per-node", raw, minimum=0, origin=origin)
        elif key in ("partition", "account", "qos", "name"):
            changes[key] = check_token(key, str(raw), origin=origin)
        else:
            raise UsageError(f"unknown resource {key!r}", hint=f"known: {', '.join(RESOURCE_FIELDS)}")
    return replace(res, **changes)


_ARRAY_PART = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")


@dataclass(frozen=True)
class ArraySpec:
    """A Slurm job array: ``0-99:2%10`` is indices 0, 2, ..., 98, at most 10 running at once."""

    text: str
    indices: tuple[int, ...]
    throttle: int | None = None


def parse_array(text: str) -> ArraySpec:
    """Parse Slurm's --array syntax (``1,3,5-9:2%4``); raise UsageError naming the bad part."""
    body, _, throttle = str(text).strip().partition("%")
    indices: set[int] = set()
    for part in body.split(","):
        m = _ARRAY_PART.match(part.strip())
        if not m:
            raise UsageError(
                f"--array {text!r}: {part!r} is not N, N-M or N-M:STEP", hint="e.g. --array 0-99%10"
            )
        first, last, step = int(m.group(1)), int(m.group(2) or m.group(1)), int(m.group(3) or 1)
        if last < first or step < 1:
            raise UsageError(
                f"--array {text!r}: {part!r} is an empty range", hint="write the smaller index first"
            )
        indices.update(range(first, last + 1, step))
    if throttle and not throttle.isdigit():
        raise UsageError(f"--array {text!r}: %{throttle} is not a whole number of tasks")
    return ArraySpec(str(text).strip(), tuple(sorted(indices)), int(throttle) if throttle else None)
