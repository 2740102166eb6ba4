"""Scheduler-neutral description of a job: frozen data, parsing of user spellings, and pure checks."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hpcx.errors import UsageError

# Values that end up on an #SBATCH line must be single plain tokens: no spaces, quotes or newlines.
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:@-]*$")
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_MEM = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)B?$", re.IGNORECASE)
_MEM_FACTOR_MB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}

RESOURCE_FIELDS = (
    "partition", "nodes", "ntasks_per_node", "cpus_per_task", "gpus_per_node",
    "mem_mb", "time_min", "account", "qos", "name",
)  # fmt: skip


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


def parse_time_min(text: str | int) -> int:
    """Parse a Slurm time ("MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM[:SS]") into whole minutes, rounded up."""
    if isinstance(text, int):
        return _positive("time", text, "minutes")
    m = _TIME.match(str(text).strip())
    if not m:
        raise UsageError(
            f"--time {text!r} is not a Slurm time",
            hint="use MM, HH:MM:SS or D-HH:MM:SS, e.g. --time 01:30:00",
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
    return _positive("time", -(-seconds // 60), "minutes")


def format_time(minutes: int) -> str:
    """Format minutes the way Slurm prints limits: D-HH:MM:SS, or HH:MM:SS under a day."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00" if days else f"{hours:02d}:{mins:02d}:00"


def parse_mem_mb(text: str | int) -> int:
    """Parse a memory size ("4000", "4000M", "4G", "1.5G") into whole MB (Slurm's unit), rounded up."""
    if isinstance(text, int):
        return _positive("mem", text, "MB")
    m = _MEM.match(str(text).strip())
    if not m:
        raise UsageError(f"--mem {text!r} is not a memory size", hint="use e.g. --mem 4000M or --mem 4G")
    value = float(m.group(1)) * _MEM_FACTOR_MB[m.group(2).upper()]
    return _positive("mem", int(-(-value // 1)), "MB")


def parse_count(option: str, text: str | int, *, minimum: int = 1) -> int:
    """Parse a whole count for ``option``; at least ``minimum``."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise UsageError(f"--{option} {text!r} is not a whole number", hint=f"e.g. --{option} 2") from None
    if value < minimum:
        raise UsageError(f"--{option} {value} is below {minimum}", hint=f"use --{option} {minimum} or more")
    return value


def check_token(option: str, value: str | None) -> str | None:
    """Check a name that goes on an #SBATCH line: one plain token, no spaces, quotes or newlines."""
    if value is None or _TOKEN.match(value):
        return value
    raise UsageError(
        f"--{option} {value!r} is not a plain name",
        hint="use letters, digits and . _ + : @ - only, starting with a letter or digit",
    )


def _positive(option: str, value: int, unit: str) -> int:
    if value <= 0:
        raise UsageError(f"--{option} {value} {unit} must be positive")
    return value


def build_resources(values: dict[str, Any], base: Resources | None = None) -> Resources:
    """Build Resources from user spellings (``time`` "1:00:00", ``mem`` "4G", counts as text or int)."""
    res = base or Resources()
    changes: dict[str, Any] = {}
    for key, raw in values.items():
        if raw is None:
            continue
        if key in ("time", "time_min"):
            changes["time_min"] = parse_time_min(raw)
        elif key in ("mem", "mem_mb"):
            changes["mem_mb"] = parse_mem_mb(raw)
        elif key in ("nodes", "ntasks_per_node", "cpus_per_task"):
            changes[key] = parse_count(key.replace("_", "-"), raw)
        elif key == "gpus_per_node":
            changes[key] = parse_count("gpus-per-node", raw, minimum=0)
        elif key in ("partition", "account", "qos", "name"):
            changes[key] = check_token(key, str(raw))
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
