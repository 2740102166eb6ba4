"""hpcx report on real jobs of the test cluster, with Slurm's accounting: a profiled MPI job, a user's own
batch script whose command leaves no records (a report from sacct alone, like seff), a failed one (exit 3),
one killed at its time limit, and one reported while running, then cancelled. Each checks the state, the
greppable line and that the advice has numbers."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from hpcx.site import schema
from tests.conftest import REPO

pytestmark = pytest.mark.slurm
SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())
LINE = re.compile(
    r"^hpcx: job=(\d+) state=(\S+) elapsed_s=(\S+) eff_cpu=(\S+) mem_peak_mb=(\S+) mem_req_mb=(\S+) "
    r"energy_kwh=(\S+) comm_share=(\S+)$",
    re.MULTILINE,
)


def _final_report(slurm_hpcx, run_id: str, timeout_s: float = 90) -> tuple[dict, str]:
    """The report once slurmdbd has the finished job (it lags the job's end by a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        doc = slurm_hpcx.json("report", run_id)["report"]
        if doc["accounting"] and doc["accounting"]["finished"]:
            return doc, slurm_hpcx("report", run_id).stdout
        assert time.monotonic() < deadline, f"no finished accounting after {timeout_s} s: {doc['summary']}"
        time.sleep(2)


def _valid(doc: dict, monkeypatch) -> None:
    assert schema.validate(doc, SCHEMA) == []


def test_profiled_mpi_job(slurm_hpcx, monkeypatch):
    doc = slurm_hpcx.json(
        "submit",
        "mpi",
        "-N",
        "2",
        "--ntasks-per-node",
        "1",
        "--mem",
        "2000",
        "-t",
        "20",
        "--profile",
        "--",
        "python",
        "examples/allreduce_hdf5.py",
        "--seconds",
        "2",
    )
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=180)
    assert row["state"] == "COMPLETED", slurm_hpcx("logs", doc["run_id"]).stdout
    report, text = _final_report(slurm_hpcx, doc["run_id"])
    s = report["summary"]
    assert (s["state"], s["state_source"], s["exit_code"], s["ranks"]) == ("COMPLETED", "sacct", 0, 2)
    assert s["cpu_efficiency"] is not None and s["cpu_efficiency_slurm"] is not None
    assert report["comm"] and report["comm"]["calls"], "--profile traces the allreduces"
    job, state, elapsed, _, peak, req, _, share = LINE.search(text).groups()
    assert (job, state, req) == (doc["job_id"], "COMPLETED", "2000") and float(elapsed) > 0
    assert float(peak) > 10 and share != "na"
    advice = {a["kind"]: a for a in report["advice"]}
    assert advice["time"]["values"]["suggested_s"] == 900 and "-t 0:15:00" in text  # seconds of 20 minutes
    assert advice["memory"]["values"]["suggested_mb"] == 1024 and "--mem=1G" in text
    _valid(report, monkeypatch)
    page = slurm_hpcx.json("report", doc["run_id"])["html_path"]
    html = Path(page).read_text()
    assert [f for f in ("nodes", "heatmap", "comm") if f'<figure id="fig-{f}"><svg' in html] == [
        "nodes",
        "heatmap",
        "comm",
    ]
    assert not re.search(r'(src|href)="(https?:|//)', html) and doc["run_id"] in html  # nothing fetched


def test_own_script_without_records_is_reported_from_accounting(slurm_hpcx, runs_root, monkeypatch):
    script = runs_root / "plain.sh"  # a plain command: no hpcx.run, so no profile records
    script.write_text(
        "#!/bin/bash\n#SBATCH -t 30\n#SBATCH --mem 1500\npython3 -c 'x = bytearray(300 * 2**20)'\nsleep 6\n"
    )
    doc = slurm_hpcx.json("submit", str(script))
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=120)["state"] == "COMPLETED"
    report, text = _final_report(slurm_hpcx, doc["run_id"])
    assert not (runs_root / doc["run_id"] / "profile").exists() or not report["ranks"]
    s = report["summary"]
    assert (s["state"], s["state_source"], s["ranks"], s["mem_peak_source"]) == (
        "COMPLETED",
        "sacct",
        0,
        "sacct MaxRSS x tasks per node",
    )
    assert "no profile records" in text and f"hpcx: job={doc['job_id']} state=COMPLETED" in text
    assert "energy_kwh=na comm_share=na" in text and "mem_req_mb=1500" in text
    assert [a["kind"] for a in report["advice"] if a["kind"] == "time"] == ["time"]
    _valid(report, monkeypatch)


