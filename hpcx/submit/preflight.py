"""Pre-flight checks: does a request fit the partition it goes to? Pure functions over site data."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hpcx.errors import RejectedError
from hpcx.site import Partition, Site
from hpcx.site.model import NodeType
from hpcx.spec import ArraySpec, Origin, Resources, format_time, spell
from hpcx.submit.placement import place

SLURM_DEFAULT_MAX_ARRAY_SIZE = 1001


def _fmt_time(minutes: int | None) -> str:
    return "unlimited" if minutes is None else format_time(minutes)


def problems(res: Resources, part: Partition, origins: dict[str, Origin] | None = None) -> list[str]:
    """Every way ``res`` exceeds ``part``'s limits, one sentence each naming the value and the limit.

    ``origins`` (keyed time, nodes, mem, ...) says where each value came from: a value the user never typed is
    named where it was set (``HPCX_TIME=...``, the site file's ``defaults.time``), not as a flag."""
    o = origins or {}
    out = []
    p = part.name
    if part.max_time_min is not None and res.time_min > part.max_time_min:
        out.append(
            f"{spell('time', format_time(res.time_min), o.get('time'))} exceeds partition {p}'s MaxTime "
            f"{_fmt_time(part.max_time_min)}"
        )
    if res.shaped and res.nodes > part.max_nodes:
        out.append(
            f"{spell('nodes', res.nodes, o.get('nodes'))} exceeds partition {p}'s MaxNodes {part.max_nodes}"
        )
    if not res.shaped:  # Slurm decides each node's share: reason over the nodes as its selection does
        out += place(res, part, o).problems
    elif part.node_types:
        out += _node_problems(res, part, o) if res.nodes <= part.max_nodes else []
    else:
        out += _uniform_node_problems(res, part, o)
    if part.accounts and res.account and res.account not in part.accounts:
        out.append(
            f"{spell('account', res.account, o.get('account'))} may not use partition {p} "
            f"(allowed: {', '.join(part.accounts)})"
        )
    if part.qos and res.qos and res.qos not in part.qos:
        out.append(
            f"{spell('qos', res.qos, o.get('qos'))} is not allowed on partition {p} (allowed: {', '.join(part.qos)})"
        )
    return out


def _set_elsewhere(res: Resources, keys: tuple[str, ...], origins: dict[str, Origin]) -> str:
    """A note naming where values of ``keys`` that the command line did not set came from."""
    values = {"mem": f"{res.mem_mb}M"}
    found = [
        spell(k, values[k] if k in values else getattr(res, k), origins[k])  # Resources has mem_mb, not mem
        for k in keys
        if k in origins and origins[k][0] not in ("cli", "default", "auto")
    ]
    return f" (set by {'; '.join(found)})" if found else ""


def _uniform_node_problems(res: Resources, part: Partition, o: dict[str, Origin]) -> list[str]:
    out, p = [], part.name
    if res.cpus_per_node > part.cpus_per_node:
        out.append(
            f"{res.ntasks_per_node} tasks x {res.cpus_per_task} CPUs = {res.cpus_per_node} CPUs per node "
            f"exceeds partition {p}'s {part.cpus_per_node} CPUs per node"
            + _set_elsewhere(res, ("ntasks_per_node", "cpus_per_task"), o)
        )
    if part.mem_per_node_mb is not None and res.mem_mb is not None and res.mem_mb > part.mem_per_node_mb:
        out.append(
            f"{spell('mem', f'{res.mem_mb}M', o.get('mem'))} exceeds partition {p}'s {part.mem_per_node_mb}M per node"
        )
    if res.gpus_on_node > part.gpus_per_node:
        key = "gpus_per_node" if res.gpus_per_node else "gres"
        out.append(
            f"{spell(key, getattr(res, key), o.get(key))} exceeds partition {p}'s {part.gpus_per_node} GPUs per node"
        )
    return out


def _fits(res: Resources, node: NodeType) -> bool:
    return (
        res.cpus_per_node <= node.cpus
        and (res.mem_mb is None or node.mem_mb is None or res.mem_mb <= node.mem_mb)
        and res.gpus_on_node <= node.gpus
    )


def _node_problems(res: Resources, part: Partition, origins: dict[str, Origin]) -> list[str]:
    """A mixed partition: enough of its nodes must each hold one node's share of the request."""
    fitting = sum(t.count for t in part.node_types if _fits(res, t))
    if fitting >= res.nodes:
        return []
    need = f"{res.cpus_per_node} CPUs" + (f", {res.mem_mb}M" if res.mem_mb else "")
    need += f", {res.gpus_on_node} GPUs" if res.gpus_on_node else ""
    have = "; ".join(
        f"{t.count} x ({t.cpus} CPUs{f', {t.mem_mb}M' if t.mem_mb else ''}, {t.gpus} GPUs)"
        for t in part.node_types
    )
    return [
        f"{res.nodes} node(s) with {need} each requested, but only {fitting} of partition {part.name}'s nodes "
        f"have that ({have})"
        + _set_elsewhere(res, ("ntasks_per_node", "cpus_per_task", "mem", "gpus_per_node"), origins)
    ]


def check_array(array: ArraySpec, part: Partition) -> None:
    """Slurm refuses array indices at or above MaxArraySize; say so before it does."""
    limit = part.max_array_size or SLURM_DEFAULT_MAX_ARRAY_SIZE
    if array.indices[-1] >= limit:
        raise RejectedError(
            f"--array {array.text} reaches index {array.indices[-1]}, but MaxArraySize on partition {part.name} is "
            f"{limit} (indices 0-{limit - 1})",
            hint="split it into several arrays, or use `hpcx sweep`, which chunks large sweeps",
        )


def check(res: Resources, site: Site, origins: dict[str, Origin] | None = None) -> Partition:
    """Return the partition ``res`` goes to, or raise RejectedError naming each violated limit (and where the value
    came from, see ``problems``) and a fix."""
    name = res.partition
    if name not in site.partitions:
        known = ", ".join(site.partitions)
        raise RejectedError(
            f"{spell('partition', name, (origins or {}).get('partition'))} does not exist on {site.cluster}",
            hint=f"use one of: {known}",
        )
    part = site.partitions[name]
    found = problems(res, part, origins)
    if not found:
        return part
    others = [p for p in site.partitions.values() if p.name != name and not problems(res, p, origins)]
    if others:
        fix = "use " + " or ".join(
            f"--partition {p.name} (max {_fmt_time(p.max_time_min)}, {p.max_nodes} nodes)" for p in others
        )
    else:
        fix = "no partition fits this request: ask for less"
    raise RejectedError("; ".join(found), hint=fix)


def _idle_gpus(res: Resources, part: Partition) -> int:
    """GPUs a node of ``part`` would leave idle, on the best-matching node type that fits."""
    if not part.node_types:
        return part.gpus_per_node - res.gpus_on_node
    return min((t.gpus - res.gpus_on_node for t in part.node_types if _fits(res, t)), default=0)


def _waste(res: Resources, part: Partition, default: str | None) -> tuple[int, int, int, int, int]:
    """How much of ``part`` the request would leave idle: GPUs first (never park a CPU job on GPU nodes),
    then the longest allowed time (short partitions start sooner), then node, CPU and memory headroom."""
    return (
        _idle_gpus(res, part),
        part.max_time_min if part.max_time_min is not None else 10**9,
        part.max_nodes - res.nodes,
        part.cpus_per_node - res.cpus_per_node,
        0 if part.name == default else 1,
    )


def choose_partition(
    res: Resources,
    site: Site,
    *,
    time_given: bool,
    origins: dict[str, Origin] | None = None,
    among: list[str] | None = None,
) -> tuple[Partition, dict[str, Any]]:
    """The partition that fits ``res`` with the least waste, and why (for --dry-run and the manifest); ``among``:
    only these (``-p a,b``), each of which must exist.

    Without a given time, each partition is judged with its own default time.
    """
    fits, rejected = [], {}
    for name in among or ():
        if name not in site.partitions:
            raise RejectedError(
                f"{spell('partition', ','.join(among or ()), (origins or {}).get('partition'))}: {name} does not "
                f"exist on {site.cluster}",
                hint=f"use some of: {', '.join(site.partitions)}",
            )
    for part in (site.partitions[n] for n in among) if among else site.partitions.values():
        trial = replace(res, partition=part.name)
        if not time_given and part.default_time_min:
            trial = replace(trial, time_min=part.default_time_min)
        found = problems(trial, part, origins)
        if found:
            rejected[part.name] = found
        else:
            fits.append(part)
    if not fits:
        details = "; ".join(f"{name}: {p[0]}" for name, p in rejected.items())
        raise RejectedError(
            f"no partition of {site.cluster} fits this request ({details})", hint="ask for less"
        )
    fits.sort(key=lambda p: _waste(res, p, site.default_partition))
    chosen = fits[0]
    gpus = chosen.max_gpus_per_node
    why = (
        f"partition {chosen.name} chosen {'from ' + ','.join(among) if among else 'automatically'}: it fits with "
        "the least waste "
        f"(max {_fmt_time(chosen.max_time_min)}, {chosen.max_nodes} nodes, "
        f"{f'up to {gpus} GPUs per node' if gpus else 'no GPUs'})"
    )
    return chosen, {
        "chosen": chosen.name,
        "why": why,
        "candidates": [p.name for p in fits],
        "rejected": rejected,
    }
