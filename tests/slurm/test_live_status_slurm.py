"""Live status on the real cluster (issue 15): a 2-rank job logging every 0.2 s shows advancing steps in
`hpcx --json status RUN` while it runs, and once its ranks and their hpcx.run are stopped (SIGSTOP) it reads
stalled within three heartbeat intervals (HPCX_HEARTBEAT_S=1)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

HEARTBEAT_S = 1.0
PROGRAM = """
import json, os, pathlib, sys, time
import hpcx.runtime as r
out = pathlib.Path(sys.argv[1])
(out / ("pid-" + os.environ["HPCX_RANK"])).write_text(str(os.getpid()))
r.progress(10000)
for step in range(10000):
    r.log(step, loss=1.0 / (step + 1))
    time.sleep(0.2)
"""


def _live(hpcx, run_id: str) -> dict:
    row = hpcx.json("status", run_id, timeout_s=60)["runs"][0]
    return {"state": row["state"], **(row["live"] or {})}


def _poll(hpcx, run_id: str, until, timeout_s: float) -> list[dict]:
    """Status documents every 0.5 s until ``until(seen)`` holds; fails (never hangs) after ``timeout_s``."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen.append(_live(hpcx, run_id))
        if until(seen):
            return seen
        time.sleep(0.5)
    raise AssertionError(f"not seen within {timeout_s} s; last status: {seen[-3:]}")


def _hpcx_run_above(pid: int) -> int:
    """The ``python -m hpcx.run`` process that started ``pid`` (its parent, or the nearest ancestor)."""
    while pid > 1:
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        if b"hpcx.run" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError("no hpcx.run above the rank")


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def test_steps_advance_while_it_runs_and_a_stopped_job_reads_stalled(slurm_hpcx, runs_root):
    slurm_hpcx.env["HPCX_HEARTBEAT_S"] = str(HEARTBEAT_S)
    out = runs_root / "live-pids"  # the runs root is where the nodes can write
    out.mkdir()
    program = runs_root / "live_job.py"
    program.write_text(PROGRAM)
    doc = slurm_hpcx.json(
        "submit", "mpi", "-N", "1", "-n", "2", "-t", "5", "--", "python", str(program), str(out)
    )
    stopped: list[int] = []
    try:
        seen = _poll(
            slurm_hpcx,
            doc["run_id"],
            lambda s: s[-1]["state"] == "RUNNING" and len({x.get("step") for x in s if x.get("step")}) >= 3,
            timeout_s=180,
        )
        steps = [x["step"] for x in seen if x.get("step") is not None]
        assert steps == sorted(steps) and steps[-1] > steps[0]
        last = seen[-1]
        assert last["total_steps"] == 10000 and last["main_metric"] == "loss" and last["steps_per_s"] > 1
        assert last["heartbeat_interval_s"] == HEARTBEAT_S and last["stalled"] is False

        ranks = [int((out / f"pid-{rank}").read_text()) for rank in (0, 1)]
        stopped = ranks + [_hpcx_run_above(pid) for pid in ranks]
        _signal_all(stopped, signal.SIGSTOP)
        t0 = time.monotonic()
        seen = _poll(slurm_hpcx, doc["run_id"], lambda s: s[-1].get("stalled"), timeout_s=30)
        waited_s = time.monotonic() - t0
        stalled = seen[-1]
        # Stalled once the heartbeat is over 3 intervals old: at most 3 s plus one interval and a poll or two.
        assert waited_s <= 3 * HEARTBEAT_S + HEARTBEAT_S + 5, waited_s
        assert stalled["state"] == "RUNNING" and stalled["heartbeat_age_s"] > 3 * HEARTBEAT_S
        assert "stalled" in slurm_hpcx("status", doc["run_id"]).stdout
    finally:
        _signal_all(stopped, signal.SIGCONT)
        slurm_hpcx("cancel", doc["run_id"], check=False)
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=120)
    assert row["finished"] and row["live"]["stalled"] is False
    assert json.loads(json.dumps(row["live"]))["step"] >= steps[-1]
