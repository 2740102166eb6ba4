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
    launcher: str  # mpirun | srun | torchrun | none
    job_id: str | None = None
    attempt: int = 0  # SLURM_RESTART_COUNT: how often the job was requeued


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    try:
        return int(env[key])
    except (KeyError, ValueError):
        return default


def detect(env: Mapping[str, str] | None = None) -> RankEnv:
    """The rank identity this process was started with, from the launcher's environment variables.

    mpirun's OMPI_COMM_WORLD_* win over torchrun's RANK/WORLD_SIZE, which win over an srun step's
    SLURM_PROCID/SLURM_STEP_NUM_TASKS. The batch step itself (no srun) counts as a single rank.
    """
    env = os.environ if env is None else env
    node = env.get("SLURMD_NODENAME") or socket.gethostname()
    common = {"node": node, "job_id": env.get("SLURM_JOB_ID"), "attempt": _int(env, "SLURM_RESTART_COUNT", 0)}
    if "OMPI_COMM_WORLD_RANK" in env:
        return RankEnv(
            _int(env, "OMPI_COMM_WORLD_RANK", 0),
            _int(env, "OMPI_COMM_WORLD_SIZE", 1),
            _int(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0),
            launcher="mpirun",
            **common,
        )
    if "RANK" in env and "WORLD_SIZE" in env:
        return RankEnv(
            _int(env, "RANK", 0),
            _int(env, "WORLD_SIZE", 1),
            _int(env, "LOCAL_RANK", 0),
            launcher="torchrun",
            **common,
        )
    if "SLURM_STEP_NUM_TASKS" in env and "SLURM_PROCID" in env:
        return RankEnv(
            _int(env, "SLURM_PROCID", 0),
            _int(env, "SLURM_STEP_NUM_TASKS", 1),
            _int(env, "SLURM_LOCALID", 0),
            launcher="srun",
            **common,
        )
    return RankEnv(0, 1, 0, launcher="none", **common)
