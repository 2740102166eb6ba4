"""GPU paths: NCCL bring-up through hpcx.runtime. Skipped on machines without a CUDA GPU."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
]
REPO = Path(__file__).resolve().parents[2]


def test_example_brings_up_nccl_on_one_gpu(tmp_path):
    # One rank: under mpirun where the machine has it, else started directly (MPI's singleton start).
    cmd = ["mpirun", "-n", "1"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    cmd = cmd if shutil.which("mpirun") else []
    proc = subprocess.run(
        [
            *cmd,
            sys.executable,
            "examples/allreduce_hdf5.py",
            "--out",
            str(tmp_path / "x.h5"),
            "--seconds",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "backend=nccl" in proc.stdout and "hdf5=ok" in proc.stdout
