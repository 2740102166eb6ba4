"""The job's side of live status: the declared total on the metrics records (hpcx.runtime.log / progress) and the
heartbeat ``python -m hpcx.run`` keeps beside them, which must never fail the job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcx.errors import RuntimeFailure
from hpcx.rundir import layout
from hpcx.rundir.layout import metrics_dir
from hpcx.rundir.records import read_records
from hpcx.runs import live
from hpcx.runtime import metrics

CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "SLURM_", "OMPI_", "PMI"))}


def _job(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**CLEAN, "HPCX_RUN_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_declared_total_rides_on_every_later_record(tmp_path):
    code = (
        "import hpcx.runtime.metrics as m\n"
        "m.log(0, loss=1.0)\n"
        "m.progress(100)\n"
        "m.log(1, loss=0.5)\n"
        "m.log(2, total_steps=200, loss=0.25)\n"
    )
    proc = _job(tmp_path, code, HPCX_TASK_ID="3")
    assert proc.returncode == 0, proc.stderr
    records = list(read_records(metrics_dir(tmp_path, 3) / "rank-00000.jsonl"))
    assert [(r["type"], r.get("step"), r.get("total_steps")) for r in records] == [
        ("metric", 0, None),
        ("progress", None, 100),
        ("metric", 1, 100),
        ("metric", 2, 200),
    ]
    assert "total_steps" not in live.live_state(None, None, None, 0.0)["metrics"]


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "10"])
def test_a_total_that_is_not_a_positive_whole_number_is_refused(bad):
    with pytest.raises(RuntimeFailure, match="total_steps"):
        metrics.progress(bad)


def test_both_sides_name_the_heartbeat_alike(tmp_path):
    assert live.heartbeat_file is layout.heartbeat_file  # one spelling, in rundir, for both sides
    assert layout.heartbeat_file(tmp_path, 0).name == "heartbeat-rank-00000"


def test_the_heartbeat_interval_comes_from_the_environment():
    assert metrics.heartbeat_interval_s({}) == 30.0
    assert metrics.heartbeat_interval_s({"HPCX_HEARTBEAT_S": "0.5"}) == 0.5
    assert metrics.heartbeat_interval_s({"HPCX_HEARTBEAT_S": "-1"}) == 30.0
    assert metrics.heartbeat_interval_s({"HPCX_HEARTBEAT_S": "soon"}) == 30.0


def _hpcx_run(
    tmp_path: Path, run_dir: Path, *command: str, task: str = "4"
) -> subprocess.CompletedProcess[str]:
    env = {**CLEAN, "HPCX_RUN_DIR": str(run_dir), "HPCX_HEARTBEAT_S": "0.2"}
    return subprocess.run(
        [sys.executable, "-m", "hpcx.run", "--no-profile", "--task-id", task, "--", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_hpcx_run_keeps_a_heartbeat_while_the_command_runs(tmp_path):
    watch = (
        "import json, time, pathlib\n"
        f"p = pathlib.Path({str(metrics_dir(tmp_path, 4) / 'heartbeat-rank-00000')!r})\n"
        "seen = set()\n"
        "for _ in range(40):\n"
        "    time.sleep(0.05)\n"
        "    if p.exists(): seen.add(json.loads(p.read_text())['t'])\n"
        "print(len(seen))\n"
    )
    proc = _hpcx_run(tmp_path, tmp_path, sys.executable, "-c", watch)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 3  # rewritten every 0.2 s during the command's 2 s
    beat = live.read_heartbeat(live.heartbeat_file(metrics_dir(tmp_path, 4), 0))
    assert beat["interval_s"] == 0.2 and beat["attempt"] == 0 and beat["rank"] == 0


def test_a_heartbeat_that_cannot_be_written_warns_once_and_the_job_goes_on(tmp_path):
    blocker = tmp_path / "run"
    blocker.write_text("a file where the run directory should be")
    proc = _hpcx_run(tmp_path, blocker, sys.executable, "-c", "import time; time.sleep(1); print('done')")
    assert proc.returncode == 0 and proc.stdout == "done\n"
    assert proc.stderr.count("the job goes on") == 1 and len(proc.stderr.splitlines()) == 1


def test_no_run_directory_no_heartbeat(tmp_path):
    env = {**CLEAN, "HPCX_HEARTBEAT_S": "0.1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcx.run",
            "--no-profile",
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(0.5)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and proc.stderr == "" and list(tmp_path.iterdir()) == []


def test_a_heartbeat_record_is_one_json_line(tmp_path):
    beat = metrics.Heartbeat(tmp_path / "hb", 5.0, rank=2, attempt=1)
    beat.beat()
    record = json.loads((tmp_path / "hb").read_text())
    assert set(record) == {"t", "rank", "attempt", "interval_s"} and record["attempt"] == 1


def test_a_tuning_trials_records_name_the_trial_which_is_not_a_metric(tmp_path):
    from hpcx.runs.metric_points import latest_per_step

    code = "import hpcx.runtime.metrics as m\nm.log(1, loss=0.5)\n"
    assert _job(tmp_path, code, HPCX_TUNE_TRIAL="17").returncode == 0
    assert _job(tmp_path, code, HPCX_TUNE_TRIAL="").returncode == 0  # not in a study: no trial key
    records = [r for r in read_records(layout.rank_file(metrics_dir(tmp_path), 0)) if r["type"] == "metric"]
    assert [r.get("trial") for r in records] == [17, None]
    assert list(latest_per_step(records)) == ["loss"]
