"""`hpcx submit --profile` and `--no-profile` on the real test cluster: the same 2-node MPI job, profiled, leaves
per-rank records, node records and communication traces, and its report has the rank table and the calls;
with --no-profile the job runs the same and leaves no profile records at all, and its report (from sacct) says
so."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.slurm

ALLREDUCES = (
    "import numpy as np; from mpi4py import MPI; a = np.ones(4); b = np.empty(4)\n"
    "for _ in range(10): MPI.COMM_WORLD.Allreduce(a, b)\n"
    "print('sum', b[0])\n"
)


def _submit(slurm_hpcx, flag: str) -> dict:
    doc = slurm_hpcx.json(
        "submit",
        "mpi",
        flag,
        "-N",
        "2",
        "--ntasks-per-node",
        "1",
        "-t",
        "5",
        "--",
        "python",
        "-c",
        ALLREDUCES,
    )
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=480)
    assert (row["state"], row["exit_code"]) == ("COMPLETED", 0), slurm_hpcx("logs", doc["run_id"]).stdout
    assert slurm_hpcx("logs", doc["run_id"]).stdout.count("sum 2.0") == 2
    return doc


def _report(slurm_hpcx, run_id: str, timeout_s: float = 90) -> tuple[dict, str]:
    """The report once slurmdbd has the finished job (it lags the job's end by a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        doc = slurm_hpcx.json("report", run_id)["report"]
        if doc["accounting"] and doc["accounting"]["finished"]:
            return doc, slurm_hpcx("report", run_id).stdout
        assert time.monotonic() < deadline, f"no finished accounting after {timeout_s} s: {doc['summary']}"
        time.sleep(2)


def _profile_files(runs_root, run_id: str) -> dict[str, list[str]]:
    profile = runs_root / run_id / "profile"
    return {
        kind: sorted(
            p.name.split("-p")[0] if kind == "comm" else p.name.split(".")[0]
            for p in profile.glob(f"{kind}-*")
        )
        for kind in ("rank", "node", "comm")
    }


def test_profile_records_ranks_nodes_and_communication(slurm_hpcx, runs_root):
    doc = _submit(slurm_hpcx, "--profile")
    files = _profile_files(runs_root, doc["run_id"])
    assert files["rank"] == ["rank-00000", "rank-00001"], files
    assert files["node"] == ["node-n1", "node-n2"] and files["comm"] == [
        "comm-rank-00000",
        "comm-rank-00001",
    ], files
    report, text = _report(slurm_hpcx, doc["run_id"])
    assert report["summary"]["ranks"] == 2 and report["comm"]["calls"], report["summary"]
    assert "2 ranks on 2 nodes (n1, n2), finished" in text and "no profile records" not in text, text
    assert "mpi Allreduce: 20 calls" in text, text


def test_no_profile_records_nothing_and_the_report_says_so(slurm_hpcx, runs_root):
    doc = _submit(slurm_hpcx, "--no-profile")
    assert "export HPCX_PROFILE=0\n" in (runs_root / doc["run_id"] / "job.sbatch").read_text()
    assert _profile_files(runs_root, doc["run_id"]) == {"rank": [], "node": [], "comm": []}
    report, text = _report(slurm_hpcx, doc["run_id"])
    s = report["summary"]
    assert (s["state"], s["state_source"], s["ranks"], report["comm"]) == ("COMPLETED", "sacct", 0, None)
    assert "no profile records (submitted with --no-profile" in text, text
