"""``python -m hpcx.runtime.torchrun [torchrun options] SCRIPT ARGS...``: torchrun, once per node, with what the
allocation says.

The torch-ddp kind's ``--set mode=torchrun`` starts this with ``srun --ntasks-per-node=1`` (under hpcx.run). It
runs ``torch.distributed.run`` in its own process (exec: hpcx.run's child is the agent) with, unless given:

- ``--nnodes`` the step's node count, ``--nproc-per-node`` the GPUs Slurm gave the node (else 1);
- ``--rdzv-backend=c10d`` with ``--rdzv-endpoint`` an IP of the step's first node that every node reaches (as
  hpcx's own bootstrap finds it) and the port Slurm reserved for the step (``srun --resv-ports``), else the one
  the batch script found free on that node (``HPCX_RDZV_PORT``); ``--rdzv-id`` the job's id;
- ``--rdzv-conf is_host=1`` on the first node only (where the address is the loopback, as on a one-host test
  cluster, every node would take itself for the host), and ``--local-addr`` on every node whose address is known
  (the first node's as above, another's as Slurm or the resolver gives it), so the workers' MASTER_ADDR is an
  address and not a host name the other nodes may not resolve, whichever agent c10d makes rank 0.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from hpcx.errors import RuntimeFailure

RUNNER = "torch.distributed.run"
# torchrun's options that take a value, in both of its spellings; a value may follow as the next word or after =
_VALUED = (
    "nnodes",
    "nproc-per-node",
    "rdzv-backend",
    "rdzv-endpoint",
    "rdzv-id",
    "rdzv-conf",
    "local-addr",
    "node-rank",
    "master-addr",
    "master-port",
    "max-restarts",
    "monitor-interval",
    "start-method",
    "role",
    "log-dir",
    "redirects",
    "tee",
    "local-ranks-filter",
    "logs-specs",
)


def _option_name(word: str) -> str | None:
    """``--nproc_per_node=2`` -> ``nproc-per-node``; None for a word that is not a long option."""
    if not word.startswith("--") or word == "--":
        return None
    return word[2:].split("=", 1)[0].replace("_", "-")


def split_options(argv: list[str]) -> tuple[dict[str, str | None], list[str], list[str]]:
    """torchrun's own options (name -> value, None for a flag), their words as given, and the program with its
    arguments (from the first word that is not an option of torchrun's)."""
    given: dict[str, str | None] = {}
    i = 0
    while i < len(argv):
        name = _option_name(argv[i])
        if name is None:
            break
        if "=" in argv[i] or name not in _VALUED:
            given[name] = argv[i].split("=", 1)[1] if "=" in argv[i] else None
            i += 1
        else:
            given[name] = argv[i + 1] if i + 1 < len(argv) else None
            i += 2
    return given, argv[:i], argv[i:]


def _endpoint_port(env: Mapping[str, str], nnodes: int) -> int:
    """The step's first reserved port, else HPCX_RDZV_PORT, else (one node) a free one."""
    first = env.get("SLURM_STEP_RESV_PORTS", "").split(",")[0].split("-")[0]
    if first.isdigit():
        return int(first)
    if env.get("HPCX_RDZV_PORT", "").isdigit():
        return int(env["HPCX_RDZV_PORT"])
    if nnodes == 1:
        from hpcx.runtime.freeport import free_port

        return free_port()
    raise RuntimeFailure(
        "torchrun's rendezvous port: the step has no reserved port (SLURM_STEP_RESV_PORTS) and HPCX_RDZV_PORT "
        "is not set",
        hint="launch with `srun --resv-ports=1` (slurm.conf needs MpiParams=ports=12000-12999), or export "
        "HPCX_RDZV_PORT with a port free on the first node",
    )


def _own_address(env: Mapping[str, str]) -> str | None:
    """This node's IP address as Slurm or the resolver gives it (None where its name does not resolve): c10d
    picks the agent whose address sorts first as rank 0, and its workers' MASTER_ADDR is that agent's address."""
    from hpcx.runtime.dist import _node_address

    node = env.get("SLURMD_NODENAME")
    return _node_address(node) if node else None


def nproc_per_node(env: Mapping[str, str]) -> str:
    """The workers per node when the user names none: the GPUs Slurm gave the node, else 1."""
    gpus = env.get("SLURM_GPUS_ON_NODE", "")
    return gpus if gpus.isdigit() and int(gpus) > 0 else "1"


def torchrun_argv(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """torch.distributed.run's arguments: the user's, and the ones the allocation decides that the user left."""
    given, options, program = split_options(argv)
    if not program:
        raise RuntimeFailure(
            "no program to run", hint="python -m hpcx.runtime.torchrun [options] SCRIPT ARGS"
        )
    nnodes = env.get("SLURM_STEP_NUM_NODES") or env.get("SLURM_NNODES") or "1"
    first_node = env.get("SLURM_NODEID", "0") == "0"
    added: list[str] = []
    if "nnodes" not in given:
        added.append(f"--nnodes={nnodes}")
    if "nproc-per-node" not in given:
        added.append(f"--nproc-per-node={nproc_per_node(env)}")
    if "standalone" not in given and "rdzv-endpoint" not in given and "master-addr" not in given:
        from hpcx.runtime.dist import first_node_address

        addr = first_node_address()
        port = _endpoint_port(env, int(nnodes.split(":")[-1]))
        added += ["--rdzv-backend=c10d", f"--rdzv-endpoint={addr}:{port}"]
        if "rdzv-conf" not in given:
            added.append(f"--rdzv-conf=is_host={int(first_node)}")
        local = addr if first_node else _own_address(env)
        if (
            local and "local-addr" not in given
        ):  # the address the workers' MASTER_ADDR is, whichever agent is 0
            added.append(f"--local-addr={local}")
    if "rdzv-id" not in given and env.get("SLURM_JOB_ID"):
        added.append(f"--rdzv-id={env['SLURM_JOB_ID']}")
    return [*added, *options, *program]


def step_cpus(env: Mapping[str, str]) -> int:
    """CPUs the one agent task of each node may use: the job's CPUs on its smallest node (SLURM_JOB_CPUS_PER_NODE,
    e.g. ``4(x2),2``). srun would otherwise give the step one task's share (``-c``), and all the node's workers
    would share it where Slurm binds tasks to CPUs."""
    from hpcx.runtime.rankenv import per_node_counts

    counts = per_node_counts(env.get("SLURM_JOB_CPUS_PER_NODE", ""))
    return min(counts) if counts else int(env.get("SLURM_CPUS_ON_NODE", "1") or 1)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--step-cpus"]:  # for the batch script: the CPUs per task of the agents' step
        print(step_cpus(os.environ))
        return 0
    if args[:1] == ["--"]:
        args = args[1:]
    try:
        full = torchrun_argv(args, os.environ)
    except RuntimeFailure as exc:
        print(f"hpcx.runtime.torchrun: {exc.message} ({exc.hint})", file=sys.stderr, flush=True)
        return 2
    print(f"hpcx.runtime.torchrun: torchrun {' '.join(full)}", file=sys.stderr, flush=True)
    os.execv(sys.executable, [sys.executable, "-m", RUNNER, *full])
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main())
