"""Pre-flight for requests Slurm places itself (-n, -N MIN-MAX, --mem-per-cpu, --gpus, -C, -w, -x, typed gres):
can the partition's nodes hold the job, reasoning as Slurm's node selection does? Pure functions over site data.

Each node holds as many of the job's tasks as its CPUs, memory and GPUs allow under the request's per-task and
per-node terms; the job fits when some node count the request allows (its -N, at most the partition's MaxNodes,
every -w node among them) holds all its tasks."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hpcx.site import Partition
from hpcx.spec import Origin, Resources, compress_hostlist, expand_hostlist, parse_gres, spell


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: int | None
    gpus: int
    gpu_type: str | None
    features: tuple[str, ...] | None  # None: the site names no feature of the partition's nodes (not checked)
    label: str = (
        ""  # how a message names it where the site gives no names: "each node", "its 2 nodes of 4 CPUs"
    )


def partition_nodes(part: Partition) -> list[Node]:
    """The partition's nodes, named where the site names them (a live cluster does); a uniform partition
    without names has MaxNodes nodes alike."""
    names = list(expand_hostlist(part.nodes)) if part.nodes else []
    known = bool(part.features) or any(t.features for t in part.node_types)
    if part.node_types:
        out = []
        for t in part.node_types:
            typed = list(expand_hostlist(t.nodes)) if t.nodes else []
            for i in range(t.count):
                name = typed[i] if i < len(typed) else f"{part.name}:{t.cpus}c{i}"
                features = (t.features or part.features) if known else None
                gpus = f" and {t.gpus} {t.gpu_type or ''} GPUs".replace("  ", " ") if t.gpus else ""
                label = "" if i < len(typed) else f"{t.count} node(s) of {t.cpus} CPUs{gpus}"
                out.append(Node(name, t.cpus, t.mem_mb, t.gpus, t.gpu_type, features, label))
        return out
    count = len(names) or part.max_nodes
    return [
        Node(
            names[i] if i < len(names) else f"{part.name}#{i}",
            part.cpus_per_node,
            part.mem_per_node_mb,
            part.gpus_per_node,
            part.gpu_type,
            part.features if known else None,
            "" if i < len(names) else "each node",
        )
        for i in range(count)
    ]


def features_match(expression: str, features: tuple[str, ...]) -> bool | None:
    """Whether a node with ``features`` meets ``-C expression``: ``&`` and ``,`` are and, ``|`` is or, ``()`` and
    ``[]`` group. None for what hpcx does not evaluate (counts ``a*2``, ``!``, an unbalanced bracket)."""
    tokens = [t for t in re.split(r"([&|,()\[\]])", expression.replace(" ", "")) if t]
    if any(c in expression for c in "*!"):
        return None
    try:
        value, rest = _any_of(tokens, set(features))
    except IndexError:
        return None
    return value if not rest else None


def _any_of(tokens: list[str], have: set[str]) -> tuple[bool, list[str]]:
    value, tokens = _all_of(tokens, have)
    while tokens and tokens[0] == "|":
        other, tokens = _all_of(tokens[1:], have)
        value = value or other
    return value, tokens


def _all_of(tokens: list[str], have: set[str]) -> tuple[bool, list[str]]:
    value, tokens = _one(tokens, have)
    while tokens and tokens[0] in "&,":
        other, tokens = _one(tokens[1:], have)
        value = value and other
    return value, tokens


def _one(tokens: list[str], have: set[str]) -> tuple[bool, list[str]]:
    first = tokens[0]
    if first in "([":
        value, rest = _any_of(tokens[1:], have)
        if not rest or rest[0] != {"(": ")", "[": "]"}[first]:
            raise IndexError(first)
        return value, rest[1:]
    if first in "&|,)]":
        raise IndexError(first)
    return first in have, tokens[1:]


def _gpu_type(res: Resources) -> str | None:
    if res.gpu_type:
        return res.gpu_type
    typed = [g.type for g in parse_gres(res.gres or "") if g.name == "gpu" and g.type]
    return typed[0] if typed else None


def _why_not(res: Resources, node: Node, o: dict[str, Origin] | None = None) -> str | None:
    """Why ``node`` cannot hold one of the job's tasks, naming the option as the user spelled it (None: it can).
    ``{node}`` stands for the node's name, so that nodes alike share one sentence."""
    o = o or {}
    kind = _gpu_type(res)
    wants_gpus = res.gpus_on_node or res.gpus or res.gpus_per_task or res.ntasks_per_gpu
    if wants_gpus and not node.gpus:
        return "{node}: no GPUs"
    if kind and node.gpus and node.gpu_type and node.gpu_type != kind:
        return f"{{node}}: {node.gpu_type} GPUs, not {kind}"
    if res.gpus_on_node > node.gpus:
        key = "gpus_per_node" if res.gpus_per_node else "gres"
        return f"{{node}}: {spell(key, getattr(res, key), o.get(key))} exceeds its {node.gpus} GPUs"
    if res.mem_mb and node.mem_mb is not None and res.mem_mb > node.mem_mb:
        return f"{{node}}: {spell('mem', f'{res.mem_mb}M', o.get('mem'))} exceeds its {node.mem_mb}M"
    if (
        res.constraint
        and node.features is not None
        and features_match(res.constraint, node.features) is False
    ):
        have = ",".join(node.features) or "none"
        return f"{{node}}: features {have} do not meet {spell('constraint', res.constraint, o.get('constraint'))}"
    if res.cpus_per_task > node.cpus:
        return f"{{node}}: {spell('cpus_per_task', res.cpus_per_task, o.get('cpus_per_task'))} exceeds its {node.cpus} CPUs"
    return _memory_per_cpu(res, node, o)


