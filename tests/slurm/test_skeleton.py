"""The walking skeleton on the real local Slurm cluster: login node -> Slurm -> 2 MPI ranks on 2 nodes -> HDF5
-> per-rank profile records -> report."""

import json
import time

import pytest

from hpcx.schedulers.slurm import SlurmScheduler

pytestmark = pytest.mark.slurm


def test_two_ranks_on_two_nodes_end_to_end(slurm_hpcx, runs_root):
    doc = slurm_hpcx.json(
        "submit",
        "mpi",
        "--nodes",
        "2",
        "--ntasks-per-node",
        "1",
        "--",
        "python",
        "examples/allreduce_hdf5.py",
        "--seconds",
        "2",
    )
    assert doc["job_id"].isdigit() and doc["partition"] == "debug"
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=180)
    logs = slurm_hpcx("logs", doc["run_id"]).stdout
    assert row["state"] == "COMPLETED" and row["exit_code"] == 0, logs
    assert "mpi allreduce=3 torch allreduce=3 backend=gloo" in logs and "hdf5=ok" in logs

    text = slurm_hpcx("report", doc["run_id"]).stdout
    assert "2 ranks on 2 nodes (n1, n2)" in text
    report = json.loads((runs_root / doc["run_id"] / "report" / "report.json").read_text())
    assert report["job_id"] == doc["job_id"]
    assert {r["node"] for r in report["ranks"]} == {"n1", "n2"}
    assert all(r["launcher"] == "srun" for r in _starts(runs_root / doc["run_id"]))
    # The job id finds the run as well as the run id does.
    assert slurm_hpcx.json("status", doc["job_id"])["runs"][0]["run_id"] == doc["run_id"]


def _starts(run_dir):
    from hpcx.rundir.records import read_records

    return [next(read_records(f)) for f in sorted((run_dir / "profile").glob("rank-*.jsonl"))]


def test_failure_exit_code_from_squeue_and_sacct(slurm_hpcx):
    doc = slurm_hpcx.json("submit", "serial", "--", "bash", "-c", "exit 3")
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=120)
    assert (row["state"], row["exit_code"], row["source"]) == ("FAILED", 3, "squeue")
    # Slurm 22.05's sacct --json says 0 here; the text form hpcx reads says 3.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        from_sacct = {s.job_id: s for s in SlurmScheduler()._sacct([doc["job_id"]])}.get(doc["job_id"])
        if from_sacct and from_sacct.finished:
            break
        time.sleep(1)
    assert from_sacct and (from_sacct.state, from_sacct.exit_code) == ("FAILED", 3)


def test_cancel(slurm_hpcx):
    doc = slurm_hpcx.json("submit", "serial", "--", "sleep", "300")
    deadline = time.monotonic() + 60
    while slurm_hpcx.json("status", doc["run_id"])["runs"][0]["state"] != "RUNNING":
        assert time.monotonic() < deadline, "job never started"
        time.sleep(0.5)
    slurm_hpcx("cancel", doc["run_id"])
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=60)["state"] == "CANCELLED"


def test_inherited_sbatch_variables_do_not_leak(slurm_hpcx):
    # SBATCH_PARTITION would override the script's #SBATCH --partition if it reached sbatch.
    env = dict(slurm_hpcx.env, SBATCH_PARTITION="nosuchpartition", SLURM_JOB_NAME="leaked")
    leaky = type(slurm_hpcx)(env)
    doc = leaky.json("submit", "serial", "--", "true")
    assert leaky.wait_finished(doc["run_id"], timeout_s=120)["state"] == "COMPLETED"


def test_gpu_request_reaches_the_gpu_node(slurm_hpcx):
    doc = slurm_hpcx.json(
        "submit",
        "serial",
        "-p",
        "gpu",
        "--gpus-per-node",
        "1",
        "--",
        "bash",
        "-c",
        "echo CUDA=$CUDA_VISIBLE_DEVICES node=$SLURMD_NODENAME",
    )
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=120)["state"] == "COMPLETED"
    assert "CUDA=0 node=n2" in slurm_hpcx("logs", doc["run_id"]).stdout


def test_rejected_request_never_reaches_slurm(slurm_hpcx, runs_root):
    proc = slurm_hpcx("submit", "serial", "-p", "debug", "-t", "48:00:00", "--", "true", check=False)
    assert proc.returncode == 3 and "MaxTime 00:30:00" in proc.stderr
    assert list(runs_root.iterdir()) == []


def test_testbed_status_through_the_cli(slurm_hpcx):
    proc = slurm_hpcx("testbed", "status", timeout_s=60)
    assert "n1" in proc.stdout and "n2" in proc.stdout
