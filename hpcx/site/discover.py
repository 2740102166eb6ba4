"""Draft a site file from a live Slurm cluster.

``read_cluster`` asks :mod:`hpcx.schedulers.slurm` (which runs the commands and reads ``scontrol`` and ``sacctmgr``)
for the cluster's nodes, partitions, configuration, accounts and QOS; a pure parser turns what ``sinfo --json``
prints into nodes; ``draft_site_doc`` turns that data into a site document.
Per-node limits are the minimum over a partition's nodes, so a request that fits the drafted file fits every node.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from hpcx import __version__
from hpcx.errors import CommandError, SchedulerError, UsageError
from hpcx.fsutil import atomic_write, cache_dir
from hpcx.schedulers import slurm
from hpcx.schedulers.slurm import PARTITIONS_ARGV, SINFO_ARGV
from hpcx.site.checks import cross_check
from hpcx.site.model import Site, build_site
from hpcx.site.schema import validate
from hpcx.spec import compress_hostlist, parse_time_min

QUERY_TIMEOUT_S = 30.0
# slurmdbd is optional: a slow or missing one must not hold up discovery for long.
ACCOUNTING_TIMEOUT_S = 10.0
# Without a site file: how long the live cluster's site is reused, and how long a command waits for Slurm.
LIVE_CACHE_S = 300.0
LIVE_TIMEOUT_S = 20.0

_UNSET = ("", "(null)", "none", "n/a")
_TIME_LIKE = re.compile(r"^[0-9][0-9:-]*$")
_GRES_GPU = re.compile(r"^gpu(?::([^:(]+))?:(\d+)")


def _number(value: Any) -> Any:
    """Slurm >= 23.02 wraps numbers in JSON as {"set": bool, "number": n}; 22.05 prints them bare."""
    if isinstance(value, dict):
        return value.get("number") if value.get("set", True) else None
    return value


@dataclass(frozen=True)
class Node:
    """One node as sinfo reports it, with the GPU count and type read from its GRES."""

    name: str
    cpus: int
    mem_mb: int
    gpus: int
    gpu_type: str | None
    features: tuple[str, ...]
    partitions: tuple[str, ...]


@dataclass(frozen=True)
class ClusterState:
    """Everything discovery reads from a cluster, parsed; accounts/qos are None when accounting is unreachable."""

    nodes: tuple[Node, ...]
    partitions: dict[str, dict[str, str]]
    config: dict[str, str]
    slurm_version: str | None = None
    accounts: tuple[str, ...] | None = None
    qos: tuple[str, ...] | None = None

    @property
    def cluster_name(self) -> str:
        return self.config.get("ClusterName") or "cluster"


# --- parsers: text in, data out -------------------------------------------------------------------------------


def parse_gres_gpus(gres: str) -> tuple[int, str | None]:
    """GPU count and type from a node's GRES ("gpu:tesla:2", "gpu:2", "gpu:a100:4(S:0-1)"); (0, None) without.

    A node with GPUs of several types gets the total count and no type.
    """
    count, types = 0, set()
    for item in (gres or "").split(","):
        m = _GRES_GPU.match(item.strip())
        if m:
            count += int(m.group(2))
            types.add(m.group(1))
    gpu_type = types.pop() if len(types) == 1 else None
    return count, gpu_type


def parse_sinfo_json(text: str) -> tuple[tuple[Node, ...], str | None]:
    """The nodes from ``sinfo --json`` (Slurm 22.05: meta/errors/nodes) and the Slurm release it reports.

    Raises SchedulerError naming ``sinfo --json`` when the text is not JSON, reports errors, or lacks nodes.
    """
    cmd = " ".join(SINFO_ARGV)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchedulerError(f"`{cmd}` printed something that is not JSON: {text[:120]!r}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise SchedulerError(f"`{cmd}` printed JSON without a list of nodes: {text[:120]!r}")
    if doc.get("errors"):
        raise SchedulerError(f"`{cmd}` reported errors: {json.dumps(doc['errors'])[:200]}")
    release = ((doc.get("meta") or {}).get("Slurm") or {}).get("release")
    return tuple(_node(n, cmd) for n in doc["nodes"]), release


def _node(doc: Any, cmd: str) -> Node:
    try:
        gpus, gpu_type = parse_gres_gpus(doc.get("gres") or "")
        features = doc.get("active_features") or doc.get("features") or ""
        if isinstance(features, str):
            features = [f for f in features.split(",") if f]
        return Node(
            name=str(doc["name"]),
            cpus=int(_number(doc["cpus"])),
            mem_mb=int(_number(doc["real_memory"])),
            gpus=gpus,
            gpu_type=gpu_type,
            features=tuple(sorted(features)),
            partitions=tuple(doc.get("partitions") or ()),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SchedulerError(f"`{cmd}` printed a node hpcx cannot read ({exc!r}): {str(doc)[:120]}") from exc


# --- the site document -----------------------------------------------------------------------------------------


def draft_site_doc(state: ClusterState) -> dict[str, Any]:
    """A site document (schema version 1) describing the cluster in ``state``.

    Partitions without nodes are left out: no request could run there.
    """
    launchers: dict[str, Any] = {"srun": {"type": "srun"}}
    mpi = state.config.get("MpiDefault", "")
    if mpi.lower() not in _UNSET:
        launchers["srun"]["mpi"] = mpi
    partitions = {
        name: _partition_doc(fields, _nodes_of(state, name), _max_array_size(state.config))
        for name, fields in state.partitions.items()
        if _nodes_of(state, name)
    }
    cluster: dict[str, Any] = {"scheduler": "slurm"}
    default = next((n for n, f in state.partitions.items() if f.get("Default") == "YES"), None)
    if default in partitions:
        cluster["default_partition"] = default
    cluster["partitions"] = partitions
    cluster["launchers"] = launchers
    return {"version": 1, "name": state.cluster_name, "clusters": {state.cluster_name: cluster}}


def empty_partitions(state: ClusterState) -> list[str]:
    """Partitions the cluster has but that no node belongs to (left out of the drafted site)."""
    return [name for name in state.partitions if not _nodes_of(state, name)]


def _nodes_of(state: ClusterState, partition: str) -> list[Node]:
    return [n for n in state.nodes if partition in n.partitions]


def _partition_doc(fields: dict[str, str], nodes: list[Node], max_array_size: int | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"max_time": _slurm_time(fields, "MaxTime")}
    if fields.get("DefaultTime", "NONE").lower() not in _UNSET:
        doc["default_time"] = _slurm_time(fields, "DefaultTime")
    max_nodes = fields.get("MaxNodes", "UNLIMITED")
    doc["max_nodes"] = len(nodes) if max_nodes == "UNLIMITED" else _slurm_int(fields, "MaxNodes")
    doc.update(_node_limits(nodes))
    for key, slurm_key in (("accounts", "AllowAccounts"), ("qos", "AllowQos")):
        allowed = fields.get(slurm_key, "ALL")
        if allowed != "ALL":
            doc[key] = [a for a in allowed.split(",") if a]
    if max_array_size:
        doc["max_array_size"] = max_array_size
    doc["launcher"] = "srun"
    doc["nodes"] = compress_hostlist([n.name for n in nodes])
    return doc


def _node_limits(nodes: list[Node]) -> dict[str, Any]:
    """What every one of ``nodes`` offers: the minimum count, a GPU type and features only when all share them."""
    limits: dict[str, Any] = {
        "cpus_per_node": min(n.cpus for n in nodes),
        "mem_per_node_mb": min(n.mem_mb for n in nodes),
        "gpus_per_node": min(n.gpus for n in nodes),
    }
    gpu_types = {n.gpu_type for n in nodes}
    if limits["gpus_per_node"] and len(gpu_types) == 1 and None not in gpu_types:
        limits["gpu_type"] = gpu_types.pop()
    features = sorted(set.intersection(*(set(n.features) for n in nodes)))
    if features:
        limits["features"] = features
    types = _node_types(nodes)
    if len(types) > 1:  # a mixed partition: say which nodes have what, so pre-flight judges like Slurm
        limits["node_types"] = types
    return limits


def _node_types(nodes: list[Node]) -> list[dict[str, Any]]:
    """Groups of identical nodes, largest group first."""
    groups: dict[tuple[Any, ...], list[Node]] = {}
    for n in nodes:
        key = (n.cpus, n.mem_mb, n.gpus, n.gpu_type if n.gpus else None, n.features)  # features: for -C
        groups.setdefault(key, []).append(n)
    out = []
    for (cpus, mem_mb, gpus, gpu_type, _), members in sorted(
        groups.items(), key=lambda kv: (-len(kv[1]), kv[0][:3])
    ):
        entry: dict[str, Any] = {"count": len(members), "cpus": cpus, "mem_mb": mem_mb}
        if gpus:
            entry.update(gpus=gpus, **({"gpu_type": gpu_type} if gpu_type else {}))
        if members[0].features:
            entry["features"] = list(members[0].features)
        entry["nodes"] = compress_hostlist([n.name for n in members])
        out.append(entry)
    return out


def _slurm_time(fields: dict[str, str], key: str) -> str:
    """Slurm's own spelling of a time limit, after checking hpcx can read it."""
    value = fields.get(key, "UNLIMITED")
    if value.upper() in ("UNLIMITED", "INFINITE"):
        return "UNLIMITED"
    try:
        parse_time_min(value)
    except UsageError as exc:
        raise SchedulerError(
            f"`{' '.join(PARTITIONS_ARGV)}` printed {key}={value!r} for partition "
            f"{fields.get('PartitionName')}, which is not a Slurm time"
        ) from exc
    return value


