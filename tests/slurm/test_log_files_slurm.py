"""An own script's #SBATCH -o/-e on the real cluster: `hpcx logs` shows the files Slurm made for the run's own
job (and each array task: %j is the task's own job id), never other files its pattern's wildcard would catch,
`logs --task` one task's, and the report's failure section reads the script's own stderr file."""

import pytest

pytestmark = pytest.mark.slurm


def test_own_names_without_the_job_id_show_the_jobs_files_only(slurm_hpcx, tmp_path):
    (tmp_path / "other.out").write_text("someone else's output\n")
    (tmp_path / "job.sh").write_text(
        "#!/bin/bash\n#SBATCH -J train -t 5\n#SBATCH -o %x.out -e %x-%j.err\n"
        "echo hello from train\necho 'ValueError: lr is empty' >&2\nexit 3\n"
    )
    doc = slurm_hpcx.json("submit", "./job.sh", cwd=tmp_path)
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=300)["state"] == "FAILED"
    shown = slurm_hpcx("logs", doc["run_id"]).stdout
    assert f"==> {tmp_path}/train.out <==\nhello from train" in shown
    assert f"==> {tmp_path}/train-{doc['job_id']}.err <==\nValueError: lr is empty" in shown
    assert "other.out" not in shown and "someone else" not in shown
    failure = slurm_hpcx.json("report", doc["run_id"])["report"]["summary"]["failure"]
    assert failure["log"] == f"{tmp_path}/train-{doc['job_id']}.err"
    assert failure["stderr_tail"] == ["ValueError: lr is empty"]


def test_an_arrays_own_job_ids_are_found_and_task_shows_one(slurm_hpcx, tmp_path):
    (tmp_path / "j1-1.txt").write_text("an older job's\n")  # job 1 is older than any array of this test
    (tmp_path / "job.sh").write_text(
        "#!/bin/bash\n#SBATCH -t 5 --array=0-1 -o j%j-%a.txt\n"
        "echo task $SLURM_ARRAY_TASK_ID job $SLURM_JOB_ID\n"
    )
    doc = slurm_hpcx.json("submit", "./job.sh", cwd=tmp_path)
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=300)["state"] == "COMPLETED"
    made = sorted(p.name for p in tmp_path.glob("j*-*.txt") if p.name != "j1-1.txt")
    assert len(made) == 2  # each task's own job id: one of them differs from the array's
    shown = slurm_hpcx("logs", doc["run_id"]).stdout
    assert all(f"==> {tmp_path}/{name} <==" in shown for name in made) and "j1-1.txt" not in shown
    assert "task 0 job" in shown and "task 1 job" in shown
    one = slurm_hpcx("logs", doc["run_id"], "--task", "1").stdout
    assert "task 1 job" in one and "task 0" not in one and "j1-1.txt" not in one
