"""Sweeps on the real cluster: one array per sweep, chunks at Slurm's MaxArraySize, parameters per task,
status by task state, failed tasks resubmitted alone."""

import json
import re
import subprocess
import time

import pytest

pytestmark = pytest.mark.slurm


def _write(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return str(path)


def _wait_tasks(hpcx, run_id, timeout_s=180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = hpcx.json("status", run_id)["runs"][0]
        if row["finished"]:
            return row
        time.sleep(1)
    hpcx("cancel", run_id, check=False)
    raise AssertionError(f"sweep {run_id} not finished: {row}")


def _array_indices(scontrol_text):
    """Every index of `scontrol show job ARRAY`'s records: ArrayTaskId=3, ArrayTaskId=5-198%4, 0-2,7."""
    indices = set()
    for value in re.findall(r"\bArrayTaskId=(\S+)", scontrol_text):
        for part in value.split("%")[0].split(","):
            first, _, last = part.partition("-")
            indices.update(range(int(first), int(last or first) + 1))
    return indices


def test_sweep_runs_each_task_with_its_parameters_and_retries_the_failed(slurm_hpcx, runs_root, tmp_path):
    marker = tmp_path / "second-attempt"
    spec = _write(
        tmp_path,
        f"""
name: scan
kind: serial
resources: {{time: "00:05:00"}}
command: [bash, -c, 'echo "task=$HPCX_TASK_ID lr={{lr}} model=$HPCX_PARAM_MODEL seed=$HPCX_SEED"; [ "$HPCX_TASK_ID" != 2 ] || [ -e {marker} ]']
parameters:
  grid: {{lr: [0.1, 0.01], model: [a, b]}}
""",
    )
    doc = slurm_hpcx.json("sweep", spec, "--max-parallel", "2")
    assert doc["tasks"] == 4 and doc["arrays"] == 1
    row = _wait_tasks(slurm_hpcx, doc["run_id"])
    assert row["tasks"] == {"COMPLETED": 3, "FAILED": 1} and row["state"] == "FAILED"
    out = (runs_root / doc["run_id"] / "logs" / f"slurm-{doc['job_id']}_1.out").read_text()
    table = [
        json.loads(line) for line in (runs_root / doc["run_id"] / "tasks.jsonl").read_text().splitlines()
    ]
    assert out.strip() == f"task=1 lr=0.1 model=b seed={table[1]['seed']}"

    marker.touch()
    retry = slurm_hpcx.json("sweep", "--retry-failed", doc["run_id"])
    assert retry["retried"] == [2] and len(retry["job_ids"]) == 1
    row = _wait_tasks(slurm_hpcx, doc["run_id"])
    assert row["tasks"] == {"COMPLETED": 4} and row["state"] == "COMPLETED"
    assert slurm_hpcx.json("sweep", "--retry-failed", doc["run_id"])["retried"] == []


def test_large_sweep_is_chunked_at_max_array_size(slurm_hpcx, runs_root, tmp_path):
    spec = _write(
        tmp_path,
        """
name: big
resources: {time: "00:01:00"}
command: ['true']
parameters: {grid: {i: {range: [0, 1200]}}}
""",
    )
    doc = slurm_hpcx.json("sweep", spec)
    try:
        assert doc["tasks"] == 1200 and doc["arrays"] == 2  # the test cluster keeps MaxArraySize=1001
        chunks = json.loads((runs_root / doc["run_id"] / "job.json").read_text())["chunks"]
        assert [(c["offset"], c["count"]) for c in chunks] == [(0, 1001), (1001, 199)]
        shown = subprocess.run(
            ["scontrol", "show", "job", chunks[1]["job_id"]], capture_output=True, text=True, timeout=30
        ).stdout
        # One record per started task and one for the rest (ArrayTaskId=5-198): together exactly 0..198.
        assert _array_indices(shown) == set(range(199)), shown
        assert sum(slurm_hpcx.json("status", doc["run_id"])["runs"][0]["tasks"].values()) == 1200
    finally:
        slurm_hpcx("cancel", doc["run_id"], check=False)


def test_sweep_over_a_partition_limit_submits_nothing(slurm_hpcx, runs_root, tmp_path):
    spec = _write(
        tmp_path,
        "name: x\ncommand: ['true']\nparameters: {grid: {i: [1, 2]}}\nresources: {time: '48:00:00', partition: debug}\n",
    )
    proc = slurm_hpcx("sweep", spec, check=False)
    assert proc.returncode == 3 and "MaxTime" in proc.stderr
    assert list(runs_root.iterdir()) == []


def test_sweep_larger_than_max_submit_jobs_is_refused_before_sbatch(slurm_hpcx, runs_root, tmp_path):
    spec = _write(tmp_path, "name: x\ncommand: ['true']\nparameters: {grid: {i: {range: [0, 10]}}}\n")
    subprocess.run(
        ["sacctmgr", "-i", "modify", "user", "root", "set", "MaxSubmitJobs=5"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    try:
        proc = slurm_hpcx("sweep", spec, check=False)
    finally:
        subprocess.run(
            ["sacctmgr", "-i", "modify", "user", "root", "set", "MaxSubmitJobs=-1"],
            check=True,
            capture_output=True,
            timeout=30,
        )
    assert proc.returncode == 3, proc.stderr
    assert "the sweep has 10 tasks" in proc.stderr and "your MaxSubmitJobs is 5" in proc.stderr
    assert list(runs_root.iterdir()) == []