def _slurm_int(fields: dict[str, str], key: str) -> int:
    try:
        return int(fields[key])
    except (KeyError, ValueError) as exc:
        raise SchedulerError(
            f"`{' '.join(PARTITIONS_ARGV)}` printed {key}={fields.get(key)!r} for partition "
            f"{fields.get('PartitionName')}, which is not a number"
        ) from exc


def _max_array_size(config: dict[str, str]) -> int | None:
    """Slurm's MaxArraySize: array indices run 0..MaxArraySize-1; 0 disables arrays (then: not stated)."""
    value = config.get("MaxArraySize", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def render_site_yaml(doc: dict[str, Any], state: ClusterState, discovered_at: datetime) -> str:
    """The drafted site as YAML, under a comment header saying where and when it was discovered."""
    version = f" (Slurm {state.slurm_version})" if state.slurm_version else ""
    header = [
        f"Discovered by `hpcx site discover` from Slurm cluster {state.cluster_name}{version}",
        f"at {discovered_at.isoformat(timespec='seconds')}.",
        "Per-node limits are the minimum over each partition's nodes. Review before use, and add",
        "environment, template_dirs and defaults by hand.",
    ]
    if state.accounts is None:
        header.append("Accounting (sacctmgr) was not reachable: accounts and QOS are not listed here.")
    else:
        header.append(f"Accounts in accounting: {', '.join(state.accounts) or '(none)'}.")
        header.append(f"QOS in accounting: {', '.join(state.qos or ()) or '(none)'}.")
    for name in empty_partitions(state):
        header.append(f"Partition {name} has no nodes and is left out.")
    comment = "".join(f"# {line}\n" for line in header)
    return comment + yaml.dump(doc, Dumper=_SiteDumper, sort_keys=False, default_flow_style=False)


class _SiteDumper(yaml.SafeDumper):
    """Quotes time-like strings ("00:30:00") as a person would: YAML 1.1 reads some of them as numbers."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = '"' if _TIME_LIKE.match(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SiteDumper.add_representer(str, _represent_str)


def site_from_doc(doc: dict[str, Any], *, source: str) -> Site:
    """Validate a drafted document and build it the way ``load_site`` builds a file.

    Raises SchedulerError listing the problems: the cluster said something the schema cannot hold.
    """
    problems = validate(doc) or cross_check(doc, Path.cwd())
    if problems:
        shown = "\n  ".join(problems[:20])
        raise SchedulerError(f"the site drafted from the cluster is invalid:\n  {shown}")
    raw = yaml.safe_dump(doc, sort_keys=False).encode()
    return build_site(doc, source=source, raw=raw)


# --- I/O: the only part that asks Slurm (through hpcx.schedulers.slurm) ----------------------------------------


def live_site(ttl_s: float = LIVE_CACHE_S) -> tuple[Site | None, str]:
    """The live Slurm cluster as a site, and how it was found; (None, why not) where no Slurm answers.

    The drafted document is cached for ``ttl_s`` in the user's own cache directory (mode 0600; never where
    others read it), keyed by host, Slurm client and SLURM_CONF, so commands in a row ask Slurm once.
    """
    sinfo = shutil.which(SINFO_ARGV[0])
    if sinfo is None:
        return None, "no site file, and no Slurm here: sinfo is not on PATH"
    cache = _live_cache_path(sinfo)
    doc = _read_live_cache(cache, ttl_s)
    how = f"no site file; discovered from Slurm within the last {ttl_s / 60:g} min"
    if doc is None:
        try:
            doc = draft_site_doc(read_cluster(LIVE_TIMEOUT_S))
        except SchedulerError as exc:  # CommandError too: the controller is down or does not answer
            return None, f"no site file, and Slurm does not answer: {str(exc).splitlines()[0]}"
        how = "no site file; discovered from Slurm now"
        _write_live_cache(cache, doc)
    return site_from_doc(doc, source=f"live cluster {doc['name']}"), how


def _live_cache_path(sinfo: str) -> Path | None:
    base = cache_dir()
    if base is None:
        return None
    key = "\0".join((__version__, socket.gethostname(), sinfo, os.environ.get("SLURM_CONF", "")))
    return base / f"live-site-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _read_live_cache(path: Path | None, ttl_s: float) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        saved = json.loads(path.read_text())
        fresh = 0 <= time.time() - float(saved["saved_at"]) < ttl_s
        return saved["doc"] if fresh else None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, damaged or foreign: ask Slurm again


def _write_live_cache(path: Path | None, doc: dict[str, Any]) -> None:
    if path is not None:
        try:
            atomic_write(path, json.dumps({"saved_at": time.time(), "doc": doc}), mode=0o600)
        except OSError:
            pass  # a cache that cannot be written only costs the next command a query


def read_cluster(timeout_s: float = QUERY_TIMEOUT_S) -> ClusterState:
    """Query the live cluster. Raises CommandError (one line naming the command) when Slurm fails or hangs."""
    nodes, release = parse_sinfo_json(slurm.sinfo_json(timeout_s))
    partitions = slurm.partitions(timeout_s)
    config = slurm.config(timeout_s)
    accounts = qos = None
    if config.get("AccountingStorageType", "").endswith("slurmdbd"):
        accounts, qos = _read_accounting()
    return ClusterState(nodes, partitions, config, release, accounts, qos)


def _read_accounting() -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    try:
        return slurm.accounts(ACCOUNTING_TIMEOUT_S), slurm.qos(ACCOUNTING_TIMEOUT_S)
    except CommandError:
        return None, None  # accounting is optional; the header says it was not reachable
