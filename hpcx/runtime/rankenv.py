"""Who am I among the ranks? Read from what the launcher set (mpirun, srun, torchrun); pure, no MPI needed."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RankEnv:
    rank: int
    size: int
    local_rank: int
    node: str
    launcher: str  # mpirun | mpiexec | srun | torchrun | pmix | none
    job_id: str | None = None
    attempt: int = 0  # SLURM_RESTART_COUNT: how often the job was requeued


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(env[key])
    except (KeyError, ValueError):
        return default


def _local_rank(env: Mapping[str, str], *keys: str) -> int:
    """The first of ``keys`` that is set (launchers name the node-local rank differently), else 0."""
    for key in keys:
        if key in env:
            return _int(env, key, 0)
    return 0


# The launchers detect() recognises, in the order it tries them: (launcher, variables that must all be set,
# rank, size, node-local rank (the first of these that is set, else 0)).
LAUNCHERS: tuple[tuple[str, tuple[str, ...], str, str, tuple[str, ...]], ...] = (
    ("torchrun", ("RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID"), "RANK", "WORLD_SIZE", ("LOCAL_RANK",)),
    (
        "mpirun",
        ("OMPI_COMM_WORLD_RANK",),
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
        ("OMPI_COMM_WORLD_LOCAL_RANK",),
    ),
    (
        "mpiexec",
        ("PMI_RANK", "PMI_SIZE"),
        "PMI_RANK",
        "PMI_SIZE",
        ("MPI_LOCALRANKID", "PMI_LOCAL_RANK", "SLURM_LOCALID"),
    ),
    ("torchrun", ("RANK", "WORLD_SIZE"), "RANK", "WORLD_SIZE", ("LOCAL_RANK",)),
    (
        "srun",
        ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID"),
        "SLURM_PROCID",
        "SLURM_STEP_NUM_TASKS",
        ("SLURM_LOCALID",),
    ),
    ("pmix", ("PMIX_RANK", "PMIX_SIZE"), "PMIX_RANK", "PMIX_SIZE", ("PMIX_LOCAL_RANK", "MPI_LOCALRANKID")),
)


def detect(env: Mapping[str, str] | None = None) -> RankEnv:
    """The rank identity this process was started with, from the launcher's environment variables.

    A torchrun worker (TORCHELASTIC_RUN_ID with RANK/WORLD_SIZE) is itself, whatever launched the torchrun
    agent above it. Then mpirun's OMPI_COMM_WORLD_*, MPICH's and Intel MPI's PMI_RANK/PMI_SIZE (``mpiexec``;
    local rank MPI_LOCALRANKID or PMI_LOCAL_RANK), torchrun's RANK/WORLD_SIZE set by hand, an srun step's
    SLURM_PROCID/SLURM_STEP_NUM_TASKS, and PMIx's PMIX_RANK (size PMIX_SIZE), in that order. The batch step
    itself (no srun) counts as a single rank.
    """
    env = os.environ if env is None else env
    node = env.get("SLURMD_NODENAME") or socket.gethostname()
    job_id = env.get("SLURM_JOB_ID")
    attempt = _int(env, "SLURM_RESTART_COUNT", 0)
    for launcher, required, rank, size, local in LAUNCHERS:
        if all(key in env for key in required):
            return RankEnv(
                _int(env, rank, 0),
                _int(env, size, 1),
                _local_rank(env, *local),
                node=node,
                launcher=launcher,
                job_id=job_id,
                attempt=attempt,
            )
    return RankEnv(0, 1, 0, node=node, launcher="none", job_id=job_id, attempt=attempt)


def per_node_counts(spec: str) -> list[int]:
    """Slurm's compressed per-node counts (SLURM_STEP_TASKS_PER_NODE, SLURM_JOB_CPUS_PER_NODE: ``2(x3),1``) as
    one number per node; parts that are not counts are left out."""
    counts: list[int] = []
    for part in filter(None, spec.split(",")):
        count, _, times = part.partition("(x")
        times = times.rstrip(")")
        if count.isdigit() and (not times or times.isdigit()):
            counts += [int(count)] * (int(times) if times else 1)
    return counts
