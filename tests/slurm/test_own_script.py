"""Own scripts and kinds on the real cluster, the way sbatch treats them: the script's #SBATCH request reaches
Slurm as written (options typed on the command line override it), the job runs in the directory it was
submitted from, its own -o file is where it said and `hpcx logs` shows it, and a program's flags after the
command stay the program's."""

import json
import subprocess

import pytest

pytestmark = pytest.mark.slurm


def _scontrol(job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return dict(word.split("=", 1) for word in out.split() if "=" in word)


def test_scontrol_shows_the_scripts_own_request(slurm_hpcx, tmp_path):
    script = tmp_path / "job.sh"
    # --hold: the job stays pending while we look
    script.write_text(
        "#!/bin/bash\n#SBATCH -p batch --gres=gpu:tesla:1 -n 2 -t 20\n#SBATCH --nodes=1-2\n"
        "#SBATCH --hold\ntrue\n"
    )
    doc = slurm_hpcx.json("submit", str(script), "-t", "5")  # typed: overrides the script's -t 20
    try:
        first_job = _scontrol(doc["job_id"])
        again = slurm_hpcx.json("rerun", doc["run_id"])  # the same request again
        try:
            rerun_job = _scontrol(again["job_id"])
        finally:
            slurm_hpcx("cancel", again["run_id"])
    finally:
        slurm_hpcx("cancel", doc["run_id"])
    for job in (first_job, rerun_job):
        assert job["TresPerNode"] == "gres:gpu:tesla:1"  # the GPU type as written
        assert job["NumTasks"] == "2" and job["NumNodes"] == "1-2"  # not forced onto one node; the range kept
        assert job["NtasksPerN:B:S:C"].startswith("0:")  # no --ntasks-per-node of hpcx's
        assert job["JobName"] == "job.sh" and job["Partition"] == "batch" and job["TimeLimit"] == "00:05:00"


def test_tasks_spread_over_nodes_as_slurm_spreads_them(slurm_hpcx, tmp_path):
    script = tmp_path / "wide.sh"  # 6 tasks, 4 CPUs per node: Slurm takes 2 nodes; hpcx checked 2 x 3
    script.write_text("#!/bin/bash\n#SBATCH -p batch -n 6 -t 5 --hold\ntrue\n")
    doc = slurm_hpcx.json("submit", str(script))
    try:
        job = _scontrol(doc["job_id"])
    finally:
        slurm_hpcx("cancel", doc["run_id"])
    assert job["NumTasks"] == "6" and job["NtasksPerN:B:S:C"].startswith("0:") and job["JobName"] == "wide.sh"


def test_own_script_runs_where_it_was_submitted(slurm_hpcx, runs_root, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "task.py").write_text("import os\nprint('task ran in', os.getcwd())\n")
    (proj / "job.sh").write_text(
        "#!/bin/bash\n#SBATCH -t 5\n#SBATCH -o myout-%j.txt\n"
        "python task.py\necho submitted from $SLURM_SUBMIT_DIR\n"
    )
    doc = slurm_hpcx.json("submit", "./job.sh", cwd=proj)
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=300)["state"] == "COMPLETED"
    out = (proj / f"myout-{doc['job_id']}.txt").read_text()
    assert f"task ran in {proj}\nsubmitted from {proj}\n" == out
    assert (
        f"==> {proj}/myout-{doc['job_id']}.txt <==\ntask ran in {proj}"
        in slurm_hpcx("logs", doc["run_id"]).stdout
    )
    manifest = json.loads((runs_root / doc["run_id"] / "manifest.json").read_text())
    assert manifest["workdir"] == str(proj)


def test_a_kind_runs_where_it_was_submitted_and_keeps_the_programs_flags(slurm_hpcx, tmp_path):
    (tmp_path / "task.py").write_text(
        "import os, sys\nprint('args', sys.argv[1:], os.getcwd(), os.environ['SLURM_SUBMIT_DIR'])\n"
    )
    doc = slurm_hpcx.json(
        "submit", "serial", "-t", "5", "python", "task.py", "-N", "2", "-p", "batch", cwd=tmp_path
    )
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=300)["state"] == "COMPLETED"
    assert doc["partition"] == "debug"  # -p batch was the program's
    logs = slurm_hpcx("logs", doc["run_id"]).stdout
    assert f"args ['-N', '2', '-p', 'batch'] {tmp_path} {tmp_path}" in logs
