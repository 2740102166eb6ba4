"""A sweep's arrays on the real cluster: sized by the smaller of the site's and Slurm's MaxArraySize, submitted
with the site's allow_env, cancelled all together (chained chunks and retries too) in one scancel, and shown
by `hpcx status` from one batched query, whatever the mix of sweeps and jobs."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Hpcx

pytestmark = pytest.mark.slurm

SLOW_TASK = "[bash, -c, 'sleep 300']"


def site_with(testbed: Path, tmp_path: Path, *, max_array_size: int | None = None, extra: str = "") -> Path:
    """The test cluster's site file with every partition's max_array_size replaced, and ``extra`` appended."""
    text = testbed.read_text()
    if max_array_size is not None:
        text = text.replace("max_array_size: 1001", f"max_array_size: {max_array_size}")
    site = tmp_path / "site.yaml"
    site.write_text(text + extra)
    return site


def cli(slurm_hpcx: Hpcx, site: Path, **env: str) -> Hpcx:
    return Hpcx({**slurm_hpcx.env, "HPCX_SITE": str(site), **env})


def logged_slurm(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A PATH whose squeue, sacct and scancel log each call (one line: the command and its arguments) before
    running the real one."""
    bin_dir, log = tmp_path / "logged-bin", tmp_path / "slurm-calls.log"
    bin_dir.mkdir()
    for name in ("squeue", "sacct", "scancel"):
        real = shutil.which(name)
        assert real, f"{name} is not on PATH"
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\nexec {real} "$@"\n')
        wrapper.chmod(0o755)
    log.touch()
    return {"PATH_PREFIX": str(bin_dir)}, log


def with_logged_path(hpcx: Hpcx, prefix: dict[str, str]) -> Hpcx:
    return Hpcx({**hpcx.env, "PATH": f"{prefix['PATH_PREFIX']}:{hpcx.env['PATH']}"})


