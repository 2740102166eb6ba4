"""`hpcx status` and `hpcx runs` with live state (docs/user.md, "Live status"): a job's step, main metric, rate, ETA
and heartbeat while it runs, a sweep's best task and its tasks one row each, a table that fits the terminal, and
JSON with the same fields. The jobs here run on the local backend; tests/slurm/test_live_status_slurm.py does the
same on the Slurm test cluster."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

from hpcx.cli.runs import render_runs
from hpcx.cli.views import STATUS_COLUMNS, fitting_columns, render_status, status_cells, status_table

LOGGER = (
    "import sys, time, hpcx.runtime as r\n"
    "r.progress(int(sys.argv[1]))\n"
    "for s in range(int(sys.argv[1])):\n"
    "    r.log(s, loss=float(sys.argv[2]) / (s + 1), acc=s / 1000)\n"
    "    time.sleep(0.05)\n"
)


def _wait_for(predicate, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not seen within {timeout_s} s")


def test_a_running_job_shows_its_step_metric_rate_and_heartbeat(hpcx, runs_root, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(LOGGER)
    hpcx.env["HPCX_HEARTBEAT_S"] = "0.5"
    run_id = hpcx.json("submit", "serial", "--", sys.executable, str(script), "120", "2.0")["run_id"]

    def live_row():
        row = hpcx.json("status", run_id)["runs"][0]
        return row if row["state"] == "RUNNING" and (row["live"] or {}).get("step") else None

    first = _wait_for(live_row)["live"]
    second = _wait_for(lambda: (r := live_row()) and r["live"]["step"] > first["step"] and r)["live"]
    assert second["total_steps"] == 120 and second["main_metric"] == "loss"
    assert second["metrics"]["loss"] == 2.0 / (second["step"] + 1)
    assert 5 < second["steps_per_s"] < 25 and second["eta_s"] > 0
    assert second["heartbeat_interval_s"] == 0.5 and second["heartbeat_age_s"] < 5 and not second["stalled"]
    text = hpcx("status", run_id).stdout
    assert "STEP" in text and "/120" in text and "loss=" in text
    runs = hpcx.json("runs")["runs"][0]
    assert runs["step"] is not None and runs["metric"]["name"] == "loss"
    row = hpcx.wait_finished(run_id, timeout_s=120)
    assert row["live"]["step"] == 119 and row["live"]["stalled"] is False
    assert hpcx("runs").stdout.splitlines()[0].split()[-2:] == ["STEP", "METRIC"]


def test_a_sweep_is_one_row_with_its_best_task_and_one_row_per_task_with_tasks(hpcx, runs_root, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(LOGGER)
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "name: live\nkind: serial\n"
        f"command: [{sys.executable}, {script}, '3', '{{scale}}']\n"
        "parameters:\n  grid: {scale: [3.0, 1.0, 2.0]}\n"
    )
    run_id = hpcx.json("sweep", str(spec))["run_id"]
    row = hpcx.wait_finished(run_id, timeout_s=120)
    assert row["live"]["best_task"] == 1 and row["live"]["main_value"] == 1.0 / 3
    assert row["live"]["stalled_tasks"] == []
    rows = hpcx.json("status", "--tasks", run_id)["runs"]
    assert [r["task"] for r in rows] == [0, 1, 2]
    assert [r["live"]["metrics"]["loss"] for r in rows] == [1.0, 1.0 / 3, 2.0 / 3]
    assert "loss=0.3333 (task 1)" in hpcx("status", run_id).stdout
    text = hpcx("status", "--tasks", run_id).stdout.splitlines()
    assert len(text) == 4 and text[2].split()[0] == f"{run_id}_1"
    assert hpcx.json("runs")["runs"][-1]["metric"] == {"name": "loss", "value": 1.0 / 3, "task": 1}


def test_a_job_array_shows_its_best_task_by_accuracy_and_its_tasks_with_tasks(hpcx, runs_root, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        "import os, hpcx.runtime as r\n"
        "t = int(os.environ['HPCX_TASK_ID'])\n"
        "for s in range(5):\n"
        "    r.log(s, val_acc=[0.5, 0.9, 0.7][t] + s / 100)\n"
    )
    run_id = hpcx.json("submit", "array", "--array", "0-2", "--", sys.executable, str(script))["run_id"]
    row = hpcx.wait_finished(run_id, timeout_s=120)
    assert row["live"]["best_task"] == 1 and row["live"]["main_metric"] == "val_acc"
    assert row["live"]["eta_s"] is None and row["live"]["step"] == 4
    rows = hpcx.json("status", "--tasks", run_id)["runs"]
    got = [(r["task"], r["live"]["metrics"]["val_acc"]) for r in rows]
    assert got == [(0, 0.5 + 4 / 100), (1, 0.9 + 4 / 100), (2, 0.7 + 4 / 100)]
    assert hpcx.json("runs")["runs"][-1]["metric"] == {"name": "val_acc", "value": 0.9 + 4 / 100, "task": 1}


def _row(run_id="20260101-000000-aaaaaa", **live):
    base = {
        "step": 10,
        "total_steps": None,
        "main_metric": "loss",
        "main_value": 0.5,
        "metrics": {"loss": 0.5},
    }
    return {
        "run_id": run_id,
        "job_id": "77",
        "kind": "serial",
        "state": "RUNNING",
        "exit_code": None,
        "reason": None,
        "nodes": "c1",
        "tasks": None,
        "live": {**base, "steps_per_s": 2.0, "eta_s": None, "heartbeat_age_s": 95.0, "stalled": True, **live},
    }


def test_a_stalled_job_reads_stalled_with_the_heartbeats_age():
    text = render_status({"runs": [_row(), _row(stalled=False, heartbeat_age_s=3.0, total_steps=50)]})
    first, second = text.splitlines()[1:]
    assert "stalled 1m35s" in first and "10/50" in second and "stalled" not in second


def test_without_live_state_status_reads_as_before():
    row = {**_row(), "live": None}
    assert render_status({"runs": [row]}).splitlines() == [
        "RUN                      JOB            KIND       STATE        EXIT  NODES / REASON",
        "20260101-000000-aaaaaa   77             serial     RUNNING            c1",
    ]


def test_the_watch_table_fits_80_and_200_columns_and_reads_no_markup():
    from rich.console import Console

    rows = [_row(), _row("[bold]x[/bold]<script>", stalled=False)]
    for width in (80, 200):
        out = io.StringIO()
        Console(file=out, width=width, color_system=None).print(status_table({"runs": rows}, width))
        lines = out.getvalue().splitlines()
        assert all(len(line) <= width for line in lines)
        assert "stalled 1m35s" in out.getvalue() and "[bold]x[/bold]<script>" in out.getvalue()
    cells = [status_cells(r) for r in rows]
    names = [STATUS_COLUMNS[n] for n in fitting_columns(STATUS_COLUMNS, cells, 80)]
    assert names == ["RUN", "STATE", "STEP", "METRIC", "BEAT", "NODES / REASON"]  # RATE went before NODES
    assert [STATUS_COLUMNS[n] for n in fitting_columns(STATUS_COLUMNS, cells, 200)] == [
        "RUN",
        "JOB",
        "KIND",
        "STATE",
        "STEP",
        "METRIC",
        "RATE",
        "BEAT",
        "NODES / REASON",
    ]
    assert [STATUS_COLUMNS[n] for n in fitting_columns(STATUS_COLUMNS, cells, 40)] == [
        "RUN",
        "STATE",
        "STEP",
        "METRIC",
    ]


def test_runs_gains_step_and_metric_columns_only_when_a_run_logged():
    run = {
        "run_id": "r1",
        "job_id": "7",
        "kind": "serial",
        "name": "n",
        "state": "RUNNING",
        "created": None,
        "sweep": None,
        "step": 12,
        "metric": {"name": "acc", "value": 0.75},
    }
    doc = {"root": "/r", "root_source": "env", "runs": [run]}
    assert render_runs(doc, 1, False).splitlines()[0].split() == [
        "RUN",
        "JOB",
        "KIND",
        "NAME",
        "STATE",
        "CREATED",
        "STEP",
        "METRIC",
    ]
    assert render_runs(doc, 1, False).splitlines()[1].split()[-2:] == ["12", "acc=0.75"]
    quiet = {**doc, "runs": [{**run, "step": None, "metric": None}]}
    assert render_runs(quiet, 1, False).splitlines()[0].split()[-1] == "CREATED"


def test_importing_the_cli_does_not_import_rich():
    code = (
        "import sys, hpcx.cli; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'rich')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout) == []
