"""The job lifecycle on the real cluster: own scripts, dependencies, arrays, following logs, dry runs."""

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slurm


def test_own_script_is_checked_recorded_and_run(slurm_hpcx, runs_root, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n#SBATCH --job-name=mine\n#SBATCH -t 5\n#SBATCH -N 1\n"
        "echo partition=$SLURM_JOB_PARTITION run=$HPCX_RUN_ID\n"
    )
    doc = slurm_hpcx.json("submit", str(script))
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=120)
    assert row["state"] == "COMPLETED"
    assert (runs_root / doc["run_id"] / "job.sbatch").read_text() == script.read_text()  # the exact bytes
    assert f"partition=debug run={doc['run_id']}" in slurm_hpcx("logs", doc["run_id"]).stdout
    manifest = json.loads((runs_root / doc["run_id"] / "manifest.json").read_text())
    assert manifest["resources"]["time_min"] == {"value": 5, "source": "script"}

    script.write_text("#!/bin/bash\n#SBATCH -p debug -t 2:00:00\ntrue\n")
    proc = slurm_hpcx("submit", str(script), check=False)
    assert proc.returncode == 3 and "-t 02:00:00 exceeds partition debug's MaxTime" in proc.stderr


def test_after_waits_for_the_first_run(slurm_hpcx, runs_root):
    first = slurm_hpcx.json("submit", "serial", "--", "bash", "-c", "sleep 3; date +%s.%N > first.txt")
    second = slurm_hpcx.json(
        "submit",
        "serial",
        "--after",
        first["run_id"],
        "--",
        "bash",
        "-c",
        "test -s first.txt && echo saw-first",
    )
    assert slurm_hpcx.wait_finished(second["run_id"], timeout_s=120)["state"] == "COMPLETED"
    assert "saw-first" in slurm_hpcx("logs", second["run_id"]).stdout
    manifest = json.loads((runs_root / second["run_id"] / "manifest.json").read_text())
    assert manifest["directives"] == [
        ["--dependency", f"afterok:{first['job_id']}"],
        ["--kill-on-invalid-dep", "yes"],
    ]
    (REPO / "first.txt").unlink(missing_ok=True)


def test_array_tasks_are_summarised_by_state(slurm_hpcx):
    doc = slurm_hpcx.json(
        "submit", "array", "--array", "0-5%2", "--", "bash", "-c", 'sleep 1; [ "$HPCX_TASK_ID" != 4 ]'
    )
    seen_partial = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        row = slurm_hpcx.json("status", doc["run_id"])["runs"][0]
        seen_partial |= bool(row["tasks"]) and sum(row["tasks"].values()) == 6 and not row["finished"]
        if row["finished"]:
            break
        time.sleep(0.5)
    assert row["tasks"] == {"COMPLETED": 5, "FAILED": 1} and row["state"] == "FAILED", row
    assert seen_partial, "never saw the array while its tasks were still pending or running"
    text = slurm_hpcx("status", doc["run_id"]).stdout
    assert "5 completed" in text and "1 failed" in text


def test_logs_follow_ends_with_the_job(slurm_hpcx):
    doc = slurm_hpcx.json(
        "submit", "serial", "--", "bash", "-c", "for i in 1 2 3; do echo line$i; sleep 1; done"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "logs", "--follow", doc["run_id"]],
        capture_output=True,
        text=True,
        timeout=120,
        env=slurm_hpcx.env,
        cwd=REPO,
    )
    assert proc.returncode == 0 and all(f"line{i}" in proc.stdout for i in (1, 2, 3))


def test_dry_run_explains_the_partition_and_submits_nothing(slurm_hpcx, runs_root):
    out = slurm_hpcx("submit", "--dry-run", "serial", "-t", "2:00:00", "--", "true").stdout
    assert "#SBATCH --partition=batch" in out
    assert "partition batch chosen automatically" in out and "not: debug (-t 02:00:00 exceeds" in out
    assert list(runs_root.iterdir()) == []