def spec(tmp_path: Path, text: str, name: str = "sweep.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def queued(job_ids: list[str]) -> list[str]:
    """The lines squeue still shows for these jobs (pending or running)."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True, timeout=30
    ).stdout
    return [line for line in out.splitlines() if line.split("_")[0].split()[0] in job_ids]


def scancel(*job_ids: str) -> None:
    """Cleanup that does not depend on the code under test: every array of the sweep, straight to Slurm."""
    subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30)


def wait_until(predicate, timeout_s: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def test_site_max_array_size_above_the_live_limit_still_splits_at_the_live_one(
    slurm_hpcx, testbed, tmp_path, runs_root
):
    # The site file says 5000, the cluster's MaxArraySize is 1001: one array of 1200 would be refused by sbatch.
    hpcx = cli(slurm_hpcx, site_with(testbed, tmp_path, max_array_size=5000))
    path = spec(
        tmp_path,
        "name: big\nresources: {time: '00:01:00'}\ncommand: ['true']\n"
        "parameters: {grid: {i: {range: [0, 1200]}}}\n",
    )
    proc = hpcx("--json", "sweep", path, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    try:
        chunks = json.loads((runs_root / doc["run_id"] / "job.json").read_text())["chunks"]
        assert [(c["offset"], c["count"]) for c in chunks] == [(0, 1001), (1001, 199)]
    finally:
        scancel(*doc["job_ids"])


def test_site_max_array_size_below_the_live_limit_wins(slurm_hpcx, testbed, tmp_path, runs_root):
    hpcx = cli(slurm_hpcx, site_with(testbed, tmp_path, max_array_size=3))
    doc = hpcx.json(
        "sweep",
        spec(tmp_path, f"name: s\ncommand: {SLOW_TASK}\nparameters: {{grid: {{i: {{range: [0, 7]}}}}}}\n"),
    )
    try:
        assert doc["tasks"] == 7 and doc["arrays"] == 3
    finally:
        scancel(*doc["job_ids"])


def test_sweep_passes_the_sites_allow_env_to_sbatch(slurm_hpcx, testbed, tmp_path, runs_root):
    site = site_with(testbed, tmp_path, extra="allow_env: [SBATCH_HPCX_MARK]\n")
    hpcx = cli(slurm_hpcx, site, SBATCH_HPCX_MARK="from-the-login-shell")
    doc = hpcx.json(
        "sweep",
        spec(
            tmp_path,
            "name: e\nresources: {time: '00:02:00'}\n"
            "command: [bash, -c, 'echo mark=${SBATCH_HPCX_MARK:-scrubbed}']\n"
            "parameters: {grid: {i: [1]}}\n",
        ),
    )
    hpcx.wait_finished(doc["run_id"])
    out = (runs_root / doc["run_id"] / "logs" / f"slurm-{doc['job_id']}_0.out").read_text()
    assert out.strip() == "mark=from-the-login-shell"


def test_cancel_sweep_cancels_every_array_chained_chunks_and_retries_in_one_scancel(
    slurm_hpcx, testbed, tmp_path, runs_root
):
    hpcx = cli(slurm_hpcx, site_with(testbed, tmp_path, max_array_size=3))
    marker = tmp_path / "retried"
    # Task 0 fails at once (then, once retried, waits); the others wait. --max-parallel 1 chains the 3 arrays.
    path = spec(
        tmp_path,
        f"""
name: c
resources: {{time: "00:05:00"}}
command: [bash, -c, '[ "$HPCX_TASK_ID" != 0 ] || [ -e {marker} ] || exit 3; sleep 300']
parameters: {{grid: {{i: {{range: [0, 7]}}}}}}
""",
    )
    doc = hpcx.json("sweep", path, "--max-parallel", "1")
    run_id = doc["run_id"]
    try:
        assert doc["arrays"] == 3
        wait_until(
            lambda: hpcx.json("status", run_id)["runs"][0]["tasks"].get("FAILED") == 1, 150, "task 0 fails"
        )
        marker.touch()
        retry = hpcx.json("sweep", "--retry-failed", run_id)
        assert retry["retried"] == [0]
        every_array = [*doc["job_ids"], *retry["job_ids"]]
        assert len(queued(every_array)) > 0

        prefix, log = logged_slurm(tmp_path)
        with_logged_path(hpcx, prefix)("cancel", run_id)
        scancels = [line for line in log.read_text().splitlines() if line.startswith("scancel")]
        assert len(scancels) == 1 and sorted(scancels[0].split()[1:]) == sorted(every_array)
        wait_until(lambda: not queued(every_array), 30, f"arrays {every_array} leave the queue")
        # Nothing of the sweep ran on after the cancel: the chained arrays did not start (afterany is satisfied
        # by a cancelled array), the retry did not either.
        time.sleep(3)
        assert not queued(every_array)
        row = hpcx.json("status", run_id)["runs"][0]
        assert row["state"] == "CANCELLED" and row["tasks"] == {"CANCELLED": 7}, row
    finally:
        chunks = json.loads((runs_root / run_id / "job.json").read_text())["chunks"]
        scancel(*(str(c["job_id"]) for c in chunks))


def test_status_of_sweeps_and_jobs_is_one_batched_query(slurm_hpcx, testbed, tmp_path, runs_root):
    hpcx = cli(slurm_hpcx, site_with(testbed, tmp_path, max_array_size=3))
    done = hpcx.json(
        "sweep",
        spec(tmp_path, "name: quick\ncommand: ['true']\nparameters: {grid: {i: [1, 2]}}\n", "quick.yaml"),
    )
    hpcx.wait_finished(done["run_id"])  # a finished sweep beside the live ones
    body = f"resources: {{time: '00:05:00'}}\ncommand: {SLOW_TASK}\nparameters: {{grid: {{i: {{range: [0, 7]}}}}}}\n"
    # --max-parallel 1: one task of each runs, the rest wait (the cluster is shared with other tests).
    sweeps = [
        hpcx.json("sweep", spec(tmp_path, f"name: s{n}\n{body}", f"s{n}.yaml"), "--max-parallel", "1")
        for n in range(2)
    ]
    job = hpcx.json("submit", "serial", "-t", "5", "--", "sleep", "300")
    try:
        prefix, log = logged_slurm(tmp_path)
        rows = with_logged_path(hpcx, prefix).json("status")["runs"]
        calls = log.read_text().splitlines()
        assert len(rows) == 4 and {r["run_id"] for r in rows} == {
            *(s["run_id"] for s in sweeps),
            done["run_id"],
            job["run_id"],
        }
        assert sum(sum(r["tasks"].values()) for r in rows if r["tasks"]) == 7 + 7 + 2
        assert [c.split()[0] for c in calls].count("squeue") == 1, calls
        assert [c.split()[0] for c in calls].count("sacct") <= 1, calls
    finally:
        scancel(*(i for s in sweeps for i in s["job_ids"]), job["job_id"])


def test_status_of_named_finished_runs_asks_sacct_once_for_all_their_accounting(slurm_hpcx, tmp_path):
    quick = spec(
        tmp_path, "name: ok\ncommand: [bash, -c, 'exit 0']\nparameters: {grid: {i: [1, 2]}}\n", "ok.yaml"
    )
    runs = [slurm_hpcx.json("sweep", quick)["run_id"] for _ in range(2)]
    runs.append(slurm_hpcx.json("submit", "serial", "-t", "5", "--", "true")["run_id"])
    deadline = time.monotonic() + 120  # plain `status` (no names) keeps no accounting record: wait with it
    while not all(r["finished"] for r in slurm_hpcx.json("status")["runs"] if r["run_id"] in runs):
        assert time.monotonic() < deadline, "the runs did not finish"
        time.sleep(1)
    prefix, log = logged_slurm(tmp_path)
    logged = with_logged_path(slurm_hpcx, prefix)
    rows = logged.json("status", *runs)["runs"]
    calls = [c.split()[0] for c in log.read_text().splitlines()]
    assert [r["state"] for r in rows] == ["COMPLETED"] * 3
    # The states in one query, then every run's accounting record in one more (not one sacct per run).
    assert calls.count("squeue") <= 1 and calls.count("sacct") <= 2, calls
    by_id = {r["run_id"]: r for r in logged.json("runs")["runs"]}
    for run in runs:
        doc = json.loads((Path(by_id[run]["run_dir"]) / "accounting.json").read_text())
        assert doc["rows"] and all(
            r["JobID"].split("_")[0].split(".")[0] in doc["job_ids"] for r in doc["rows"]
        )
