"""status, runs and report agree on a run's state, exit code and kind (one source of truth for each), on the real
cluster: a TIMEOUT job, jobs still pending or running, and a sweep."""

import json
import time

import pytest

from hpcx.schedulers.slurm import parse_sacct, parse_squeue

pytestmark = pytest.mark.slurm


def _runs_row(hpcx, run_id):
    return next(r for r in hpcx.json("runs")["runs"] if r["run_id"] == run_id)


def test_a_timeout_has_the_same_exit_code_in_status_and_report(slurm_hpcx):
    run = slurm_hpcx.json("submit", "serial", "-t", "1", "--", "sleep", "300")
    row = slurm_hpcx.wait_finished(run["run_id"], timeout_s=240)
    report = slurm_hpcx.json("report", "--no-html", run["run_id"])["report"]["summary"]
    assert (row["state"], report["state"], _runs_row(slurm_hpcx, run["run_id"])["state"]) == ("TIMEOUT",) * 3
    # Slurm ended it: no exit code of the program's (squeue said 143, sacct's job row 0:0).
    assert row["exit_code"] is None and report["exit_code"] is None
    line = next(ln for ln in slurm_hpcx("status", run["run_id"]).stdout.splitlines() if run["run_id"] in ln)
    assert "TIMEOUT" in line and "143" not in line and " 0 " not in line
    assert "exit code -" in slurm_hpcx("report", "--no-html", run["run_id"]).stdout


def test_pending_and_running_jobs_show_no_exit_code(slurm_hpcx):
    running = slurm_hpcx.json("submit", "serial", "--", "sleep", "20")
    waiting = slurm_hpcx.json("submit", "serial", "--after", running["run_id"], "--", "true")
    deadline = time.monotonic() + 120
    seen = set()
    while time.monotonic() < deadline and seen != {"PENDING", "RUNNING"}:
        for row in slurm_hpcx.json("status", running["run_id"], waiting["run_id"])["runs"]:
            if row["state"] in ("PENDING", "RUNNING"):
                assert row["exit_code"] is None, row
                seen.add(row["state"])
        time.sleep(1)
    assert seen == {"PENDING", "RUNNING"}
    text = slurm_hpcx("status", waiting["run_id"]).stdout.splitlines()[1]
    assert "PENDING" in text and text.split("PENDING")[1].split()[:1] != ["0"]
    assert slurm_hpcx.wait_finished(waiting["run_id"], timeout_s=120)["exit_code"] == 0


def test_a_sweep_has_one_kind_in_status_runs_and_report(slurm_hpcx, tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "name: kinds\nkind: serial\ncommand: [bash, -c, 'exit {x}']\nparameters:\n  grid: {x: [0, 3]}\n"
    )
    sweep = slurm_hpcx.json("sweep", str(spec))
    row = slurm_hpcx.wait_finished(sweep["run_id"], timeout_s=120)
    report = slurm_hpcx.json("report", "--no-html", sweep["run_id"])["report"]
    assert row["kind"] == _runs_row(slurm_hpcx, sweep["run_id"])["kind"] == report["kind"] == "serial"


def test_one_rule_for_exit_codes_from_squeue_and_sacct():
    # The same jobs as squeue (raw wait status) and as sacct (code:signal) give the same exit codes.
    squeue = {
        s.job_id: s
        for s in parse_squeue(
            "1|FAILED|None|n1|768|0:01|\n2|FAILED|None|n1|11|0:01|\n"
            "3|TIMEOUT|TimeLimit|n1|36608|1:00|\n4|RUNNING|None|n1|0|0:01|\n"
        )
    }
    sacct = {
        s.job_id: s
        for s in parse_sacct(
            "1|1|FAILED|3:0|1|n1|None\n2|2|FAILED|0:11|1|n1|None\n"
            "3|3|TIMEOUT|0:0|60|n1|TimeLimit\n4|4|RUNNING|0:0|1|n1|None\n"
        )
    }
    shown = {j: (squeue[j].shown_exit_code, sacct[j].shown_exit_code) for j in squeue}
    assert shown == {"1": (3, 3), "2": (139, 139), "3": (None, None), "4": (None, None)}


def test_report_json_of_a_failed_job_keeps_its_exit_code(slurm_hpcx, runs_root):
    run = slurm_hpcx.json("submit", "serial", "--", "bash", "-c", "exit 5")
    row = slurm_hpcx.wait_finished(run["run_id"], timeout_s=120)
    slurm_hpcx("report", "--no-html", run["run_id"])
    report = json.loads((runs_root / run["run_id"] / "report" / "report.json").read_text())
    assert row["exit_code"] == report["summary"]["exit_code"] == 5


def test_one_state_for_many_tasks_in_status_and_report():
    from hpcx.reports.accounting import combined_state
    from hpcx.schedulers.base import overall_state

    for tasks in (
        ["TIMEOUT", "FAILED", "COMPLETED"],
        ["FAILED", "TIMEOUT"],
        ["CANCELLED", "TIMEOUT", "COMPLETED"],
    ):
        for order in (tasks, tasks[::-1]):
            counts = {s: order.count(s) for s in order}
            assert (
                overall_state(counts)
                == combined_state(order)
                == ("FAILED" if "FAILED" in tasks else "CANCELLED")
            )
