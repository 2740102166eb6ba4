"""`hpcx sweep --retry-failed` on the real cluster says what it resubmitted by the state each task ended in (a
cancelled task is not called failed), and says plainly when there is nothing to resubmit."""

from __future__ import annotations

import subprocess
import time

import pytest

pytestmark = pytest.mark.slurm


def test_retry_names_failed_and_cancelled_tasks_and_then_nothing(slurm_hpcx, tmp_path, runs_root):
    marker = tmp_path / "second-attempt"
    path = tmp_path / "sweep.yaml"
    # First attempt: task 0 fails, task 1 waits (and is cancelled), task 2 completes. Second: all complete.
    path.write_text(f"""
name: mixed
resources: {{time: "00:05:00"}}
command: [bash, -c, '[ -e {marker} ] && exit 0; [ {{i}} = 0 ] && exit 3; [ {{i}} = 1 ] && sleep 300; exit 0']
parameters: {{grid: {{i: [0, 1, 2]}}}}
""")
    doc = slurm_hpcx.json("sweep", str(path))
    try:
        _retry_twice(slurm_hpcx, doc["run_id"], marker)
    finally:
        subprocess.run(["scancel", *doc["job_ids"]], capture_output=True, timeout=30)


def _retry_twice(slurm_hpcx, run_id, marker):
    deadline = time.monotonic() + 120
    while True:
        tasks = slurm_hpcx.json("status", run_id)["runs"][0]["tasks"]
        if tasks.get("FAILED") == 1 and tasks.get("COMPLETED") == 1 and tasks.get("RUNNING") == 1:
            break
        assert time.monotonic() < deadline, tasks
        time.sleep(1)
    slurm_hpcx("cancel", f"{run_id}_1")
    slurm_hpcx.wait_finished(run_id)

    marker.touch()
    out = slurm_hpcx("sweep", "--retry-failed", run_id).stdout.strip()
    assert out.startswith(f"resubmitted 2 task(s) of {run_id} (1 cancelled, 1 failed) as job(s) "), out
    slurm_hpcx.wait_finished(run_id)
    out = slurm_hpcx("sweep", "--retry-failed", run_id).stdout.strip()
    assert out == f"nothing to resubmit: no task of {run_id} ended without completing (3 completed)"
