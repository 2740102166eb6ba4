"""What `hpcx report` tells a new user on the real cluster: a failed job's reason and the end of its stderr
right after its state; the nodes it shared with other jobs (Slurm's own record, asked through sacct), which
is what decides whether RAPL's whole-package energy may be called the job's."""

from __future__ import annotations

import subprocess
import time

import pytest

pytestmark = pytest.mark.slurm


def _final_report(hpcx, run_id: str, timeout_s: float = 90) -> tuple[dict, str]:
    """The report once slurmdbd has the finished job (it lags the job's end by a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        doc = hpcx.json("report", run_id, "--no-html")["report"]
        if doc["accounting"] and doc["accounting"]["finished"]:
            return doc, hpcx("report", run_id, "--no-html").stdout
        assert time.monotonic() < deadline, f"no finished accounting after {timeout_s} s: {doc['summary']}"
        time.sleep(2)


def test_failed_job_shows_why_right_after_its_state(slurm_hpcx):
    code = "import sys; print('step 1 done'); print('ValueError: bad shape (3, 4)', file=sys.stderr); sys.exit(3)"
    doc = slurm_hpcx.json("submit", "serial", "-t", "5", "--", "python", "-c", code)
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=180)["state"] == "FAILED"
    report, text = _final_report(slurm_hpcx, doc["run_id"])
    lines = text.splitlines()
    at = next(
        i for i, line in enumerate(lines) if line.startswith("  state FAILED (from sacct), exit code 3")
    )
    assert lines[at + 1] == "  Slurm's reason: none given (FAILED, exit code 3)"
    assert lines[at + 2] == f"  last lines of stderr (logs/slurm-{doc['job_id']}.err, rank 0):"
    assert lines[at + 3] == "    | ValueError: bad shape (3, 4)"
    assert report["summary"]["failure"]["stderr_tail"] == ["ValueError: bad shape (3, 4)"]


def test_report_names_the_jobs_that_shared_its_node(slurm_hpcx):
    job = slurm_hpcx.json("submit", "serial", "-t", "5", "--", "sleep", "12")
    deadline = time.monotonic() + 180
    row = slurm_hpcx.json("status", job["run_id"])["runs"][0]
    while row["state"] != "RUNNING" or not row["nodes"]:
        assert time.monotonic() < deadline and not row["finished"], row
        time.sleep(1)
        row = slurm_hpcx.json("status", job["run_id"])["runs"][0]
    # Another job on the same node meanwhile, submitted past hpcx as another user's would be.
    other = subprocess.run(
        ["sbatch", "--parsable", "-w", row["nodes"], "-t", "2", "--wrap", "sleep 3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert slurm_hpcx.wait_finished(job["run_id"], timeout_s=240)["state"] == "COMPLETED"
    report, text = _final_report(slurm_hpcx, job["run_id"])
    (node,) = report["nodes"]
    assert node["node"] == row["nodes"] and other in node["shared_jobs"], (other, node)
    assert job["job_id"] not in node["shared_jobs"]
