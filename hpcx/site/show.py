"""What `hpcx site show` and `hpcx config show` report: each as a document (printed as JSON with --json) and
as the text a person reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hpcx.site import Site, SiteChoice
from hpcx.site.config import DEFAULT_KEYS, UserConfig, env_defaults, layered, user_config_path

# What applies when no layer sets a value (shown by `config show`; the code paths are in hpcx.submit.submission).
BUILTIN = {
    "kind": "serial",
    "partition": "chosen per request: the one that fits with the least waste",
    "time": "the partition's default_time, else 00:10:00",
    "nodes": 1,
    "ntasks_per_node": 1,
    "cpus_per_task": 1,
    "gpus_per_node": 0,
    "mem": "Slurm's DefMemPerCPU",
    "account": "Slurm's default",
    "qos": "Slurm's default",
}


def site_doc(site: Site, origin: str) -> dict[str, Any]:
    """The loaded site: where it came from (``origin``: the layer that chose it), its cluster, scheduler and
    partitions with all their limits."""
    return {
        "name": site.name,
        "source": site.source,
        "origin": origin,
        "cluster": site.cluster,
        "scheduler": site.scheduler,
        "partitions": {n: dataclasses.asdict(p) for n, p in site.partitions.items()},
    }


def site_text(doc: Mapping[str, Any]) -> str:
    """``site_doc`` for a person: the site on one line, then one line per partition with its limits."""
    lines = [
        f"site {doc['name']} ({doc['source']}, from {doc['origin']}): cluster {doc['cluster']}, {doc['scheduler']}"
    ]
    for name, p in doc["partitions"].items():
        lines.append(f"  {name:<10} max_time_min={p['max_time_min']} max_nodes={p['max_nodes']} {_nodes(p)}")
    return "\n".join(lines)


def _nodes(p: Mapping[str, Any]) -> str:
    """What a partition's nodes have: each node type of a mixed partition (never a minimum that hides GPUs)."""
    if not p["node_types"]:
        return f"cpus_per_node={p['cpus_per_node']} gpus_per_node={p['gpus_per_node']}"
    return "nodes: " + "; ".join(_node_type(t) for t in p["node_types"])


def _node_type(t: Mapping[str, Any]) -> str:
    mem = f", {t['mem_mb']}M" if t["mem_mb"] else ""
    gpus = f", {t['gpus']} GPUs{' ' + t['gpu_type'] if t['gpu_type'] else ''}" if t["gpus"] else ", no GPUs"
    return f"{t['count']} x ({t['cpus']} CPUs{mem}{gpus})"


def config_doc(
    chosen: SiteChoice,
    user: UserConfig,
    runs_root: tuple[Path, str],
    template_dirs: Iterable[tuple[Path, str]],
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every resolved value with its source (cli > env > user > site > default), after the site, the user config,
    the runs root and the default partition; then ``template_dirs``, the template search path with each
    directory's layer, in search order (only site and builtin ones may change the site's locked blocks)."""
    site = chosen.site
    values, sources = layered([("env", env_defaults(env)), ("user", user.defaults), ("site", site.defaults)])
    rows = _where_rows(chosen, user, runs_root, env)
    rows += [_row(k, values.get(k, BUILTIN[k]), sources.get(k, "default")) for k in DEFAULT_KEYS]
    rows += [_row("template_dir", str(d), layer) for d, layer in template_dirs]
    return {"values": rows}


def _where_rows(
    chosen: SiteChoice, user: UserConfig, runs_root: tuple[Path, str], env: Mapping[str, str] | None
) -> list[dict[str, Any]]:
    """The rows that say where things are: the site (and how it was chosen), the user config, the runs root."""
    site_value = chosen.path if chosen.origin != "cluster" else chosen.site.source
    return [
        {**_row("site", site_value or "builtin local site", chosen.origin), "note": chosen.describe()},
        _row("user_config", str(user.path or user_config_path(env)), "found" if user.path else "absent"),
        _row("runs_root", str(runs_root[0]), runs_root[1]),
        _row("default_partition", chosen.site.default_partition, "site"),
    ]


def _row(key: str, value: Any, source: str) -> dict[str, Any]:
    return {"key": key, "value": value, "source": source}


def config_text(chosen: SiteChoice, doc: Mapping[str, Any]) -> str:
    """``config_doc`` for a person: how the site was chosen, then one aligned line per value with its source."""
    rows = (f"{r['key']:<18} {str(r['value']):<48} ({r['source']})" for r in doc["values"])
    return "\n".join([chosen.describe(), *rows])
