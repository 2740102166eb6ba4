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
_MEM_FACTOR_KB = {"K": 1, "": 1024, "M": 1024, "G": 1024**2, "T": 1024**3}

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


# Where a value came from: the layer (cli, script, env, user, site, ...) and the file, for user and site.
Origin = tuple[str, "str | None"]


def spell(key: str, value: object, origin: Origin | None = None) -> str:
    """Request value ``key`` as the user can find it where it was set: ``--time 2h`` (the command line or the
    script's #SBATCH lines; also when ``origin`` is None), ``HPCX_TIME=2h``, ``defaults.time 2h (from the site
    file F)``."""
    layer, file = origin or ("cli", None)
    typed = layer in ("cli", "script") and file is not None and file.startswith("-")
    flag = file if typed else "--" + key.replace("_", "-")  # as typed: -n 4, --ntasks 4
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


def parse_mem_mb(text: str | int, *, option: str = "mem", origin: Origin | None = None) -> int:
    """Parse a memory size ("4000", "4000M", "4G", "4GB") into whole MB (Slurm's unit), rounded up.

    Shaped like :func:`parse_time_min` on purpose (an int is checked as is, text is matched, the refusal names the
    spelling and an example): the two share that form, not their logic."""
    if isinstance(text, int):
        return _positive(option, text, "MB", origin)
    m = _MEM.match(str(text).strip())
    if not m:
        raise UsageError(
            f"{spell(option, repr(text), origin)} is not a memory size",
            hint=f"use e.g. {example(option, '4000M', origin)} or 4G",
        )
    kb = int(m.group(1)) * _MEM_FACTOR_KB[(m.group(2) or "").upper()]
    if kb == 0:  # named as written: 0G is no memory in any unit
        raise UsageError(
            f"{spell(option, repr(text), origin)} must be positive",
            hint=f"e.g. {example(option, '4000M', origin)}",
        )
    return -(-kb // 1024)


def parse_mem_or_all(text: str | int, *, origin: Origin | None = None) -> int:
    """``--mem``: a memory size per node, or 0 for all of each node's memory (as sbatch reads ``--mem=0``)."""
    m = _MEM.match(str(text).strip())
    if m and int(m.group(1)) == 0:
        return 0
    return parse_mem_mb(text, origin=origin)


@dataclass(frozen=True)
class Gres:
    """One entry of a ``--gres`` list: ``gpu:tesla:2`` is name gpu, type tesla, count 2."""

    name: str
    type: str | None
    count: int

    def __str__(self) -> str:
        return ":".join([self.name, *([self.type] if self.type else []), str(self.count)])


_GRES_ITEM = re.compile(
    r"^([A-Za-z][A-Za-z0-9_.-]*)(?::([A-Za-z0-9_.-]*[A-Za-z_.-][A-Za-z0-9_.-]*))?(?::(\d+))?$"
)


def parse_gres(text: str, *, option: str = "gres", origin: Origin | None = None) -> tuple[Gres, ...]:
    """Slurm's ``--gres`` list: ``NAME[:TYPE][:COUNT]`` entries, comma-separated (``gpu:tesla:2,nvme:1``); a
    missing count is 1. The empty string (``--gres=none`` is sbatch's spelling) is no entry."""
    if str(text).strip().lower() in ("", "none"):
        return ()
    out = []
    for item in str(text).split(","):
        m = _GRES_ITEM.fullmatch(item.strip())
        if not m or (m.group(3) is not None and int(m.group(3)) < 1):
            raise UsageError(
                f"{spell(option, repr(text), origin)}: {item!r} is not NAME[:TYPE][:COUNT]",
                hint=f"e.g. {example(option, 'gpu:tesla:2', origin)} or gpu:1",
            )
        out.append(Gres(m.group(1), m.group(2) or None, int(m.group(3) or 1)))
    return tuple(out)


def parse_typed_count(
    option: str, text: str | int, *, origin: Origin | None = None
) -> tuple[str | None, int]:
    """``--gpus``, ``--gpus-per-node``, ``--gpus-per-task``: ``[TYPE:]COUNT`` -> (TYPE or None, COUNT)."""
    kind, sep, count = str(text).strip().rpartition(":")
    if not sep:
        return None, parse_count(option.replace("_", "-"), count, minimum=0, origin=origin)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", kind) or not re.fullmatch(r"[0-9]+", count):
        raise UsageError(
            f"{spell(option, repr(text), origin)} is not [TYPE:]COUNT",
            hint=f"e.g. {example(option, 'tesla:2', origin)}",
        )
    return kind, int(count)


def parse_node_range(text: str | int, *, origin: Origin | None = None) -> tuple[int, int | None]:
    """``-N``: ``N`` or ``MIN-MAX`` -> (MIN, MAX or None)."""
    m = re.fullmatch(r"([0-9]+)-([0-9]+)", str(text).strip())
    if m is None:  # one count, or what parse_count refuses naming it whole (-1, abc)
        return parse_count("nodes", text, origin=origin), None
    first, last = int(m.group(1)), int(m.group(2))
    if first < 1:
        raise UsageError(
            f"{spell('nodes', text, origin)} starts below 1",
            hint=f"e.g. {example('nodes', '1-' + m.group(2), origin)}",
        )
    if last < first:
        raise UsageError(
            f"{spell('nodes', text, origin)} is an empty range",
            hint=f"write the smaller count first: {last}-{first}",
        )
    return first, last


_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HOST_FILE = re.compile(
    r"[A-Za-z0-9._/+-]*/[A-Za-z0-9._/+-]*"
)  # -w FILE: a value with a / names a file of hosts
_HOST_PART = re.compile(r"([^,\[]+)(?:\[([^\]]+)\])?([^,\[]*)")


def expand_hostlist(text: str, *, option: str = "nodelist", origin: Origin | None = None) -> tuple[str, ...]:
    """Slurm's host list ``n[1-3,7],gpu01`` -> ``n1 n2 n3 n7 gpu01`` (zero padding kept: ``n[01-02]``)."""
    names: list[str] = []
    pos, text = 0, str(text).strip()
    while pos < len(text):
        m = _HOST_PART.match(text, pos)
        if not m or m.end() == pos:
            raise UsageError(
                f"{spell(option, repr(text), origin)} is not a host list", hint="e.g. n[1-4],gpu01"
            )
        prefix, ranges, suffix = m.groups()
        if ranges is None:
            names.append(prefix + suffix)
        else:
            for part in ranges.split(","):
                names += _expand_range(prefix, part, suffix, text, option, origin)
        pos = m.end() + (1 if m.end() < len(text) and text[m.end()] == "," else 0)
    bad = [n for n in names if not _HOST_NAME.fullmatch(n)]
    if bad or not names:
        raise UsageError(
            f"{spell(option, repr(text), origin)} "
            + (f"has {bad[0]!r}, not a host name" if bad else "names no host"),
            hint="e.g. n[1-4],gpu01 (letters, digits and . _ -)",
        )
    return tuple(dict.fromkeys(names))


def _expand_range(
    prefix: str, part: str, suffix: str, text: str, option: str, origin: Origin | None
) -> list[str]:
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
    if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
        raise UsageError(f"{spell(option, repr(text), origin)}: [{part}] is not N or N-M", hint="e.g. n[1-4]")
    first, last = m.group(1), m.group(2) or m.group(1)
    width = len(first) if first.startswith("0") else 0
    return [f"{prefix}{str(i).zfill(width)}{suffix}" for i in range(int(first), int(last) + 1)]


def compress_hostlist(names: tuple[str, ...] | list[str]) -> str:
    """The inverse of :func:`expand_hostlist`: ``n1 n2 n3 n7`` -> ``n[1-3,7]``, in the order given."""
    runs: list[tuple[tuple[str, int], list[int]] | str] = []  # consecutive names of one prefix: one bracket
    for name in names:
        m = re.fullmatch(r"(.*?)(\d+)", name)
        if not m or not m.group(1) or "[" in name or "," in name:
            runs.append(name)
            continue
        prefix, digits = m.groups()
        width = len(digits) if digits.startswith("0") and len(digits) > 1 else 0
        last = runs[-1] if runs else None
        if (
            isinstance(last, tuple)
            and last[0][0] == prefix
            and (width == last[0][1] or len(digits) == last[0][1])
        ):
            last[1].append(int(digits))
        else:
            runs.append(((prefix, width), [int(digits)]))
    return ",".join(r if isinstance(r, str) else _ranges(r[0][0], r[0][1], r[1]) for r in runs)


def _ranges(prefix: str, width: int, numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"{prefix}{str(numbers[0]).zfill(width)}"
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    body = ",".join(
        str(a).zfill(width) if a == b else f"{str(a).zfill(width)}-{str(b).zfill(width)}" for a, b in spans
    )
    return f"{prefix}[{body}]"


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
    elif key in ("nodelist", "exclude") and _HOST_FILE.fullmatch(str(raw).strip()):
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
