"""Shared fixtures: the CLI as a user runs it, a private runs root, and the real local Slurm test cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTBED_SITE = REPO / "examples" / "sites" / "testbed.yaml"
CMD_TIMEOUT_S = 120


class Hpcx:
    """Runs ``python -m hpcx ...`` in a subprocess, the way a user's shell would, with a timeout."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(
        self, *args: str, timeout_s: float = CMD_TIMEOUT_S, check: bool = True, cwd: Path = REPO
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "hpcx", *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=self.env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"hpcx {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str, **kw) -> dict:
        return json.loads(self("--json", *args, **kw).stdout)

    def wait_finished(self, run_id: str, timeout_s: float = 180) -> dict:
        """Poll `hpcx status` until the run's job has finished; fail (never hang) after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        row: dict = {}
        while time.monotonic() < deadline:
            row = self.json("status", run_id)["runs"][0]
            if row["finished"]:
                return row
            time.sleep(1)
        logs = self("logs", run_id, check=False).stdout
        self("cancel", run_id, check=False)  # a hung job must not outlive its test
        raise AssertionError(f"run {run_id} not finished after {timeout_s} s; last status {row}\n{logs}")


def _base_env(runs_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "SLURM_", "SBATCH_"))}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = f"{venv_bin}:{env.get('PATH', '')}"  # jobs run `python` from the same venv as the tests
    env["HPCX_RUNS"] = str(runs_root)
    return env


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def hpcx(runs_root: Path) -> Hpcx:
    """The CLI with the builtin local site (named: without a site file hpcx would take the live cluster) and a
    private runs root."""
    env = _base_env(runs_root)
    env["HPCX_SITE"] = "local"
    return Hpcx(env)


def _testbed_healthy() -> bool:
    try:
        return (
            subprocess.run(
                ["bash", str(REPO / "scripts" / "testbed"), "status"], capture_output=True, timeout=30
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="session")
def testbed() -> Path:
    """The real local Slurm cluster: reused when healthy, brought up otherwise (skipped where it cannot run)."""
    if shutil.which("slurmctld") is None or os.geteuid() != 0:
        pytest.skip("the Slurm test bed needs root and Debian's slurmctld: run scripts/setup first")
    if not _testbed_healthy():
        proc = subprocess.run(
            ["bash", str(REPO / "scripts" / "testbed"), "up"], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"scripts/testbed up failed:\n{proc.stdout}\n{proc.stderr}"
    assert _testbed_healthy(), "the test bed came up but `scripts/testbed status` says it is unhealthy"
    return TESTBED_SITE


@pytest.fixture
def slurm_hpcx(testbed: Path, runs_root: Path) -> Hpcx:
    """The CLI pointed at the test cluster's site file, with a runs root the slurmd nodes can write to."""
    env = _base_env(runs_root)
    env["HPCX_SITE"] = str(testbed)
    return Hpcx(env)
