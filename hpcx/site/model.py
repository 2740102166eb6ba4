"""The site: what a cluster admin says about the cluster, parsed into frozen objects."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcx.spec import parse_mem_mb, parse_time_min


@dataclass(frozen=True)
class NodeType:
    """``count`` identical nodes of a partition."""

    count: int
    cpus: int
    mem_mb: int | None = None
    gpus: int = 0
    gpu_type: str | None = None
    features: tuple[str, ...] = ()
    nodes: str | None = None  # their names, a Slurm host list, where the site (a live cluster) says


@dataclass(frozen=True)
class Partition:
    name: str
    max_time_min: int | None  # None: unlimited
    max_nodes: int
    cpus_per_node: int
    mem_per_node_mb: int | None = None
    gpus_per_node: int = 0
    gpu_type: str | None = None
    default_time_min: int | None = None
    features: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    qos: tuple[str, ...] = ()
    max_array_size: int | None = None
    launcher: str = "srun"
    node_types: tuple[NodeType, ...] = ()  # empty: every node as the per-node values above
    nodes: str | None = None  # the partition's node names, a Slurm host list, where the site says

    @property
    def max_gpus_per_node(self) -> int:
        return max([self.gpus_per_node, *(t.gpus for t in self.node_types)])


@dataclass(frozen=True)
class Launcher:
    name: str
    type: str  # srun | mpirun | torchrun
    mpi: str | None = None
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class NamedResource:
    """A resource the admin named: ``--resource NAME=VALUE`` becomes ``#SBATCH {flag}=VALUE``."""

    name: str
    flag: str
    help: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Site:
    name: str
    source: str  # the file it came from, or "builtin"
    sha256: str
    cluster: str
    scheduler: str  # slurm | local
    partitions: dict[str, Partition]
    default_partition: str | None
    launchers: dict[str, Launcher]
    module_system: str = "none"
    modules: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    python: str | None = None
    template_dirs: tuple[Path, ...] = ()
    runs_root: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)  # request defaults, and profile (bool): --profile
    locked_blocks: tuple[str, ...] = ()
    resources: dict[str, NamedResource] = field(default_factory=dict)
    allow_env: tuple[str, ...] = ()
    redact_env: tuple[str, ...] = ()  # regexes: more variable names the provenance record leaves out
    energy: dict[str, Any] = field(default_factory=dict)  # carbon_intensity_g_per_kwh, carbon_source, pue

    def launcher_for(self, partition: Partition) -> Launcher:
        return self.launchers.get(partition.launcher) or Launcher(partition.launcher, partition.launcher)


_UNLIMITED = ("infinite", "unlimited")


def _time_or_none(value: Any) -> int | None:
    if value is None or str(value).lower() in _UNLIMITED:
        return None
    return parse_time_min(value)


def _partition(name: str, doc: dict[str, Any]) -> Partition:
    return Partition(
        name=name,
        max_time_min=_time_or_none(doc.get("max_time")),
        default_time_min=_time_or_none(doc.get("default_time")),
        max_nodes=doc["max_nodes"],
        cpus_per_node=doc["cpus_per_node"],
        mem_per_node_mb=doc.get("mem_per_node_mb"),
        gpus_per_node=doc.get("gpus_per_node", 0),
        gpu_type=doc.get("gpu_type"),
        features=tuple(doc.get("features", ())),
        accounts=tuple(doc.get("accounts", ())),
        qos=tuple(doc.get("qos", ())),
        max_array_size=doc.get("max_array_size"),
        launcher=doc.get("launcher", "srun"),
        nodes=doc.get("nodes"),
        node_types=tuple(
            NodeType(
                t["count"],
                t["cpus"],
                t.get("mem_mb"),
                t.get("gpus", 0),
                t.get("gpu_type"),
                tuple(t.get("features", ())),
                t.get("nodes"),
            )
            for t in doc.get("node_types", ())
        ),
    )


def build_site(doc: dict[str, Any], *, source: str, raw: bytes, cluster: str | None = None) -> Site:
    """Turn a validated site document into a Site, picking ``cluster`` (or the only/first one)."""
    clusters = doc["clusters"]
    cluster_name = cluster or next(iter(clusters))
    cdoc = clusters[cluster_name]
    base = Path(source).parent if source != "builtin" else Path.cwd()
    envdoc = doc.get("environment", {})
    return Site(
        name=doc.get("name", cluster_name),
        source=source,
        sha256=hashlib.sha256(raw).hexdigest(),
        cluster=cluster_name,
        scheduler=cdoc["scheduler"],
        partitions={n: _partition(n, p) for n, p in cdoc["partitions"].items()},
        default_partition=cdoc.get("default_partition"),
        launchers={n: _launcher(n, ld) for n, ld in cdoc.get("launchers", {}).items()},
        module_system=envdoc.get("module_system", "none"),
        modules=tuple(envdoc.get("modules", ())),
        env={k: str(v) for k, v in envdoc.get("env", {}).items()},
        python=envdoc.get("python"),
        template_dirs=tuple((base / os.path.expanduser(d)).resolve() for d in doc.get("template_dirs", ())),
        runs_root=doc.get("runs_root"),
        defaults=_request_defaults(doc),
        locked_blocks=tuple(doc.get("locked_blocks", ())),
        resources={n: _resource(n, r) for n, r in doc.get("resources", {}).items()},
        allow_env=tuple(doc.get("allow_env", ())),
        redact_env=tuple(doc.get("redact_env", ())),
        energy=dict(doc.get("energy", {})),
    )


def _launcher(name: str, ld: dict[str, Any]) -> Launcher:
    return Launcher(name, ld["type"], ld.get("mpi"), tuple(ld.get("args", ())))


def _resource(name: str, r: dict[str, Any]) -> NamedResource:
    return NamedResource(name, r["flag"], r.get("help", ""), tuple(r.get("choices", ())))


def _request_defaults(doc: dict[str, Any]) -> dict[str, Any]:
    """The site's request defaults, with ``mem`` in MB as the rest of hpcx counts it."""
    defaults = dict(doc.get("defaults", {}))
    if "mem" in defaults:
        defaults["mem"] = parse_mem_mb(defaults["mem"])
    return defaults


def builtin_local_doc() -> dict[str, Any]:
    """The site used when none is configured: this machine, jobs run by bash, ranks through mpirun."""
    # mpirun --oversubscribe runs more ranks than cores, slowly but correctly.
    cpus = max(os.cpu_count() or 1, 64)
    partition = {"max_time": "infinite", "max_nodes": 1, "cpus_per_node": cpus, "launcher": "mpirun"}
    return {
        "version": 1,
        "name": "local",
        "clusters": {
            "local": {
                "scheduler": "local",
                "default_partition": "local",
                "partitions": {"local": partition},
                "launchers": {"mpirun": {"type": "mpirun", "args": ["--oversubscribe"]}},
            }
        },
        "environment": {
            "env": {
                "OMPI_MCA_btl": "self,vader,tcp",
                "OMPI_MCA_btl_tcp_if_include": "lo",
                "OMPI_MCA_oob_tcp_if_include": "lo",
                "GLOO_SOCKET_IFNAME": "lo",
            }
        },
    }