def test_own_script_with_two_profiled_steps_reports_both(slurm_hpcx, runs_root, monkeypatch):
    """``srun prep; srun train``: each step's ranks write their own files, and the report's rank 0 is both
    steps (wall times added, the larger peak), not only the last."""
    script = runs_root / "two-steps.sh"
    step = (
        f"srun -n 1 {sys.executable} -m hpcx.run --interval 0.5 -- {sys.executable} -c "
        "'import time; x = bytearray({mb} * 2**20); time.sleep(4)'\n"
    )
    script.write_text(
        "#!/bin/bash\n#SBATCH -t 5\n#SBATCH --mem 1500\n" + step.format(mb=300) + step.format(mb=100)
    )
    doc = slurm_hpcx.json("submit", str(script))
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=120)["state"] == "COMPLETED"
    files = sorted(p.name for p in (runs_root / doc["run_id"] / "profile").glob("rank-*.jsonl"))
    assert files == ["rank-00000.step-0.jsonl", "rank-00000.step-1.jsonl"]
    report, _ = _final_report(slurm_hpcx, doc["run_id"])
    (rank,) = report["ranks"]
    assert [s["step"] for s in rank["steps"]] == ["0", "1"] and rank["exit_code"] == 0
    first, second = rank["steps"]
    assert first["peak_rss_mb"] > 300 > second["peak_rss_mb"] > 100
    assert rank["peak_rss_mb"] == first["peak_rss_mb"] and rank["wall_s"] >= 8
    assert rank["wall_s"] == pytest.approx(first["wall_s"] + second["wall_s"], rel=1e-6)
    _valid(report, monkeypatch)


def test_failed_job_reports_exit_code_3(slurm_hpcx, monkeypatch):
    doc = slurm_hpcx.json("submit", "serial", "-t", "5", "--", "bash", "-c", "exit 3")
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=120)["state"] == "FAILED"
    report, text = _final_report(slurm_hpcx, doc["run_id"])
    assert (report["summary"]["state"], report["summary"]["exit_code"]) == ("FAILED", 3)
    assert "state FAILED (from sacct), exit code 3" in text and "state=FAILED" in text
    _valid(report, monkeypatch)


def test_time_limit_reports_timeout_with_what_was_flushed(slurm_hpcx, monkeypatch):
    # The program ignores the USR2 hpcx's script sends 30 s before the limit (a plain sleep dies of it, exit
    # 12, FAILED), so Slurm's time limit is what ends it.
    doc = slurm_hpcx.json("submit", "serial", "-t", "1", "--", "bash", "-c", "trap '' USR2; sleep 300")
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=200)["state"] == "TIMEOUT"
    report, text = _final_report(slurm_hpcx, doc["run_id"])
    s = report["summary"]
    assert s["state"] == "TIMEOUT" and s["time_limit_s"] == 60 and s["elapsed_s"] >= 60
    assert report["ranks"] and report["ranks"][0]["samples"] > 0  # the records flushed before the kill
    assert "state=TIMEOUT" in text and "hit its time limit 1m00s" in text and "-t 0:02:00" in text
    _valid(report, monkeypatch)


