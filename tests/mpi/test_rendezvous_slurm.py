"""The rendezvous on the real test cluster without the site's HPCX_MASTER_ADDR pin: a 2-node job, with MPI and
without it (srun --resv-ports), finds rank 0's address by itself. The test nodes n1 and n2 are not in DNS;
Slurm's NodeAddr for them is."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slurm

JOB = (
    "import json\n"
    "from hpcx import runtime\n"
    "with runtime.session(torch_backend='gloo') as ctx:\n"
    "    import torch, torch.distributed as dist\n"
    "    t = torch.ones(1) * (ctx.rank + 1); dist.all_reduce(t)\n"
    "    print(json.dumps({'rank': ctx.rank, 'node': ctx.node, 'addr': ctx.master_addr, 'sum': t.item(),\n"
    "                      'mpi': type(ctx.comm).__name__}), flush=True)\n"
)


@pytest.mark.parametrize("mpi", ["1", "0"])
def test_two_nodes_rendezvous_without_the_pin(slurm_hpcx, mpi):
    doc = slurm_hpcx.json(
        "submit",
        "mpi",
        "--no-profile",
        "-N",
        "2",
        "--ntasks-per-node",
        "1",
        "-t",
        "5",
        "--",
        "env",
        "-u",
        "HPCX_MASTER_ADDR",
        f"HPCX_MPI={mpi}",
        "python",
        "-c",
        JOB,
    )
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=480)
    logs = slurm_hpcx("logs", doc["run_id"]).stdout
    assert (row["state"], row["exit_code"]) == ("COMPLETED", 0), logs
    docs = sorted(
        (json.loads(line) for line in logs.splitlines() if line.startswith("{")), key=lambda d: d["rank"]
    )
    assert [(d["rank"], d["node"], d["sum"]) for d in docs] == [(0, "n1", 3.0), (1, "n2", 3.0)], logs
    # n2's NodeAddr is 127.0.0.1: rank 0's route towards it leaves from loopback
    assert {d["addr"] for d in docs} == {"127.0.0.1"}
    assert {d["mpi"] for d in docs} == {"Intracomm" if mpi == "1" else "TorchComm"}
