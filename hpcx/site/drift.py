"""Drift between a site file and the live cluster: a pure comparison of two Site objects."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hpcx.site.model import Partition, Site
from hpcx.spec import format_time

# The partition limits compared, in the order a report lists them.
COMPARED_FIELDS = (
    "max_time",
    "default_time",
    "max_nodes",
    "cpus_per_node",
    "mem_per_node_mb",
    "gpus_per_node",
    "gpu_type",
    "features",
    "accounts",
    "qos",
    "max_array_size",
)
PRESENT, ABSENT = "present", "absent"


@dataclass(frozen=True)
class Drift:
    """One difference: ``partition`` None means a cluster-wide value (default partition, cluster name)."""

    partition: str | None
    field: str
    site: Any
    cluster: Any

    def text(self) -> str:
        """One line for a person, e.g. "partition debug: max_time site 00:30:00, cluster 01:00:00"."""
        where = f"partition {self.partition}" if self.partition is not None else "cluster"
        if self.field == "partition":
            gone = self.cluster == ABSENT
            return f"{where}: " + (
                "gone from the cluster" if gone else "new on the cluster, not in the site file"
            )
        return f"{where}: {self.field} site {_show(self.site)}, cluster {_show(self.cluster)}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_sites(site: Site, cluster: Site) -> list[Drift]:
    """Every difference between what ``site`` states and what ``cluster`` (drafted from Slurm) has.

    A limit the site file leaves out counts as drift when the cluster has it: the file then misses a check.
    Order: cluster-wide values, the site file's partitions in its order, then partitions new on the cluster.
    """
    drift = _cluster_drift(site, cluster)
    for name, partition in site.partitions.items():
        if name not in cluster.partitions:
            drift.append(Drift(name, "partition", PRESENT, ABSENT))
        else:
            drift += compare_partitions(partition, cluster.partitions[name])
    drift += [Drift(n, "partition", ABSENT, PRESENT) for n in cluster.partitions if n not in site.partitions]
    return drift


def compare_partitions(site: Partition, cluster: Partition) -> list[Drift]:
    """The limits of one partition that differ, as Drift entries in COMPARED_FIELDS order."""
    mine, theirs = partition_limits(site), partition_limits(cluster)
    return [Drift(site.name, f, mine[f], theirs[f]) for f in COMPARED_FIELDS if mine[f] != theirs[f]]


def partition_limits(p: Partition) -> dict[str, Any]:
    """A partition's compared limits in the site file's units and spelling (times as Slurm prints them)."""
    return {
        "max_time": _time(p.max_time_min),
        "default_time": None if p.default_time_min is None else format_time(p.default_time_min),
        "max_nodes": p.max_nodes,
        "cpus_per_node": p.cpus_per_node,
        "mem_per_node_mb": p.mem_per_node_mb,
        "gpus_per_node": p.gpus_per_node,
        "gpu_type": p.gpu_type if p.gpus_per_node else None,
        "features": sorted(p.features),
        "accounts": sorted(p.accounts),
        "qos": sorted(p.qos),
        "max_array_size": p.max_array_size,
    }


def _cluster_drift(site: Site, cluster: Site) -> list[Drift]:
    drift = []
    if site.cluster != cluster.cluster:
        drift.append(Drift(None, "cluster", site.cluster, cluster.cluster))
    if site.default_partition != cluster.default_partition:
        drift.append(Drift(None, "default_partition", site.default_partition, cluster.default_partition))
    return drift


def _time(minutes: int | None) -> str:
    return "UNLIMITED" if minutes is None else format_time(minutes)


def _show(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, list):
        return ",".join(value) if value else "(none)"
    return str(value)
