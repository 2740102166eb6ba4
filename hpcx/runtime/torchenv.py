"""torchrun's environment contract for the ranks hpcx.run starts in a torch job, so that a script written for
torchrun (``init_process_group`` with env://), Lightning, accelerate or the Hugging Face Trainer runs unchanged:
RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK and NODE_RANK from the launcher, MASTER_ADDR an IP of
the step's first node (where rank 0 runs) that hpcx checks as its own bootstrap does, MASTER_PORT the port Slurm
reserved for the step (the same on every node, held by Slurm for the step: no arithmetic on the job id)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from hpcx.errors import RuntimeFailure
from hpcx.runtime.rankenv import RankEnv

KEYS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "NODE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
)
TORCH_KINDS = ("torch-ddp",)
# A sitecustomize that leaves torch.distributed torn down and gloo idle at exit (see it): first on PYTHONPATH.
EXIT_SITE = Path(__file__).resolve().parent / "exitsite"
# A command that is torchrun itself sets its workers' variables from its own arguments.
_TORCHRUN = ("torchrun", "torch.distributed.run", "torch.distributed.launch")


def wanted(env: Mapping[str, str], rank: RankEnv, command: list[str]) -> bool:
    """Whether the command gets torchrun's variables: a torch job's rank (HPCX_KIND, or HPCX_TORCH_ENV=1 for any
    job), started by srun or mpirun (a torchrun worker has them already), that is not torchrun's agent."""
    if rank.launcher in ("torchrun", "none") or not torch_job(env):
        return False
    return not is_agent(command)


def torch_job(env: Mapping[str, str]) -> bool:
    """A torch job: its kind is one of TORCH_KINDS, or HPCX_TORCH_ENV=1; HPCX_TORCH_ENV=0 says it is not."""
    if env.get("HPCX_TORCH_ENV") == "0":
        return False
    return env.get("HPCX_KIND") in TORCH_KINDS or env.get("HPCX_TORCH_ENV") == "1"


def agent_word(command: list[str]) -> int | None:
    """Where in the command torchrun's agent is named (``torchrun``, ``python -m torch.distributed.run``,
    ``python -m hpcx.runtime.torchrun``): its options follow; None for a command that starts no agent."""
    return next((i for i, word in enumerate(command[:3]) if word.endswith(_TORCHRUN)), None)


def is_agent(command: list[str]) -> bool:
    """Whether the command starts torchrun's agent: its workers are the ranks."""
    return agent_word(command) is not None


def expected_workers(command: list[str], env: Mapping[str, str]) -> int | None:
    """How many workers the torchrun agent ``command`` starts on its node: its ``--nproc-per-node``, else what
    hpcx.runtime.torchrun gives it (the node's GPUs, else 1) or torchrun's default 1; None for a value that the
    agent decides (``gpu``, ``auto``) or a command that is not an agent's."""
    from hpcx.runtime.torchrun import nproc_per_node, split_options

    at = agent_word(command)
    if at is None:
        return None
    given, _, _ = split_options(command[at + 1 :])
    value = given.get("nproc-per-node")
    if value is None:
        value = nproc_per_node(env) if command[at].endswith("hpcx.runtime.torchrun") else "1"
    return int(value) if value.isdigit() and int(value) > 0 else None


def with_exit_site(env: Mapping[str, str]) -> str:
    """PYTHONPATH with hpcx's exit hook first (a torch job's processes: see exitsite/sitecustomize.py)."""
    return os.pathsep.join(filter(None, [str(EXIT_SITE), env.get("PYTHONPATH")]))


def torchrun_env(env: Mapping[str, str], rank: RankEnv) -> tuple[dict[str, str], list[str]]:
    """The variables to set and, for each one the user set already (it wins), a sentence for the log."""
    from hpcx.runtime.dist import first_node_address, ranks_on_node, reserved_port

    node_rank = env.get("SLURM_NODEID", "0")
    values = {
        "RANK": str(rank.rank),
        "WORLD_SIZE": str(rank.size),
        "LOCAL_RANK": str(rank.local_rank),
        "LOCAL_WORLD_SIZE": str(ranks_on_node()),
        "GROUP_RANK": node_rank,
        "NODE_RANK": node_rank,
    }
    notes: list[str] = []
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if env.get(key):
            continue
        try:
            values[key] = first_node_address() if key == "MASTER_ADDR" else str(reserved_port())
        except RuntimeFailure as exc:
            notes.append(f"{key} not set: {exc.message} ({exc.hint})")
    out = {}
    for key, value in values.items():
        if env.get(key) not in (None, "", value):
            notes.append(f"{key}={env[key]} set by you, kept (hpcx would set {value})")
        else:
            out[key] = value
    return out, notes
