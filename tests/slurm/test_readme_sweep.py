"""The README's sweep path on the real cluster, as a new user takes it: `hpcx sweep examples/sweeps/lr-scan.yaml`,
then `hpcx compare --sweep RUN --metric loss` (the task logs its loss with hpcx.runtime.log; the two tasks that
diverge on purpose fail and are left out, said per group), then `hpcx report RUN`, whose summary agrees with
its task table."""

from __future__ import annotations

import time

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slurm


def _accounted(hpcx, run_id: str, timeout_s: float = 90) -> tuple[dict, str]:
    """The sweep's report once slurmdbd has every task finished (it lags the jobs' end by a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        doc = hpcx.json("report", run_id, "--no-html")["report"]
        if doc["accounting"] and doc["accounting"]["finished"]:
            return doc, hpcx("report", run_id).stdout
        assert time.monotonic() < deadline, f"no finished accounting after {timeout_s} s: {doc['summary']}"
        time.sleep(2)


def test_readme_sweep_then_compare_then_report(slurm_hpcx, runs_root):
    doc = slurm_hpcx.json("sweep", str(REPO / "examples" / "sweeps" / "lr-scan.yaml"), "--max-parallel", "4")
    assert doc["tasks"] == 10
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=300)
    # lr=0.1 with the small model diverges on purpose: its two seeds fail, the other eight complete.
    assert row["tasks"] == {"COMPLETED": 8, "FAILED": 2}, slurm_hpcx("logs", doc["run_id"]).stdout

    text = slurm_hpcx("compare", "--sweep", doc["run_id"], "--metric", "loss").stdout
    assert text.splitlines()[0].startswith(
        f"loss (rank 0's last value): 8 replicates in 4 groups (tasks of sweep run {doc['run_id']}; 2 not completed, left out)"
    )
    assert "note: lr=0.1,model=small: 2 replicates left out (2 FAILED;" in text
    compared = slurm_hpcx.json("compare", "--sweep", doc["run_id"], "--metric", "loss")
    assert [g["n"] for g in compared["groups"]] == [2, 2, 2, 2]
    assert sorted(r["state"] for r in compared["left_out"]) == ["FAILED", "FAILED"]

    report, text = _accounted(slurm_hpcx, doc["run_id"])
    s = report["summary"]
    assert (s["state"], report["accounting"]["state_counts"]) == ("FAILED", {"COMPLETED": 8, "FAILED": 2})
    assert "COMPLETED,FAILED" not in text and "state FAILED (from sacct: " in text
    assert s["mem_peak_mb"] and "no peak measured" not in text and "0 ranks on 0 nodes" not in text
    assert s["elapsed_s"] >= s["longest_task_s"]  # the whole sweep's span, not one task's
    failed = s["failure"]
    assert failed["state"] == "FAILED" and any(
        "diverged: lr=0.1 model=small" in ln for ln in failed["stderr_tail"]
    )
    head = next(line for line in text.splitlines() if line.split()[:2] == ["task", "lr"])
    assert head.split()[:4] == ["task", "lr", "model", "seed"]
    page = (runs_root / doc["run_id"] / "report" / "report.html").read_text()
    assert "no node sensor records (submit with --profile)" not in page and "0 ranks on 0 nodes" not in page
    assert "10 array tasks with records" in page
