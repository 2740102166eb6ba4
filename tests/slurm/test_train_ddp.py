"""examples/train_ddp.py on the real cluster (2 ranks on 2 nodes, gloo), through the faults it must survive.

All runs are submitted together and driven from one fixture, so the cluster works on them in parallel:
- an uninterrupted run: the reference final-state sha256;
- five runs requeued by `scontrol requeue` at five different steps: each resumes and ends bit-identical;
- a run whose rank 1 is killed with SIGKILL while writing a checkpoint: resubmitted, it resumes from the last
  complete step, reports the torn one, and ends bit-identical;
- a run whose rank 1 raises: the job ends within 30 s and its log names the rank and the exception;
- a run with a time limit shorter than the training: it checkpoints, requeues and finishes, bit-identical.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(900)]  # one fixture drives nine jobs
STEPS, SLEEP = 40, "0.25"
TRAIN = ["python", "examples/train_ddp.py", "--steps", str(STEPS), "--step-sleep", SLEEP]
MPI2 = ["mpi", "--nodes", "2", "--ntasks-per-node", "1"]


def _last_step(run_dir: Path) -> int:
    path = run_dir / "metrics" / "rank-00000.jsonl"
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    return json.loads(lines[-1])["step"] if lines else 0


def _sha(out: Path) -> str | None:
    path = out / "final_state.sha256"
    return path.read_text().strip() if path.exists() else None


def _state(hpcx, run_id: str) -> dict:
    return hpcx.json("status", run_id)["runs"][0]


@pytest.fixture(scope="module")
def ddp(testbed, tmp_path_factory):
    """Submit every run, apply the faults at their steps, wait for the ends; yield what the tests check."""
    from tests.conftest import Hpcx, _base_env

    root = tmp_path_factory.mktemp("ddp")
    env = _base_env(root / "runs")
    env["HPCX_SITE"] = str(testbed)
    hpcx = Hpcx(env)
    steps = sorted(random.Random(5).sample(range(5, STEPS - 4), 5))
    sub = {}

    def submit(name, *extra, time_limit="10", env_extra=None):
        out = root / name
        runner = Hpcx({**env, **(env_extra or {})})
        doc = runner.json(
            "submit",
            *MPI2,
            "-t",
            time_limit,
            "--set",
            "signal_lead_s=30",
            "--",
            *TRAIN,
            "--out",
            str(out),
            *extra,
        )
        sub[name] = {
            "run_id": doc["run_id"],
            "job_id": doc["job_id"],
            "out": out,
            "run_dir": Path(doc["run_dir"]),
        }

    submit("reference")
    for k in steps:
        submit(f"requeue-{k}")
    submit("killed", "--die-in-save", "15", "--fail-rank", "1")
    submit("raises", "--fail-at", "12", "--fail-rank", "1")
    # A 3-minute limit and a 160 s margin: each run of the job may train for ~20 s (start-up included). Its
    # steps are slower (40 x 0.75 s) so the training can never fit into one run: with 0.25 s steps a quiet
    # machine finished all 40 before the stop point and the test saw no requeue (CI did).
    submit(
        "timelimit",
        "--step-sleep",
        "0.75",
        time_limit="3",
        env_extra={"HPCX_STOP_MARGIN_S": "160", "HPCX_MAX_RESTARTS": "12"},
    )

    deadline = time.monotonic() + 600
    pending_requeue = {f"requeue-{k}": k for k in steps}
    raise_seen_at = None
    last_status = 0.0
    rows: dict = {}
    while time.monotonic() < deadline:
        # Faults are applied from the metric files (cheap to poll); states come from one status call.
        for name, k in list(pending_requeue.items()):
            if _last_step(sub[name]["run_dir"]) >= k:
                subprocess.run(["scontrol", "requeue", sub[name]["job_id"]], timeout=30, check=True)
                del pending_requeue[name]
        if raise_seen_at is None and _last_step(sub["raises"]["run_dir"]) >= 12:
            raise_seen_at = time.monotonic()
        if time.monotonic() - last_status > 2:
            last_status = time.monotonic()
            names = list(sub)
            found = hpcx.json("status", *[sub[n]["run_id"] for n in names])["runs"]
            rows = dict(zip(names, found))
            if raise_seen_at and rows["raises"]["finished"] and "raises_ended_s" not in sub["raises"]:
                sub["raises"]["raises_ended_s"] = time.monotonic() - raise_seen_at
            if not pending_requeue and all(r["finished"] for r in rows.values()):
                break
        time.sleep(0.1)
    else:
        for s in sub.values():
            hpcx("cancel", s["run_id"], check=False)
        raise AssertionError(f"runs not finished in 600 s: {rows}")

    # The killed run is resubmitted (same checkpoint directory): it must resume from the last complete step.
    again = hpcx.json("submit", *MPI2, "-t", "10", "--", *TRAIN, "--out", str(sub["killed"]["out"]))
    sub["killed"]["again"] = again["run_id"]
    end = time.monotonic() + 180
    while not _state(hpcx, again["run_id"])["finished"]:
        assert time.monotonic() < end, "the resubmitted run did not finish"
        time.sleep(0.5)
    yield hpcx, sub, rows


def test_reference_run_completes(ddp):
    hpcx, sub, rows = ddp
    assert rows["reference"]["state"] == "COMPLETED", hpcx("logs", sub["reference"]["run_id"]).stdout
    assert _sha(sub["reference"]["out"]) is not None


def test_requeued_runs_resume_bit_identical(ddp):
    hpcx, sub, rows = ddp
    reference = _sha(sub["reference"]["out"])
    for name in [n for n in sub if n.startswith("requeue-")]:
        logs = hpcx("logs", sub[name]["run_id"]).stdout
        assert rows[name]["state"] == "COMPLETED", logs
        assert "resumed at step" in logs, logs
        assert _sha(sub[name]["out"]) == reference, f"{name}: final state differs\n{logs}"


def test_rank_killed_during_a_checkpoint_write_resumes_from_the_last_complete_step(ddp):
    hpcx, sub, rows = ddp
    assert rows["killed"]["state"] in ("FAILED", "CANCELLED"), rows["killed"]
    logs = hpcx("logs", sub["killed"]["again"]).stdout
    assert "resumed at step 10" in logs, logs
    # The load names the torn step, the directory its unfinished save left, and the step it loads instead.
    torn = re.compile(
        r"^step 15 is torn: its save did not finish \(step-00000015\.tmp-\w+ left over, removed by the next "
        r"save\); loading step 10$",
        re.MULTILINE,
    )
    assert torn.search(logs), logs
    assert _sha(sub["killed"]["out"]) == _sha(sub["reference"]["out"])


def test_one_rank_raising_ends_the_job_within_30_s_naming_the_rank(ddp):
    hpcx, sub, rows = ddp
    logs = hpcx("logs", sub["raises"]["run_id"]).stdout
    assert rows["raises"]["state"] == "FAILED", logs
    assert "rank 1 failed, aborting all ranks: injected failure at step 12" in logs
    assert sub["raises"]["raises_ended_s"] < 30


def test_time_limit_shorter_than_the_training_checkpoints_requeues_and_finishes(ddp):
    hpcx, sub, rows = ddp
    logs = hpcx("logs", sub["timelimit"]["run_id"]).stdout
    assert rows["timelimit"]["state"] == "COMPLETED", logs
    assert "stopping at step" in logs and "requeuing job" in logs and "resumed at step" in logs
    assert _sha(sub["timelimit"]["out"]) == _sha(sub["reference"]["out"])
