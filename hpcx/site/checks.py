"""What the schema cannot say about a site file: each cross-reference and each default, checked against what it
refers to. One line per problem, starting with the key's path in the file, like the schema's problems.

Runs on a document that already passed the schema (types and spellings are right).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hpcx.errors import UsageError
from hpcx.spec import format_time, parse_mem_mb, parse_time_min

_UNLIMITED = ("infinite", "unlimited")
# srun is what a partition without `launcher` gets: it needs no entry under `launchers`.
_IMPLICIT_LAUNCHERS = ("srun",)


def cross_check(doc: dict[str, Any], base: Path) -> list[str]:
    """Every broken cross-reference or default of the site ``doc`` (relative paths resolve from ``base``)."""
    problems = _template_dirs(doc, base)
    for name, cluster in doc["clusters"].items():
        problems += _cluster(name, cluster)
        problems += _defaults(doc.get("defaults", {}), name, cluster, doc, base)
    return problems


def _minutes(value: Any) -> int | None:
    """A validated Slurm time in minutes; None for UNLIMITED. Raises UsageError for a zero time."""
    return None if str(value).lower() in _UNLIMITED else parse_time_min(value)


def _cluster(name: str, cluster: dict[str, Any]) -> list[str]:
    where = f"clusters.{name}"
    parts = cluster["partitions"]
    out = []
    default = cluster.get("default_partition")
    if default is not None and default not in parts:
        out.append(
            f"{where}.default_partition: {default!r} is not a partition of cluster {name} "
            f"(partitions: {', '.join(parts)})"
        )
    launchers = cluster.get("launchers", {})
    for pname, part in parts.items():
        launcher = part.get("launcher")
        if launcher is not None and launcher not in launchers and launcher not in _IMPLICIT_LAUNCHERS:
            defined = ", ".join(launchers) or "none"
            kind = launcher if launcher in ("mpirun", "torchrun") else "srun | mpirun | torchrun"
            out.append(
                f"{where}.partitions.{pname}.launcher: {launcher!r} is not defined under {where}.launchers "
                f"(defined: {defined}); add e.g. `{launcher}: {{type: {kind}}}` there"
            )
        out += _partition_times(f"{where}.partitions.{pname}", part)
    return out


def _partition_times(where: str, part: dict[str, Any]) -> list[str]:
    times = {}
    for key in ("max_time", "default_time"):
        if key in part:
            try:
                times[key] = _minutes(part[key])
            except UsageError:
                return [f"{where}.{key}: {part[key]!r} is not a positive time"]
    max_min, default_min = times.get("max_time"), times.get("default_time", 0)
    if max_min is not None and (default_min is None or default_min > max_min):
        return [
            f"{where}.default_time: {part['default_time']} is longer than the partition's max_time "
            f"{part['max_time']}"
        ]
    return []


def _largest(part: dict[str, Any], key: str, type_key: str) -> int | None:
    """The most any node of ``part`` has of ``key``, as the pre-flight checks see it (None: not limited)."""
    types = part.get("node_types")
    values = [t.get(type_key) for t in types] if types else [part.get(key)]
    given = [v for v in values if v is not None]
    return max(given) if len(given) == len(values) else None


def _defaults(
    defaults: dict[str, Any], name: str, cluster: dict[str, Any], doc: dict[str, Any], base: Path
) -> list[str]:
    """Each site default must fit a partition it can go to: the default partition if the site names one."""
    parts = cluster["partitions"]
    on = f" of cluster {name}" if len(doc["clusters"]) > 1 else ""
    wanted = defaults.get("partition")
    if wanted is not None and wanted not in parts:
        return [f"defaults.partition: {wanted!r} is not a partition{on} (partitions: {', '.join(parts)})"]
    targets = {wanted: parts[wanted]} if wanted is not None else parts
    scope = f"partition {wanted}" if wanted is not None else f"every partition{on}"
    out = _default_time(defaults["time"], targets, scope) if "time" in defaults else []
    out += _default_counts(defaults, targets, scope)
    out += _default_mem(defaults, targets, scope)
    out += _default_access(defaults, targets, scope)
    if "kind" in defaults:
        out += _default_kind(defaults["kind"], doc, base)
    return out


def _default_counts(defaults: dict[str, Any], targets: dict[str, Any], scope: str) -> list[str]:
    """defaults.nodes within some partition's MaxNodes, and the CPUs per node they ask for within its nodes'."""
    out = []
    if "nodes" in defaults and all(defaults["nodes"] > p["max_nodes"] for p in targets.values()):
        most = max(p["max_nodes"] for p in targets.values())
        out.append(f"defaults.nodes: {defaults['nodes']} exceeds {scope}'s MaxNodes (at most {most})")
    cpus = defaults.get("ntasks_per_node", 1) * defaults.get("cpus_per_task", 1)
    most_cpus = max(_largest(p, "cpus_per_node", "cpus") or 0 for p in targets.values())  # always given
    if cpus > most_cpus:
        out.append(
            f"defaults.ntasks_per_node x defaults.cpus_per_task: {cpus} CPUs per node exceeds {scope}'s "
            f"nodes (at most {most_cpus} CPUs)"
        )
    return out


def _default_access(defaults: dict[str, Any], targets: dict[str, Any], scope: str) -> list[str]:
    """defaults.account and defaults.qos allowed on some partition (one that lists none allows all)."""
    out = []
    for key, listed in (("account", "accounts"), ("qos", "qos")):
        value = defaults.get(key)
        if value is not None and all(p.get(listed) and value not in p[listed] for p in targets.values()):
            allowed = sorted({a for p in targets.values() for a in p[listed]})
            out.append(f"defaults.{key}: {value!r} is not allowed on {scope} (allowed: {', '.join(allowed)})")
    return out


def _default_time(value: Any, targets: dict[str, Any], scope: str) -> list[str]:
    try:
        minutes = _minutes(value)
    except UsageError:
        return [f"defaults.time: {value!r} is not a positive time"]
    if minutes is None:
        return [f"defaults.time: {value!r} cannot be a default; give a finite time, e.g. 01:00:00"]
    limits = []
    for p in targets.values():
        try:
            limits.append(_minutes(p["max_time"]))
        except UsageError:  # an invalid max_time is reported by _partition_times, naming its own key
            return []
    if all(limit is not None and minutes > limit for limit in limits):
        longest = format_time(max(limit for limit in limits if limit is not None))
        shown = value if str(value) == format_time(minutes) else f"{value} ({format_time(minutes)})"
        most = f"({longest})" if len(limits) == 1 else f"(longest: {longest})"
        return [f"defaults.time: {shown} exceeds the max_time of {scope} {most}"]
    return []


def _default_mem(defaults: dict[str, Any], targets: dict[str, Any], scope: str) -> list[str]:
    if "mem" not in defaults:
        return []
    try:
        mem_mb = parse_mem_mb(defaults["mem"])
    except UsageError:
        return [f"defaults.mem: {defaults['mem']!r} is not a memory size (e.g. 4000M or 4G)"]
    most = [_largest(p, "mem_per_node_mb", "mem_mb") for p in targets.values()]
    if all(m is not None and mem_mb > m for m in most):
        return [
            f"defaults.mem: {defaults['mem']} ({mem_mb}M) exceeds {scope}'s memory per node "
            f"(at most {max(m for m in most if m is not None)}M)"
        ]
    return []


def _default_kind(kind: str, doc: dict[str, Any], base: Path) -> list[str]:
    from hpcx.templates import SUFFIX, builtin_dir  # Jinja only when a site names a default kind

    dirs = [*_dirs(doc, base), builtin_dir()]
    if any((d / f"{kind}{SUFFIX}").is_file() for d in dirs):
        return []
    kinds = sorted(
        {p.name[: -len(SUFFIX)] for d in dirs if d.is_dir() for p in d.glob(f"*{SUFFIX}")} - {"base"}
    )
    return [
        f"defaults.kind: {kind!r} has no template {kind}{SUFFIX} in the site's template_dirs or hpcx's own "
        f"(kinds: {', '.join(kinds)})"
    ]


def _dirs(doc: dict[str, Any], base: Path) -> list[Path]:
    return [(base / os.path.expanduser(d)).resolve() for d in doc.get("template_dirs", ())]


def _template_dirs(doc: dict[str, Any], base: Path) -> list[str]:
    return [
        f"template_dirs[{i}]: {raw!r} is not a directory" + (f" ({path})" if str(path) != raw else "")
        for i, (raw, path) in enumerate(zip(doc.get("template_dirs", ()), _dirs(doc, base)))
        if not path.is_dir()
    ]
