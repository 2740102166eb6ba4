"""Memory cross-check on the real test cluster: 4 ranks on 2 nodes touch known, different amounts; hpcx's
per-rank peaks match them, Slurm's accounting (sacct MaxRSS of the step) agrees with hpcx's largest rank, and
each node's sensors are read once (one node file per node, by its local rank 0)."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from hpcx.reports.ranks import summarize_ranks
from hpcx.rundir.records import rank_files, read_nodes, read_records
from tests.mpi.test_profiling_mpi import STEP_MB, expected_mb, write_alloc

pytestmark = pytest.mark.slurm
HOLD_S = 8  # longer than JobAcctGatherFrequency (5 s here), so Slurm's sampler sees the peak


def _sacct_step(job_id: str, timeout_s: float = 60) -> tuple[float, int]:
    """MaxRSS (MB) of the job's first srun step and the task that reached it, once slurmdbd has them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run(
            [
                "sacct",
                "-j",
                job_id,
                "--noheader",
                "--parsable2",
                "--units=K",
                "--format=JobID,MaxRSS,MaxRSSTask",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        for line in out.splitlines():
            step, rss, task = line.split("|")
            if step == f"{job_id}.0" and rss and task:
                return float(rss.rstrip("K")) / 1024, int(task)
        time.sleep(2)
    raise AssertionError(f"sacct has no MaxRSS for step {job_id}.0 after {timeout_s} s:\n{out}")


def test_known_allocations_agree_with_sacct_and_nodes_are_read_once(slurm_hpcx, runs_root):
    program = write_alloc(runs_root)  # the runs root is where the nodes can read and write
    doc = slurm_hpcx.json(
        "submit",
        "mpi",
        "--nodes",
        "2",
        "--ntasks-per-node",
        "2",
        "--mem",
        "3000",
        "--",
        "python",
        str(program),
        str(STEP_MB),
        str(HOLD_S),
    )
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=240)
    logs = slurm_hpcx("logs", doc["run_id"]).stdout
    assert (row["state"], row["exit_code"]) == ("COMPLETED", 0), logs

    expected = expected_mb(logs)
    assert sorted(expected) == [0, 1, 2, 3], logs
    profile = runs_root / doc["run_id"] / "profile"
    ranks = {r["rank"]: r for r in summarize_ranks(profile)}  # as `hpcx report` reads them
    assert all(ranks[r]["finished"] for r in expected), ranks
    peaks = {r: ranks[r]["peak_rss_mb"] for r in expected}
    for rank, want in expected.items():
        assert peaks[rank] == pytest.approx(want, rel=0.05), (rank, peaks[rank], want)

    # Slurm's task RSS is the whole task: hpcx.run's wrapper (its RSS is in the end record) plus the rank.
    sacct_mb, task = _sacct_step(doc["job_id"])
    top = max(peaks, key=peaks.get)
    ours = peaks[top] + ranks[top]["sampler_rss_mb"]
    print(f"sacct MaxRSS {sacct_mb:.1f} MB (task {task}); hpcx {ours:.1f} MB; peaks {peaks}")
    assert task == top and sacct_mb == pytest.approx(ours, rel=0.05), (sacct_mb, task, ours, peaks)

    nodes = read_nodes(profile)
    assert sorted(nodes) == ["n1", "n2"]
    for name, node in nodes.items():
        (path,) = rank_files(profile)[node["start"]["rank"]]
        collector = next(read_records(path))  # the collecting rank's start record
        assert collector["type"] == "start" and collector["node"] == name and collector["local_rank"] == 0
    text = slurm_hpcx("report", doc["run_id"]).stdout
    # said once
    assert re.search(r"^  energy: unavailable on n\[1-2\]: cpu_package, dram: ", text, re.M), text


ALLREDUCES = (
    "import numpy as np; from mpi4py import MPI; a = np.ones(4); b = np.empty(4)\n"
    "for _ in range(10): MPI.COMM_WORLD.Allreduce(a, b)\n"
)


@pytest.mark.parametrize("profile", [True, False])
def test_submit_profile_traces_an_unmodified_mpi_program(slurm_hpcx, runs_root, profile):
    """`hpcx submit --profile` reaches the ranks: hpcx.run injects the tracing hook, so a program that knows
    nothing of hpcx leaves per-rank communication records; without it, nothing is traced."""
    flag = "--profile" if profile else "--no-profile"
    doc = slurm_hpcx.json(
        "submit", "mpi", flag, "--nodes", "2", "--ntasks-per-node", "1", "--", "python", "-c", ALLREDUCES
    )
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=180)
    assert row["state"] == "COMPLETED", slurm_hpcx("logs", doc["run_id"]).stdout
    files = sorted((runs_root / doc["run_id"] / "profile").glob("comm-rank-*.jsonl"))
    if not profile:
        assert files == []
        return
    from hpcx.rundir.records import read_records

    ranks = {}
    for f in files:
        last = [r for r in read_records(f) if r.get("type") == "comm"][-1]
        ranks[last["rank"]] = {e["call"]: e["calls"] for e in last["entries"] if e["lib"] == "mpi"}
    assert ranks == {0: {"Allreduce": 10}, 1: {"Allreduce": 10}}, ranks
