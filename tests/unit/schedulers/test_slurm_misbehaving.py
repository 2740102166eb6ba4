"""Slurm that hangs or prints garbage: a bounded wait and one line naming the command, never a hang.

The misbehaving Slurm commands are small stand-in scripts on PATH (the real cluster cannot be made to hang on
demand); the parsers and the timeout are hpcx's real code paths.
"""

import json
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import Hpcx

SITE = Path(__file__).resolve().parents[3] / "examples" / "sites" / "testbed.yaml"


def _stub(bindir: Path, name: str, body: str) -> None:
    path = bindir / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def broken(hpcx, runs_root, tmp_path) -> Hpcx:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = dict(hpcx.env, PATH=f"{bindir}:{hpcx.env['PATH']}", HPCX_SITE=str(SITE), HPCX_SLURM_TIMEOUT_S="1")
    run = runs_root / "20260101-000000-aaaaaa"
    run.mkdir()
    (run / "job.json").write_text(json.dumps({"scheduler": "slurm", "job_id": "42"}))
    b = Hpcx(env)
    b.bindir = bindir
    return b


@pytest.mark.parametrize(
    "body, words",
    [
        (
            "sleep 30",
            "`squeue -h -r --me --states=all -O JobArrayID:|,State:|,Reason:|,NodeList:|,exit_code:|,TimeUsed:|` timed out after 1 s",
        ),
        ("echo '<html>proxy error</html>'", "squeue printed a line hpcx cannot read"),
        (
            "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1",
            "exited 1: slurm_load_jobs error: Unable to contact slurm controller",
        ),
    ],
)
def test_status_with_a_misbehaving_squeue(broken, body, words):
    _stub(broken.bindir, "squeue", body)
    proc = broken("status", "20260101", check=False, timeout_s=30)
    assert proc.returncode == 1 and words in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_submit_with_a_hanging_sbatch_leaves_nothing(broken, runs_root):
    _stub(broken.bindir, "sbatch", "sleep 30")
    before = set(os.listdir(runs_root))
    proc = broken("submit", "serial", "--", "true", check=False, timeout_s=30)
    assert proc.returncode == 1 and "timed out after 1 s" in proc.stderr
    assert set(os.listdir(runs_root)) == before  # the half-made run directory was removed


def test_sweep_whose_second_array_fails_cancels_the_first_and_leaves_nothing(broken, runs_root, tmp_path):
    calls = tmp_path / "calls"
    _stub(
        broken.bindir,
        "sbatch",
        f'echo "sbatch $*" >> {calls}\n'
        f'if [ "${{HPCX_TASK_OFFSET:-}}" = 0 ]; then echo 101; else echo "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2; exit 1; fi',
    )
    _stub(broken.bindir, "scancel", f'echo "scancel $*" >> {calls}')
    for tool in ("scontrol", "squeue", "sacctmgr"):
        _stub(broken.bindir, tool, "exit 0")  # a cluster that reports no limits
    spec = tmp_path / "sweep.yaml"
    spec.write_text("name: s\ncommand: ['true']\nparameters: {grid: {i: {range: [0, 1200]}}}\n")
    before = set(os.listdir(runs_root))
    proc = broken("sweep", str(spec), check=False, timeout_s=60)
    assert proc.returncode == 1 and "QOSMaxSubmitJobPerUserLimit" in proc.stderr
    assert "scancel 101" in calls.read_text()  # the array already submitted is not left running
    assert set(os.listdir(runs_root)) == before
