"""examples/train_ddp.py at its edges, in one process without Slurm or mpirun (the runtime's no-MPI path).

The Slurm tests cover the requeue loop itself; these pin the two ways a job can meet its checkpoint of the last
step: a stop request that arrives during the last step (the job finishes instead of requeueing for nothing), and
a requeued attempt that resumes from that checkpoint (no steps left to run, and still a clean finish).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("mpi4py")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "train_ddp.py"


def _run(out: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, HPCX_RUN_DIR=str(out))
    cmd = [sys.executable, str(EXAMPLE), "--out", str(out), "--rows", "256", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_resuming_from_the_checkpoint_of_the_last_step_finishes_cleanly(tmp_path):
    first = _run(tmp_path, "--steps", "3")
    assert first.returncode == 0, first.stderr
    assert "done: 3 steps, final loss" in first.stdout
    again = _run(tmp_path, "--steps", "3")  # what a requeued job sees when it stopped at its last step
    assert again.returncode == 0, again.stderr
    assert "resumed at step 3" in again.stdout
    assert "done: 3 steps, final loss n/a (resumed after the last step)" in again.stdout
    assert first.stdout.split("sha256 ")[-1] == again.stdout.split("sha256 ")[-1]


def test_a_stop_request_during_the_last_step_finishes_instead_of_requeueing(tmp_path):
    env = dict(os.environ, HPCX_RUN_DIR=str(tmp_path))
    cmd = [
        sys.executable,
        str(EXAMPLE),
        "--out",
        str(tmp_path),
        "--rows",
        "256",
        "--steps",
        "2",
        "--step-sleep",
        "6",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        metrics = tmp_path / "metrics" / "rank-00000.jsonl"
        deadline = time.monotonic() + 120
        # Wait until step 2 (the last) is logged: the job sleeps 6 s after it.
        while time.monotonic() < deadline:
            lines = metrics.read_text().split("\n")[:-1] if metrics.exists() else []  # whole lines only
            if any(json.loads(line).get("step") == 2 for line in lines if line.strip()):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("step 2 never logged")
        proc.send_signal(signal.SIGUSR2)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopping at step" not in out
    assert "done: 2 steps, final loss" in out