def test_running_then_cancelled_job_gives_a_partial_then_a_killed_report(slurm_hpcx, monkeypatch):
    doc = slurm_hpcx.json("submit", "serial", "-t", "5", "--", "sleep", "120")
    deadline = time.monotonic() + 60
    while True:  # until the rank has flushed a sample (every 5 s) while Slurm says RUNNING
        proc = slurm_hpcx("--json", "report", doc["run_id"], check=False)  # exit 2 until it starts
        partial = json.loads(proc.stdout)["report"] if proc.returncode == 0 else None
        if partial and partial["summary"]["state"] == "RUNNING" and partial["ranks"]:
            break
        assert time.monotonic() < deadline, "the job never ran with records"
        time.sleep(2)
    assert partial["summary"]["finished"] is False and partial["ranks"][0]["finished"] is False
    assert "partial: the job has not finished" in slurm_hpcx("report", doc["run_id"]).stdout
    assert not [a for a in partial["advice"] if a["kind"] == "time"]  # the time used is not final
    _valid(partial, monkeypatch)

    slurm_hpcx("cancel", doc["run_id"])
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=60)["state"] == "CANCELLED"
    killed, text = _final_report(slurm_hpcx, doc["run_id"])
    assert killed["summary"]["state"] == "CANCELLED" and "state=CANCELLED" in text
    assert killed["ranks"][0]["samples"] >= 1  # what was flushed before the kill


REQUEUE_JOB = """
import os, time
from hpcx.runtime import preempt
attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
block = bytearray((80 if attempt == 0 else 240) * 2**20)  # the report must show the last attempt's peak
time.sleep(7)  # records reach the disk every 5 s
if attempt == 0:
    assert preempt.requeue(), "scontrol requeue failed"
print(f"attempt {attempt} done", flush=True)
"""


def test_requeued_job_reports_its_last_attempt(slurm_hpcx, tmp_path, monkeypatch):
    job = tmp_path / "requeue.py"
    job.write_text(REQUEUE_JOB)
    doc = slurm_hpcx.json(
        "submit", "serial", "-t", "5", "--mem", "1000", "--profile", "--", "python", str(job)
    )
    deadline = time.monotonic() + 240
    while not (row := slurm_hpcx.json("status", doc["run_id"])["runs"][0])["finished"]:
        assert time.monotonic() < deadline, f"the requeued job did not finish: {row}"
        time.sleep(2)
    logs = slurm_hpcx("logs", doc["run_id"]).stdout
    assert row["state"] == "COMPLETED" and "attempt 1 done" in logs, logs
    report, _ = _final_report(slurm_hpcx, doc["run_id"])
    (rank,) = report["ranks"]
    assert rank["attempt"] == 1 and rank["finished"] and rank["exit_code"] == 0
    assert 240 <= rank["peak_rss_mb"] < 400, rank["peak_rss_mb"]  # the second attempt's, not a mixture
    assert report["summary"]["state"] == "COMPLETED"
    _valid(report, monkeypatch)


def test_array_job_lists_its_tasks_and_reports_one_with_a_page(slurm_hpcx, runs_root, monkeypatch):
    doc = slurm_hpcx.json(
        "submit",
        "serial",
        "--array",
        "0-1",
        "-t",
        "5",
        "--profile",
        "--",
        "bash",
        "-c",
        "sleep 6; exit $SLURM_ARRAY_TASK_ID",
    )
    slurm_hpcx.wait_finished(doc["run_id"], timeout_s=180)
    deadline = time.monotonic() + 90
    while True:  # slurmdbd lags the tasks' end by a few seconds
        report = slurm_hpcx.json("report", doc["run_id"])["report"]
        if [t["state"] for t in report["tasks"] or []] == ["COMPLETED", "FAILED"]:
            break
        assert time.monotonic() < deadline, report["tasks"]
        time.sleep(2)
    assert [(t["task"], t["exit_code"], t["ranks"]) for t in report["tasks"]] == [(0, 0, 1), (1, 1, 1)]
    _valid(report, monkeypatch)
    one = slurm_hpcx.json("report", doc["run_id"], "--task", "1")
    assert one["report"]["task"] == 1 and one["report"]["summary"]["state"] == "FAILED"
    assert one["report"]["summary"]["exit_code"] == 1 and one["report"]["ranks"][0]["samples"] >= 1
    page = Path(one["html_path"])
    assert page.name == "task-00001.html" and page.parent == runs_root / doc["run_id"] / "report"
    assert '<figure id="fig-heatmap"><svg' in page.read_text()
    _valid(one["report"], monkeypatch)
    bad = slurm_hpcx("report", doc["run_id"], "--task", "5", check=False)
    assert bad.returncode == 2 and "no records of task 5" in bad.stderr and "0-1" in bad.stderr
