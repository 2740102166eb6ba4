"""Many writers on one runs root: 32 `hpcx submit`s at once, with `hpcx runs` refreshing the index meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hpcx.runs.index import index_path

SUBMITS = 32
REFRESH_EVERY = 4  # one `hpcx runs` started after every 4th submit: 8 refreshers among the submits
DEADLINE_S = 300


def start(hpcx, cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hpcx", *args],
        env=hpcx.env,
        cwd=cwd,  # not a git checkout: the submits skip `git status`, which is not what this test is about
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen], deadline: float) -> list[tuple[int, str, str]]:
    """Wait for every process: (exit code, stdout, stderr) each."""
    outputs = [p.communicate(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]


def kill_leftovers(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_jobs_finished(hpcx, deadline: float) -> list[dict]:
    """Poll `hpcx status --all` until every local job has ended, so no job outlives the test; cancel them if not."""
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = hpcx.json("status", "--all")["runs"]
        if all(r["finished"] for r in rows):
            return rows
        time.sleep(1)
    hpcx("cancel", *[r["run_id"] for r in rows if not r["finished"]], check=False)
    raise AssertionError(f"jobs still running after {DEADLINE_S} s: {[r for r in rows if not r['finished']]}")


def dir_sig(run_dir: Path) -> list[int]:
    """What the index keeps of a run directory to notice a change: inode and mtime."""
    st = os.stat(run_dir)
    return [st.st_ino, st.st_mtime_ns]


def test_32_concurrent_submits_give_32_runs_and_an_index_of_32(hpcx, runs_root, tmp_path):
    deadline = time.monotonic() + DEADLINE_S
    submits, refreshers, states = [], [], []
    try:
        for i in range(SUBMITS):  # every process is started before any is waited for
            submits.append(start(hpcx, tmp_path, "--json", "submit", "serial", "--", "true"))
            if i % REFRESH_EVERY == REFRESH_EVERY - 1:
                refreshers.append(start(hpcx, tmp_path, "--json", "runs", "--limit", "0"))
        submitted = finish(submits, deadline)
        refreshed = finish(refreshers, deadline)
    finally:
        kill_leftovers(submits + refreshers)  # a process past the deadline must not outlive the test
        if any(p.name != ".index" for p in runs_root.iterdir()):
            states = wait_jobs_finished(hpcx, deadline + 60)
    assert [rc for rc, _, _ in submitted] == [0] * SUBMITS, [err for rc, _, err in submitted if rc]
    assert [rc for rc, _, _ in refreshed] == [0] * (SUBMITS // REFRESH_EVERY), [
        err for _, _, err in refreshed
    ]

    # 32 distinct run directories, each with whole records that agree with what submit printed.
    jobs = {doc["run_id"]: doc["job_id"] for doc in (json.loads(out) for _, out, _ in submitted)}
    assert len(jobs) == SUBMITS
    assert {p.name for p in runs_root.iterdir() if not p.name.startswith(".")} == set(jobs)
    for run_id, job_id in jobs.items():
        assert json.loads((runs_root / run_id / "manifest.json").read_text())["run_id"] == run_id
        assert json.loads((runs_root / run_id / "job.json").read_text())["job_id"] == job_id
    assert {r["run_id"] for r in states} == set(jobs) and {r["state"] for r in states} == {"COMPLETED"}

    # What each refresher listed, and the index the last rename left, are true or detectably stale: a row read
    # before its job.json was renamed into place has no job and a signature that no longer matches the directory.
    for _, out, _ in refreshed:
        for row in json.loads(out)["runs"]:
            assert row["run_id"] in jobs and row["job_id"] in (None, jobs[row["run_id"]])
    raced = json.loads(index_path(runs_root).read_text())
    assert raced["schema"] == "hpcx.run-index/2"
    for row in raced["runs"]:
        assert row["run_id"] in jobs
        assert row["job_id"] == jobs[row["run_id"]] or row["sig"] != dir_sig(runs_root / row["run_id"]), row

    # One more refresh lists exactly the 32, and leaves an index that matches every directory.
    listed = hpcx.json("runs", "--limit", "0")["runs"]
    assert {r["run_id"]: r["job_id"] for r in listed} == jobs
    assert {r["state"] for r in listed} == {"COMPLETED"}
    final = {r["run_id"]: r for r in json.loads(index_path(runs_root).read_text())["runs"]}
    assert set(final) == set(jobs)
    assert all(row["sig"] == dir_sig(runs_root / run_id) for run_id, row in final.items())
    assert list(runs_root.rglob("*.tmp")) == []  # no temp file left behind by any writer