def _memory_per_cpu(res: Resources, node: Node, o: dict[str, Origin]) -> str | None:
    """--mem-per-cpu x the CPUs a node gives one task (all of its CPUs with --exclusive) against its memory."""
    if not res.mem_per_cpu_mb or node.mem_mb is None:
        return None
    cpus = node.cpus if res.exclusive is not None else res.cpus_per_task
    if res.mem_per_cpu_mb * cpus <= node.mem_mb:
        return None
    asked = spell("mem_per_cpu", _size(res.mem_per_cpu_mb), o.get("mem_per_cpu"))
    whole = " (--exclusive: all of them)" if res.exclusive is not None else ""
    fix = f"use {spell('mem_per_cpu', f'{node.mem_mb // cpus}M', o.get('mem_per_cpu'))} or less" + (
        f", or -c {node.mem_mb // res.mem_per_cpu_mb}"
        if res.exclusive is None and node.mem_mb >= res.mem_per_cpu_mb
        else ""
    )
    return f"{{node}}: {asked} x {cpus} CPUs{whole} = {res.mem_per_cpu_mb * cpus}M exceeds its {node.mem_mb}M; {fix}"


def _size(mb: int) -> str:
    """A size as a user writes it: 5G for 5120 MB, else in M."""
    return f"{mb // 1024}G" if mb % 1024 == 0 else f"{mb}M"


def _reasons(res: Resources, nodes: list[Node], o: dict[str, Origin]) -> str:
    """Why each of ``nodes`` cannot hold a task, nodes alike in one sentence (``n[1-4] has no GPUs``)."""
    grouped: dict[str, list[str]] = {}
    for n in nodes:
        why = _why_not(res, n, o)
        if why:
            grouped.setdefault(why, []).append(n.label or n.name)
    return "; ".join(why.replace("{node}", _names(names)) for why, names in grouped.items())


def _names(names: list[str]) -> str:
    """Node names as a host list; labels of unnamed nodes ("each node") once each."""
    if any(" " in n for n in names):
        return ", ".join(dict.fromkeys(names))
    return compress_hostlist(names)


