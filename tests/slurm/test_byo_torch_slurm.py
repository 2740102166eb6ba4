"""A training script written for torchrun, with no line of hpcx in it, runs unchanged under the torch-ddp kind
on two nodes: hpcx.run gives each rank torchrun's variables (env:// rendezvous on the step's first node and
Slurm's reserved port), so two such jobs started together on the same nodes do not collide either."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.slurm
SCRIPT = ["python", "examples/frameworks/plain_ddp.py", "--steps", "5"]


def test_two_env_rendezvous_ddp_jobs_on_the_same_nodes_both_complete(slurm_hpcx, runs_root):
    ids = [
        slurm_hpcx.json(
            "submit", "torch-ddp", "-p", "debug", "-N", "2", "--ntasks-per-node", "1", "-t", "5", *SCRIPT
        )["run_id"]
        for _ in range(2)
    ]
    for run_id in ids:
        row = slurm_hpcx.wait_finished(run_id, timeout_s=240)
        logs = slurm_hpcx("logs", run_id).stdout
        assert row["state"] == "COMPLETED", logs
        sums = sorted(re.findall(r"rank (\d) of (\d) \(local 0\): all-reduced sum (\d+)", logs))
        assert sums == [("0", "2", "3"), ("1", "2", "3")], logs  # 1 + 2 over both ranks
        assert "set by you" not in logs and "not set:" not in logs
