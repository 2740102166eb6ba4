"""The embedded default: the same rendered script run by bash on this machine, ranks through mpirun."""

import json
import time

import pytest

pytestmark = pytest.mark.mpi


def test_local_mpi_job_end_to_end(hpcx, runs_root):
    doc = hpcx.json(
        "submit",
        "mpi",
        "--ntasks-per-node",
        "2",
        "--",
        "python",
        "examples/allreduce_hdf5.py",
        "--seconds",
        "1.5",
    )
    assert {"run_id", "run_dir", "job_id"} <= set(doc) and doc["job_id"].startswith("local-")
    row = hpcx.wait_finished(doc["run_id"], timeout_s=120)
    assert row["state"] == "COMPLETED" and row["exit_code"] == 0, hpcx("logs", doc["run_id"]).stdout

    out = hpcx("logs", doc["run_id"]).stdout
    assert "mpi allreduce=3 torch allreduce=3 backend=gloo" in out and "hdf5=ok" in out
    report = hpcx("report", doc["run_id"]).stdout
    assert "2 ranks on 1 node" in report and "exit code 0" in report
    rep = json.loads((runs_root / doc["run_id"] / "report" / "report.json").read_text())
    assert rep["schema"] == "hpcx.report/5" and [r["rank"] for r in rep["ranks"]] == [0, 1]
    assert all(r["samples"] >= 1 and r["peak_rss_mb"] > 10 and r["cpu_s"] > 0 for r in rep["ranks"])


def test_local_failure_is_reported_with_its_exit_code(hpcx):
    doc = hpcx.json("submit", "serial", "--", "bash", "-c", "exit 3")
    row = hpcx.wait_finished(doc["run_id"], timeout_s=60)
    assert (row["state"], row["exit_code"]) == ("FAILED", 3)


def test_local_cancel_stops_the_job(hpcx):
    doc = hpcx.json("submit", "serial", "--", "sleep", "300")
    time.sleep(1)
    assert hpcx.json("status", doc["run_id"])["runs"][0]["state"] == "RUNNING"
    hpcx("cancel", doc["run_id"])
    row = hpcx.wait_finished(doc["run_id"], timeout_s=30)
    assert row["state"] == "CANCELLED"


def test_manifest_records_what_was_asked_and_where_it_came_from(hpcx, runs_root):
    doc = hpcx.json("submit", "serial", "-t", "5", "--set", "greeting=hi there", "--", "true")
    manifest = json.loads((runs_root / doc["run_id"] / "manifest.json").read_text())
    assert manifest["resources"]["time_min"] == {"value": 5, "source": "cli"}
    assert manifest["resources"]["nodes"]["source"] == "default"
    assert manifest["site"]["name"] == "local" and len(manifest["template"]["sha256"]) == 64
    assert manifest["git"]["commit"] is None or len(manifest["git"]["commit"]) == 40
    script = (runs_root / doc["run_id"] / "job.sbatch").read_text()
    assert "export HPCX_VAR_GREETING='hi there'" in script
    hpcx.wait_finished(doc["run_id"], timeout_s=60)


def test_failed_submission_leaves_no_run_directory(hpcx, runs_root):
    proc = hpcx("submit", "nokind", "--", "true", check=False)
    assert proc.returncode == 2 and list(runs_root.iterdir()) == []