def capacity(res: Resources, node: Node, per_node_asked: bool = False) -> int:
    """How many of the job's tasks ``node`` can hold (0: none)."""
    if _why_not(res, node):
        return 0
    cpus_per_task = res.cpus_per_task
    most = node.cpus // cpus_per_task
    if res.exclusive is not None and res.mem_per_cpu_mb and node.mem_mb is not None:
        if node.cpus * res.mem_per_cpu_mb > node.mem_mb:  # a whole node's CPUs, each with its memory
            return 0
    if res.mem_per_cpu_mb and node.mem_mb is not None:
        most = min(most, node.mem_mb // (res.mem_per_cpu_mb * cpus_per_task))
    gpus = res.gpus_on_node or node.gpus
    if res.gpus_per_task:
        most = min(most, node.gpus // res.gpus_per_task)
    if res.ntasks_per_gpu:
        most = min(most, gpus * res.ntasks_per_gpu)
    if res.cpus_per_gpu and res.cpus_per_gpu * max(1, res.gpus_on_node) > node.cpus:
        return 0
    if (
        res.mem_per_gpu_mb
        and node.mem_mb is not None
        and res.mem_per_gpu_mb * max(1, res.gpus_on_node) > node.mem_mb
    ):
        return 0
    if res.ntasks is not None or res.ntasks_per_gpu:
        if per_node_asked:  # Slurm holds each node to room for --ntasks-per-node, even with fewer tasks
            return res.ntasks_per_node if most >= res.ntasks_per_node else 0
        return max(0, most)
    return res.ntasks_per_node if most >= res.ntasks_per_node else 0


@dataclass
class Fit:
    """The outcome: problems (each a sentence for the user), or the node count that holds the job."""

    problems: list[str]
    nodes: int = 0


def place(res: Resources, part: Partition, origins: dict[str, Origin]) -> Fit:
    """Whether ``part`` can hold ``res``, as Slurm's node selection would decide. ``origins`` has a key for
    each value the user (or a default of theirs) set: -N and --ntasks-per-node bind only when set."""
    o = origins
    nodes = partition_nodes(part)
    by_name = {n.name: n for n in nodes}
    named = bool(part.nodes) or any(t.nodes for t in part.node_types)  # else -w and -x cannot be checked
    listed = res.nodelist if res.nodelist and "/" not in res.nodelist else None  # -w FILE: Slurm reads it
    shunned = res.exclude if res.exclude and "/" not in res.exclude else None
    required: list[Node] = []
    problems: list[str] = []
    if listed and named:
        for name in expand_hostlist(listed):
            if name not in by_name:
                problems.append(
                    f"{spell('nodelist', res.nodelist, o.get('nodelist'))}: {name} is not in "
                    f"partition {part.name} (its nodes: {part.nodes})"
                )
            elif why := _why_not(res, by_name[name], o):
                problems.append(
                    f"{spell('nodelist', res.nodelist, o.get('nodelist'))}: {why.replace('{node}', name)}"
                )
            else:
                required.append(by_name[name])
    excluded = set(expand_hostlist(shunned)) if shunned and named else set()
    clash = [n.name for n in required if n.name in excluded]
    if clash:
        problems.append(
            f"{spell('nodelist', res.nodelist, o.get('nodelist'))} and "
            f"{spell('exclude', res.exclude, o.get('exclude'))} both name {', '.join(clash)}"
        )
    if problems:
        return Fit(problems)
    # Slurm 22.05 (sbatch --test-only) gives a job with -w only the nodes listed, whatever -N says.
    pool = [] if required else [n for n in nodes if n.name not in excluded]
    return _count_nodes(res, part, o, required, pool)


def _node_range(res: Resources, part: Partition, nodes_asked: bool, required: int) -> tuple[int, int]:
    low = max(res.nodes if nodes_asked else 1, required)
    spread = res.ntasks is not None or res.ntasks_per_gpu is not None  # else: -N nodes (1), each its share
    high = res.nodes_max or (res.nodes if nodes_asked or not spread else part.max_nodes)
    return low, max(low, high)


def _count_nodes(
    res: Resources, part: Partition, o: dict[str, Origin], required: list[Node], pool: list[Node]
) -> Fit:
    low, high = _node_range(res, part, "nodes" in o, len(required))
    per_node = "ntasks_per_node" in o
    tasks = res.tasks
    most = _most_nodes(res)
    if res.ntasks is not None and low > tasks and not required:
        low = tasks  # Slurm: "can't run N processes on M nodes, setting nnodes to N"
    if res.nodes_max and most > part.max_nodes:
        return Fit(
            [
                f"{spell('nodes', f'{res.nodes}-{res.nodes_max}', o.get('nodes'))} allows {most} nodes, over "
                f"partition {part.name}'s MaxNodes {part.max_nodes} (use --nodes={res.nodes}-{part.max_nodes})"
            ]
        )
    if low > part.max_nodes:
        return Fit(
            [
                f"{spell('nodes', res.nodes, o.get('nodes'))} exceeds partition {part.name}'s MaxNodes "
                f"{part.max_nodes}"
            ]
        )
    caps = sorted((capacity(res, n, per_node) for n in pool), reverse=True)
    fixed = [capacity(res, n, per_node) for n in required]
    for count in range(low, min(high, part.max_nodes) + 1):
        if res.ntasks is not None and count > tasks and not required:
            count = max(1, tasks)  # Slurm: "can't run N processes on M nodes, setting nnodes to N"
        chosen = fixed + caps[: count - len(fixed)]
        if (
            len(chosen) == count
            and all(chosen)
            and sum(chosen) >= tasks
            and _gpus_fit(res, required, pool, count)
        ):
            return Fit([], count)
    return Fit([_too_big(res, part, o, low, caps + fixed)])


def _most_nodes(res: Resources) -> int:
    """The most nodes -N MIN-MAX can give the job: at most one per task (-n) and one per GPU (--gpus)."""
    most = res.nodes_max or res.nodes
    if res.ntasks is not None:
        most = min(most, res.ntasks)
    if res.gpus:
        most = min(most, res.gpus)
    return most


def _gpus_here(res: Resources, node: Node) -> int:
    """The most GPUs of the job ``node`` can take: its GPUs, as far as their CPUs and memory per GPU fit."""
    most = node.gpus
    if res.cpus_per_gpu:
        most = min(most, node.cpus // res.cpus_per_gpu)
    if res.mem_per_gpu_mb and node.mem_mb is not None:
        most = min(most, node.mem_mb // res.mem_per_gpu_mb)
    return most


def _gpus_fit(res: Resources, required: list[Node], pool: list[Node], count: int) -> bool:
    """--gpus N: the nodes chosen hold N GPUs between them, at least one each."""
    if not res.gpus:
        return True
    with_gpus = sorted((_gpus_here(res, n) for n in pool if capacity(res, n)), reverse=True)
    chosen = [_gpus_here(res, n) for n in required] + with_gpus[: count - len(required)]
    return count <= res.gpus <= sum(chosen) and all(chosen)


def _too_big(res: Resources, part: Partition, o: dict[str, Origin], low: int, caps: list[int]) -> str:
    """The sentence for a job that no allowed node count holds, in the terms the user asked in."""
    p = part.name
    usable = [c for c in caps if c]
    nodes = partition_nodes(part)
    others = _reasons(res, nodes, o)
    shunned = f" (after {spell('exclude', res.exclude, o.get('exclude'))})" if res.exclude else ""
    if not usable:
        what = others or f"none has room for one task{_asked(res, o)}"
        return f"no node of partition {p} can hold one of this job's tasks{shunned}: {what}"
    if res.ntasks is None and res.ntasks_per_gpu is None:  # the per-node shape: -N nodes, each its share
        return (
            f"{spell('nodes', res.nodes, o.get('nodes'))} node(s) with {res.ntasks_per_node} task(s) each"
            f"{_asked(res, o)} requested, but only {len(usable)} of partition {p}'s nodes can hold that{shunned}"
            + (f" ({others})" if others else "")
        )
    per_node = max(usable)
    need = -(-res.tasks // per_node)
    if res.gpus and need <= min(part.max_nodes, len(usable)):
        return f"{spell('gpus', res.gpus, o.get('gpus'))} is more GPUs than partition {p}'s nodes can give this job"
    if need > part.max_nodes or need > len(usable):
        limit = min(part.max_nodes, len(usable))
        return (
            f"{spell('ntasks', res.tasks, o.get('ntasks'))} needs {need} nodes of {per_node} tasks, over "
            f"partition {p}'s {limit} usable nodes (MaxNodes {part.max_nodes}){_asked(res, o)}{shunned}"
            + (f" ({others})" if others else "")
        )
    return (
        f"{spell('ntasks', res.tasks, o.get('ntasks'))} does not fit on {low} node(s) of partition {p} "
        f"({per_node} tasks per node at most){_asked(res, o)}"
    )


def _asked(res: Resources, o: dict[str, Origin]) -> str:
    """The per-task terms that bound a node's share, as the user gave them."""
    parts = [f"-c {res.cpus_per_task}"] if res.cpus_per_task != 1 else []
    if res.gpus or res.gpus_on_node or res.gpus_per_task or res.ntasks_per_gpu:
        parts.append("GPUs on each node")
    if res.mem_per_cpu_mb:
        parts.append(spell("mem_per_cpu", f"{res.mem_per_cpu_mb}M", o.get("mem_per_cpu")))
    if res.gpus_per_task:
        parts.append(spell("gpus_per_task", res.gpus_per_task, o.get("gpus_per_task")))
    return f" with {', '.join(parts)}" if parts else ""
