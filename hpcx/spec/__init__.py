"""Scheduler-neutral description of a job: frozen data, parsing of user spellings, and pure checks.

The value parsers live in :mod:`hpcx.spec.values` and the host lists in :mod:`hpcx.spec.hostlist`; both are
importable from here, as they always were."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hpcx.errors import UsageError
from hpcx.spec.hostlist import HOST_FILE, compress_hostlist, expand_hostlist
from hpcx.spec.values import (
    Gres,
    Origin,
    check_token,
    example,
    format_time,
    parse_count,
    parse_gres,
    parse_mem_mb,
    parse_mem_or_all,
    parse_node_range,
    parse_time_min,
    parse_typed_count,
    spell,
)

# What the package offers: the request model below, and the value parsers and host lists of its modules.
__all__ = [
    "MEMORY_KEYS",
    "REQUEST_KEYS",
    "RESOURCE_FIELDS",
    "ArraySpec",
    "JobSpec",
    "Resources",
    "build_resources",
    "parse_array",
    "HOST_FILE",
    "Gres",
    "Origin",
    "check_token",
    "compress_hostlist",
    "example",
    "expand_hostlist",
    "format_time",
    "parse_count",
    "parse_gres",
    "parse_mem_mb",
    "parse_mem_or_all",
    "parse_node_range",
    "parse_time_min",
    "parse_typed_count",
    "spell",
]
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
    "nodes_max",
    "ntasks",
    "ntasks_per_gpu",
    "cpus_per_gpu",
    "mem_per_cpu_mb",
    "mem_per_gpu_mb",
    "gpus",
    "gpus_per_task",
    "gpu_type",
    "gres",
    "constraint",
    "exclusive",
    "nodelist",
    "exclude",
)


@dataclass(frozen=True)
class Resources:
    """What a job asks the scheduler for, as sbatch's options mean it.

    ``nodes`` is the node count (the least of ``-N MIN-MAX``, whose MAX is ``nodes_max``); ``ntasks`` the tasks in
    all (``-n``; None: ``nodes`` x ``ntasks_per_node``); ``mem_mb`` memory per node (0: all of each node's), and
    exclusive of it ``mem_per_cpu_mb`` and ``mem_per_gpu_mb``; GPUs per node, per task or in all (``gpus``),
    ``gpu_type`` the type any of them names (``--gpus tesla:2``), ``gres`` a ``--gres`` list as written;
    ``constraint``, ``nodelist``, ``exclude`` and ``exclusive`` (None: not asked; "" plain ``--exclusive``) as
    written. ``time_min`` is the wall-clock limit."""

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
    nodes_max: int | None = None
    ntasks: int | None = None
    ntasks_per_gpu: int | None = None
    cpus_per_gpu: int | None = None
    mem_per_cpu_mb: int | None = None
    mem_per_gpu_mb: int | None = None
    gpus: int | None = None
    gpus_per_task: int | None = None
    gpu_type: str | None = None
    gres: str | None = None
    constraint: str | None = None
    exclusive: str | None = None
    nodelist: str | None = None
    exclude: str | None = None

    @property
    def tasks(self) -> int:
        """The tasks the job runs in all: ``-n``, else ``--ntasks-per-gpu`` x the GPUs, else per node x nodes."""
        if self.ntasks is not None:
            return self.ntasks
        if self.ntasks_per_gpu is not None and self.gpus:
            return self.ntasks_per_gpu * self.gpus
        return self.nodes * self.ntasks_per_node

    @property
    def cpus_per_node(self) -> int:
        return self.ntasks_per_node * self.cpus_per_task

    @property
    def gres_gpus(self) -> int:
        """GPUs per node that ``--gres`` asks for (0 without a gpu entry)."""
        return sum(g.count for g in parse_gres(self.gres or "") if g.name == "gpu")

    @property
    def gpus_on_node(self) -> int:
        """GPUs each node holds for the job where that is fixed per node (--gpus-per-node or --gres), else 0."""
        return self.gres_gpus or self.gpus_per_node  # both given: Slurm takes --gres's count

    @property
    def shaped(self) -> bool:
        """Whether the request uses only the per-node shape (-N, --ntasks-per-node, -c, --mem, --gpus-per-node)
        that every node of the job holds alike: then a node's share is fixed before Slurm places anything."""
        return all(getattr(self, k) in (None, "") for k in _SPREAD_FIELDS) and not self.gres_typed

    @property
    def gres_typed(self) -> bool:
        return bool(self.gres) and any(g.type for g in parse_gres(self.gres or ""))


# Options under which Slurm, not the request, decides how much of the job lands on each node.
_SPREAD_FIELDS = (
    "nodes_max",
    "ntasks",
    "ntasks_per_gpu",
    "cpus_per_gpu",
    "mem_per_cpu_mb",
    "mem_per_gpu_mb",
    "gpus",
    "gpus_per_task",
    "gpu_type",
    "constraint",
    "nodelist",
    "exclude",
)


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


def build_resources(
    values: dict[str, Any], base: Resources | None = None, *, origins: dict[str, Origin] | None = None
) -> Resources:
    """Build Resources from user spellings (``time`` "1:00:00", ``mem`` "4G", ``nodes`` "2-4", ``gpus``
    "tesla:2", counts as text or int), keyed as the request is (``mem_per_cpu``; the Resources field names are
    taken too).

    ``origins`` says where each value came from (keyed like ``values``); errors then name that place, not a flag
    the user never typed."""
    res = base or Resources()
    origins = origins or {}
    changes: dict[str, Any] = {}
    for key, raw in values.items():
        if raw is not None:
            _parse_into(changes, _ALIASES.get(key, key), raw, origins.get(key))
    _check_exclusive(values, origins)
    _check_gpu_typing(values, origins)
    out = replace(res, **changes)
    _check_consistent(out, origins)
    return out


def _check_gpu_typing(values: dict[str, Any], origins: dict[str, Origin]) -> None:
    """Slurm refuses GPUs asked both with and without a type (-G tesla:2 --gpus-per-node 1)."""
    forms: dict[bool, str] = {}
    for key in ("gpus", "gpus_per_node", "gpus_per_task"):
        if values.get(key) is not None and str(values[key]).strip() not in ("0", ""):
            forms.setdefault(":" in str(values[key]), spell(key, values[key], origins.get(key)))
    if values.get("gres") is not None:
        for g in parse_gres(str(values["gres"]), origin=origins.get("gres")):
            if g.name == "gpu":
                forms.setdefault(g.type is not None, spell("gres", values["gres"], origins.get("gres")))
    if len(forms) > 1:
        raise UsageError(
            f"{forms[True]} and {forms[False]} ask for GPUs with and without a type, which sbatch refuses",
            hint="name the type in both or in neither",
        )


def _check_nodelist_count(res: Resources, origins: dict[str, Origin]) -> None:
    """-w names nodes the job must have all of: more than -N allows is sbatch's 'invalid number of nodes'."""
    if not res.nodelist or "/" in res.nodelist or "nodes" not in origins:
        return
    named = len(expand_hostlist(res.nodelist))
    most = res.nodes_max or res.nodes
    if named > most:
        raise UsageError(
            f"{spell('nodelist', res.nodelist, origins.get('nodelist'))} names {named} nodes, more than "
            f"{spell('nodes', f'{res.nodes}-{res.nodes_max}' if res.nodes_max else res.nodes, origins.get('nodes'))}"
            " allows",
            hint=f"use -N {named}, or fewer nodes in -w",
        )


def _check_consistent(res: Resources, origins: dict[str, Origin]) -> None:
    """What sbatch itself refuses before any partition is looked at."""
    if res.ntasks is not None and res.ntasks_per_gpu and res.ntasks % res.ntasks_per_gpu:
        raise UsageError(
            f"{spell('ntasks', res.ntasks, origins.get('ntasks'))} is not a multiple of "
            f"{spell('ntasks_per_gpu', res.ntasks_per_gpu, origins.get('ntasks_per_gpu'))}, as sbatch requires",
            hint=f"use -n {res.ntasks + res.ntasks_per_gpu - res.ntasks % res.ntasks_per_gpu}",
        )
    if res.gpus_per_node and res.gpus_per_task and res.gpus_per_node < res.gpus_per_task:
        raise UsageError(
            f"{spell('gpus_per_node', res.gpus_per_node, origins.get('gpus_per_node'))} is fewer than "
            f"{spell('gpus_per_task', res.gpus_per_task, origins.get('gpus_per_task'))}: a task's GPUs are on its "
            "node, so sbatch refuses it",
            hint=f"use --gpus-per-node {res.gpus_per_task} or more",
        )
    # what sbatch 22.05 takes as the task count beside --gpus-per-task: -n, --ntasks-per-node, one -N count, or
    # --gpus equal to it (one task)
    counted = "ntasks_per_node" in origins or ("nodes" in origins and res.nodes_max is None)
    if res.gpus_per_task and res.ntasks is None and not counted and res.gpus != res.gpus_per_task:
        raise UsageError(
            f"{spell('gpus_per_task', res.gpus_per_task, origins.get('gpus_per_task'))} needs a task count (-n, "
            "--ntasks-per-node or one -N), as sbatch requires",
            hint="say how many tasks, e.g. -n 2",
        )
    _check_nodelist_count(res, origins)
    if res.gpus is not None and res.gpus_on_node > res.gpus:
        raise UsageError(
            f"{spell('gpus', res.gpus, origins.get('gpus'))} is fewer GPUs than one node's "
            f"{res.gpus_on_node} (--gres or --gpus-per-node), which sbatch refuses",
            hint="ask for --gpus at least the GPUs per node",
        )
    nodes = (
        min(res.nodes, res.ntasks) if res.ntasks is not None else res.nodes
    )  # sbatch: at most a node a task
    if res.gpus is not None and "nodes" in origins and res.gpus < nodes:
        raise UsageError(
            f"{spell('gpus', res.gpus, origins.get('gpus'))} is fewer GPUs than "
            f"{spell('nodes', res.nodes, origins.get('nodes'))} nodes: sbatch needs at least one per node",
            hint=f"use --gpus {res.nodes} or more, or --gpus-per-node",
        )


_ALIASES = {
    "time_min": "time",
    "mem_mb": "mem",
    "mem_per_cpu_mb": "mem_per_cpu",
    "mem_per_gpu_mb": "mem_per_gpu",
}
_COUNTS = ("ntasks", "ntasks_per_node", "ntasks_per_gpu", "cpus_per_task", "cpus_per_gpu")
_TYPED_GPUS = ("gpus", "gpus_per_node", "gpus_per_task")
_NAMES = ("partition", "account", "qos", "name", "constraint")
# The request's resource keys: sbatch's long option names with _ for -.
REQUEST_KEYS = (
    *("partition", "nodes", "ntasks", "ntasks_per_node", "ntasks_per_gpu", "cpus_per_task", "cpus_per_gpu"),
    *("mem", "mem_per_cpu", "mem_per_gpu", "gpus", "gpus_per_node", "gpus_per_task", "gres", "constraint"),
    *("exclusive", "nodelist", "exclude", "time", "account", "qos", "name"),
)


def _parse_into(changes: dict[str, Any], key: str, raw: Any, origin: Origin | None) -> None:
    """One request value, parsed into the Resources field(s) it sets."""
    if key == "time":
        changes["time_min"] = parse_time_min(raw, origin=origin)
    elif key == "mem":
        changes["mem_mb"] = parse_mem_or_all(raw, origin=origin)
    elif key in ("mem_per_cpu", "mem_per_gpu"):
        changes[f"{key}_mb"] = parse_mem_mb(raw, option=key, origin=origin)
    elif key == "nodes":
        changes["nodes"], changes["nodes_max"] = parse_node_range(raw, origin=origin)
    elif key in _COUNTS:
        changes[key] = parse_count(key.replace("_", "-"), raw, origin=origin)
    elif key in _TYPED_GPUS:
        kind, changes[key] = parse_typed_count(key, raw, origin=origin)
        changes["gpu_type"] = kind or changes.get("gpu_type")
    elif key == "gres":
        changes["gres"] = ",".join(str(g) for g in parse_gres(str(raw), origin=origin)) or None
    elif key in ("nodelist", "exclude") and HOST_FILE.fullmatch(str(raw).strip()):
        changes[key] = str(raw).strip()  # a file sbatch reads: passed on, its hosts not checked
    elif key in ("nodelist", "exclude"):
        changes[key] = compress_hostlist(expand_hostlist(str(raw), option=key, origin=origin))
    elif key == "exclusive":
        changes[key] = _exclusive(raw, origin)
    elif key in _NAMES:
        changes[key] = (
            check_token(key, str(raw), origin=origin) if key != "constraint" else _constraint(raw, origin)
        )
    else:
        raise UsageError(f"unknown resource {key!r}", hint=f"known: {', '.join(REQUEST_KEYS)}")


def _exclusive(raw: Any, origin: Origin | None) -> str:
    """``--exclusive[=user|mcs]`` (sbatch 22.05's values): "" for the plain flag. A true value counts as the flag
    only where no sbatch reads it as written (a sweep spec's ``exclusive: true``, a default): on the command line
    and in an own script, sbatch itself refuses ``--exclusive=yes``."""
    text = str(raw).strip()
    typed = origin is None or origin[0] in ("cli", "script")
    if text == "" or (not typed and text.lower() in ("true", "1", "yes")):
        return ""
    if text in ("user", "mcs"):
        return text
    raise UsageError(
        f"{spell('exclusive', repr(raw), origin)} is not user or mcs", hint="or --exclusive alone"
    )


_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.\-&|,\[\]()*!]+$")


def _constraint(raw: Any, origin: Origin | None) -> str:
    text = str(raw).strip()
    if not _CONSTRAINT.fullmatch(text):
        raise UsageError(
            f"{spell('constraint', repr(raw), origin)} is not a feature expression",
            hint="features joined by & (and), | (or), e.g. -C 'avx2&ib'",
        )
    return text


# Slurm takes one memory request per job: per node, per CPU or per GPU.
MEMORY_KEYS = ("mem", "mem_per_cpu", "mem_per_gpu")


def _check_exclusive(values: dict[str, Any], origins: dict[str, Origin]) -> None:
    given = [k for k in MEMORY_KEYS if values.get(k) is not None]
    if len(given) > 1:
        named = " and ".join(spell(k, values[k], origins.get(k)) for k in given)
        raise UsageError(
            f"{named} are mutually exclusive, as in sbatch",
            hint=f"keep one of them, e.g. {spell(given[0], values[given[0]])}",
        )


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
