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


def _torchrun_job(slurm_hpcx, minutes: str, *command: str) -> dict:
    """Two nodes x two workers under the torchrun launcher, in the debug partition."""
    options = ["-p", "debug", "-N", "2", "--ntasks-per-node", "2", "--set", "mode=torchrun", "-t", minutes]
    return slurm_hpcx.json("submit", "torch-ddp", *options, *command)


def test_torchrun_launcher_two_nodes_by_two_workers_are_four_ranks_in_the_report(slurm_hpcx):
    doc = _torchrun_job(slurm_hpcx, "5", *SCRIPT)
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=300)
    logs = slurm_hpcx("logs", doc["run_id"]).stdout
    assert row["state"] == "COMPLETED", logs
    sums = sorted(re.findall(r"rank (\d) of (\d) \(local (\d)\): all-reduced sum (\d+)", logs))
    assert sums == [(str(r), "4", str(r % 2), "10") for r in range(4)], logs  # 1 + 2 + 3 + 4
    assert re.search(r"--rdzv-endpoint=127\.0\.0\.1:\d+", logs) and "--rdzv-conf=is_host=1" in logs, logs
    report = slurm_hpcx.json("report", doc["run_id"])["report"]
    ranks = report["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1, 2, 3]
    nodes = [r["node"] for r in ranks]  # c10d numbers the agents by address: both loopback here, either first
    assert nodes[0] == nodes[1] != nodes[2] == nodes[3] and set(nodes) == {"n1", "n2"}
    assert all(r["launcher"] == "torchrun" and r["peak_rss_mb"] > 100 and r["exit_code"] == 0 for r in ranks)
    launch = report["launch"]
    assert (launch["launcher"], launch["agents"]) == ("torchrun", 2)
    assert launch["framework"].startswith("torch.distributed ")
    assert "ranks started by 4 torchrun, 2 torchrun agents" in slurm_hpcx("report", doc["run_id"]).stdout


FAILING = """
import os, sys, time
import torch.distributed as dist
dist.init_process_group("gloo")
if dist.get_rank() == 3:
    sys.exit(3)
dist.barrier()  # the others wait here for rank 3, which never comes
time.sleep(600)
"""


def test_a_failing_torchrun_worker_ends_the_job_promptly(slurm_hpcx, runs_root):
    script = runs_root / "failing.py"
    script.write_text(FAILING)
    doc = _torchrun_job(slurm_hpcx, "10", "python", str(script))
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=150)  # not the 10 minutes of its limit
    assert row["state"] == "FAILED", slurm_hpcx("logs", doc["run_id"]).stdout
