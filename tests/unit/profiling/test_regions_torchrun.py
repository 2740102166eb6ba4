"""Regions under torchrun: `srun python -m hpcx.run -- torchrun --nproc-per-node 2 train.py` on the second node
of a step. Each worker's regions carry its own global rank, not the node index every worker inherits from
hpcx.run (HPCX_RANK)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from hpcx.reports.timelines import regions
from hpcx.runtime.freeport import free_port

LAUNCHER_PREFIXES = (
    "HPCX_",
    "OMPI_",
    "PMI",
    "SLURM_",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_",
    "MASTER_",
    "TORCHELASTIC",
)
TRAIN = textwrap.dedent("""
    import os, hpcx
    with hpcx.region("step"):
        pass
    # one write per line: the two workers of a node share the agent's stdout, and print() writes piece by piece
    os.write(1, f"worker {os.environ['RANK']} HPCX_RANK {os.environ['HPCX_RANK']}\\n".encode())
""")


def test_each_torchrun_worker_records_regions_under_its_own_rank(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    port = free_port()
    agents = []
    for node in (0, 1):  # one hpcx.run per node, as srun --ntasks-per-node=1 starts them
        env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_PREFIXES)}
        env.update(
            SLURM_PROCID=str(node), SLURM_STEP_NUM_TASKS="2", SLURM_LOCALID="0", SLURM_NODEID=str(node)
        )
        agents.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hpcx.run",
                    "--profile-dir",
                    str(tmp_path / "p"),
                    "--",
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--nnodes=2",
                    f"--node-rank={node}",
                    "--nproc-per-node=2",
                    "--master-addr=127.0.0.1",
                    f"--master-port={port}",
                    "--rdzv-backend=static",
                    str(script),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    outs = []
    try:
        for agent in agents:
            outs.append(agent.communicate(timeout=120))
    finally:
        for agent in agents:
            agent.kill()
    assert [a.returncode for a in agents] == [0, 0], [err[-3000:] for _, err in outs]
    lines = sorted(line for out, _ in outs for line in out.splitlines() if line.startswith("worker"))
    assert lines == [
        "worker 0 HPCX_RANK 0",
        "worker 1 HPCX_RANK 0",
        "worker 2 HPCX_RANK 1",
        "worker 3 HPCX_RANK 1",
    ]
    found = regions(tmp_path / "p")  # as the report reads them: under each worker's rank, one "step" each
    assert found is not None
    per_rank = {r["name"]: [(p["rank"], p["calls"]) for p in r["per_rank"]] for r in found["regions"]}
    assert per_rank == {"step": [(0, 1), (1, 1), (2, 1), (3, 1)]}, per_rank
    files = sorted(p.name.split("-p")[0] for p in (tmp_path / "p").glob("regions-rank-*.jsonl"))
    assert files == [f"regions-rank-{r:05d}" for r in range(4)]
