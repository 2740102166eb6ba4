"""One task of a sweep or array on the real cluster: RUN_TASK, Slurm's JOBID_TASK and RUN:TASK in status, logs,
cancel and report; `logs --task I`; logs in task order (2 before 10)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Hpcx

pytestmark = pytest.mark.slurm


def small_arrays(slurm_hpcx: Hpcx, testbed: Path, tmp_path: Path, max_array_size: int) -> Hpcx:
    site = tmp_path / "site.yaml"
    site.write_text(testbed.read_text().replace("max_array_size: 1001", f"max_array_size: {max_array_size}"))
    return Hpcx({**slurm_hpcx.env, "HPCX_SITE": str(site)})


def spec(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return str(path)


def scancel(*job_ids: str) -> None:
    subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30)


def test_one_task_of_a_twelve_task_sweep(slurm_hpcx, testbed, tmp_path, runs_root):
    # 12 tasks in arrays of 5: tasks 0-4, 5-9 and 10-11; task 11 is index 1 of the third array.
    hpcx = small_arrays(slurm_hpcx, testbed, tmp_path, 5)
    doc = hpcx.json(
        "sweep",
        spec(
            tmp_path,
            "name: twelve\nresources: {time: '00:02:00'}\n"
            "command: [bash, -c, 'echo task={task} i={i}; echo err-{task} >&2']\n"
            "parameters: {grid: {i: {range: [0, 12]}}}\n",
        ),
    )
    run_id, third = doc["run_id"], doc["job_ids"][2]
    try:
        assert doc["arrays"] == 3
        hpcx.wait_finished(run_id)

        every = hpcx.json("logs", run_id)["files"]
        outs = [Path(f["path"]).name for f in every if f["path"].endswith(".out")]
        texts = [f["text"] for f in every if f["path"].endswith(".out")]
        assert texts == [f"task={t} i={t}" for t in range(12)], outs  # 0, 1, 2, ..., 10, 11: task order

        for key in (f"{run_id}_11", f"{third}_1", f"{run_id}:11"):
            one = hpcx.json("logs", key)["files"]
            assert [Path(f["path"]).name for f in one] == [f"slurm-{third}_1.err", f"slurm-{third}_1.out"], (
                key
            )
            assert [f["text"] for f in one] == ["err-11", "task=11 i=11"]
        assert (
            hpcx.json("logs", run_id, "--task", "11")["files"] == hpcx.json("logs", f"{run_id}_11")["files"]
        )
        text = hpcx("logs", run_id, "--task", "7").stdout
        assert "task=7 i=7" in text and "task=6" not in text and "task=8" not in text

        (row,) = hpcx.json("status", f"{third}_1")["runs"]
        assert (row["run_id"], row["task"], row["job_id"], row["state"]) == (
            run_id,
            11,
            f"{third}_1",
            "COMPLETED",
        )
        assert f"{run_id}_11" in hpcx("status", f"{run_id}_11").stdout

        report = hpcx.json("report", f"{run_id}_11", "--no-html")
        assert report["report"]["task"] == 11 and report["report_path"].endswith("task-00011.json")

        missing = hpcx("status", f"{run_id}_12", check=False)
        assert (
            missing.returncode == 2 and f"run {run_id} has no task 12: its tasks are 0-11" in missing.stderr
        )
    finally:
        scancel(*doc["job_ids"])


def test_cancel_one_task_of_a_sweep_leaves_the_others_running(slurm_hpcx, testbed, tmp_path, runs_root):
    hpcx = small_arrays(slurm_hpcx, testbed, tmp_path, 2)
    doc = hpcx.json(
        "sweep",
        spec(
            tmp_path,
            "name: three\nresources: {time: '00:05:00'}\n"
            "command: [bash, -c, 'sleep 300']\nparameters: {grid: {i: [0, 1, 2]}}\n",
        ),
    )
    run_id = doc["run_id"]
    try:
        second = doc["job_ids"][1]
        assert hpcx.json("cancel", f"{second}_0")["cancelled"] == [f"{run_id}_2"]
        deadline = time.monotonic() + 60
        while hpcx.json("status", f"{run_id}:2")["runs"][0]["state"] != "CANCELLED":
            assert time.monotonic() < deadline, "task 2 was not cancelled"
            time.sleep(1)
        tasks = hpcx.json("status", run_id)["runs"][0]["tasks"]
        assert tasks.get("CANCELLED") == 1 and sum(tasks.values()) == 3, tasks
    finally:
        scancel(*doc["job_ids"])


def test_one_task_of_an_array_job(slurm_hpcx, runs_root):
    sub = slurm_hpcx.json(
        "submit", "array", "--array", "0-11", "-t", "2", "--", "bash", "-c", "echo index=$HPCX_TASK_ID"
    )
    try:
        slurm_hpcx.wait_finished(sub["run_id"])
        texts = [
            f["text"] for f in slurm_hpcx.json("logs", sub["run_id"])["files"] if f["path"].endswith(".out")
        ]
        assert texts == [f"index={i}" for i in range(12)]
        (row,) = slurm_hpcx.json("status", f"{sub['job_id']}_10")["runs"]
        assert (row["task"], row["state"]) == (10, "COMPLETED")
        one = slurm_hpcx.json("logs", f"{sub['run_id']}_10")["files"]
        assert [f["text"] for f in one if f["path"].endswith(".out")] == ["index=10"]
    finally:
        scancel(sub["job_id"])


def test_a_single_job_has_no_tasks(slurm_hpcx, runs_root):
    sub = slurm_hpcx.json("submit", "serial", "-t", "1", "--", "true")
    try:
        proc = slurm_hpcx("logs", f"{sub['run_id']}_0", check=False)
        assert proc.returncode == 2 and "it is one job, neither an array nor a sweep" in proc.stderr
        assert json.loads(slurm_hpcx("--json", "status", sub["run_id"]).stdout)["runs"][0].get("task") is None
    finally:
        scancel(sub["job_id"])
