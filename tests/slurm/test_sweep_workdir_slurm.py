"""A sweep's tasks start where the sweep was submitted, as sbatch's jobs do: a relative `python task.py`
works, and $SLURM_SUBMIT_DIR is the user's directory, for the first arrays and for retried tasks alike."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slurm


def test_sweep_tasks_and_retries_run_in_the_submission_directory(slurm_hpcx, runs_root, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "task.py").write_text(
        "import os, sys\n"
        "print('cwd', os.getcwd(), 'submit', os.environ['SLURM_SUBMIT_DIR'], 'x', sys.argv[1])\n"
        "sys.exit(0 if sys.argv[1] != '2' or os.path.exists('second-attempt') else 4)\n"
    )
    (proj / "sweep.yaml").write_text(
        'name: wd\nkind: serial\nresources: {time: "00:05:00"}\n'
        "command: [python3, task.py, '{x}']\nparameters:\n  grid: {x: [1, 2]}\n"
    )
    doc = slurm_hpcx.json("sweep", "sweep.yaml", cwd=proj)
    row = slurm_hpcx.wait_finished(doc["run_id"])
    assert row["tasks"] == {"COMPLETED": 1, "FAILED": 1}, row
    logs = runs_root / doc["run_id"] / "logs"
    first = (logs / f"slurm-{doc['job_id']}_0.out").read_text()
    assert f"cwd {proj} submit {proj} x 1" in first

    (proj / "second-attempt").touch()
    retry = slurm_hpcx.json("sweep", "--retry-failed", doc["run_id"], cwd=tmp_path)  # from elsewhere
    row = slurm_hpcx.wait_finished(doc["run_id"])
    assert row["tasks"] == {"COMPLETED": 2}, row
    again = (logs / f"slurm-{retry['job_ids'][0]}_1.out").read_text()
    assert f"cwd {proj} submit {proj} x 2" in again


def test_retry_of_a_sweep_whose_submission_directory_is_gone_is_refused(slurm_hpcx, tmp_path):
    proj = tmp_path / "gone"
    proj.mkdir()
    (proj / "sweep.yaml").write_text(
        "name: g\ncommand: [bash, -c, 'exit {x}']\nparameters:\n  grid: {x: [0, 1]}\n"
    )
    doc = slurm_hpcx.json("sweep", "sweep.yaml", cwd=proj)
    assert slurm_hpcx.wait_finished(doc["run_id"])["tasks"] == {"COMPLETED": 1, "FAILED": 1}
    (proj / "sweep.yaml").unlink()
    proj.rmdir()
    proc = slurm_hpcx("sweep", "--retry-failed", doc["run_id"], check=False, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"run {doc['run_id']} was submitted from {proj}, which no longer exists" in proc.stderr
