"""scripts/testbed after a machine stop: the daemons were killed, not taken down, and a job held both nodes.

The controller recovers that job from its saved state as RUNNING on both nodes although its processes are gone;
without `up` cancelling it, the smoke job and every test after it waited for resources (a CI run failed so).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import REPO

TESTBED = ["bash", str(REPO / "scripts" / "testbed")]
TESTBED_DIR = Path(os.environ.get("HPCX_TESTBED_DIR", "/var/lib/hpcx-testbed"))
PIDS = TESTBED_DIR / "pids"
JOB_STATE = TESTBED_DIR / "state" / "slurmctld" / "job_state"
SLURM_DAEMONS = ("slurmd-n2", "slurmd-n1", "slurmctld", "slurmdbd")


def _queue() -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, timeout=20, check=True
    )
    return out.stdout.split("\n")[:-1]


def test_up_after_a_killed_cluster_cancels_the_ghost_job_and_runs_jobs_again(testbed: Path):
    name = f"ghost-{os.getpid()}-{time.time_ns()}"
    job = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "-N",
            "2",
            "--exclusive",
            "-t",
            "5",
            "-J",
            name,
            "--wrap",
            "srun sleep 300",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout.strip()
    try:
        deadline = time.monotonic() + 30
        while f"{job} RUNNING" not in _queue():
            assert time.monotonic() < deadline, f"job {job} never started: {_queue()}"
            time.sleep(0.3)

        # The controller saves its state a few seconds after a change; a machine stop after that leaves the ghost.
        deadline = time.monotonic() + 60
        while name.encode() not in JOB_STATE.read_bytes():
            assert time.monotonic() < deadline, f"slurmctld never saved job {job} to {JOB_STATE}"
            time.sleep(0.5)
        for daemon in SLURM_DAEMONS:  # what a machine stop does to them: no `down`, no scancel
            os.kill(int((PIDS / f"{daemon}.pid").read_text()), signal.SIGKILL)
        time.sleep(1)
        subprocess.run(["pkill", "-9", "-f", "slurmstepd"], timeout=10, check=False)

        t0 = time.monotonic()
        up = subprocess.run([*TESTBED, "up"], capture_output=True, text=True, timeout=240)
        took = time.monotonic() - t0
        assert up.returncode == 0, up.stdout + up.stderr
        assert "recovered from a testbed that was not taken down): " in up.stdout, up.stdout
        cancelled = up.stdout.split("not taken down): ")[1].split("\n")[0].split()
        assert job in cancelled, up.stdout
        assert "smoke job srun -N 2 -n 2 hostname ok" in up.stdout
        assert took < 45, f"up took {took:.0f} s: the smoke job waited for the ghost's nodes"
        assert not [line for line in _queue() if line.startswith(f"{job} ")]
        state = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"], capture_output=True, text=True, timeout=20
        ).stdout
        assert state.startswith("CANCELLED"), state
        assert subprocess.run([*TESTBED, "status"], capture_output=True, timeout=30).returncode == 0
    finally:  # never leave the ghost holding both nodes for the tests after this one
        subprocess.run(["scancel", job], timeout=20, check=False)
