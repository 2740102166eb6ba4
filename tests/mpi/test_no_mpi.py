"""The runtime without MPI: plain processes with Slurm step variables (as `srun --resv-ports` sets them) bring
up torch.distributed on the reserved port, and checkpoints, preemption and HDF5 work over its comm."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hpcx.runtime.freeport import free_port
from tests.mpi.mpirun import REPO

WORKER = "tests/mpi/no_mpi_worker.py"


def _step_env(rank: int, size: int, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "SLURM_", "RANK", "WORLD"))
    }
    env.update(
        SLURM_PROCID=str(rank),
        SLURM_STEP_NUM_TASKS=str(size),
        SLURM_LOCALID=str(rank),
        SLURM_STEP_NODELIST="n1",
        SLURM_STEP_TASKS_PER_NODE=f"{size}",
        SLURM_NODEID="0",
        HPCX_MPI="0",
        GLOO_SOCKET_IFNAME="lo",
        HPCX_MASTER_ADDR="127.0.0.1",
        **extra,
    )
    return env


def _run(size: int, tmp_path, **extra: str) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, str(tmp_path)],
            cwd=REPO,
            env=_step_env(r, size, **extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(size)
    ]
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def test_reserved_port_brings_up_torch_distributed_and_everything_on_it(tmp_path):
    port = free_port()
    results = _run(3, tmp_path, SLURM_STEP_RESV_PORTS=f"{port}-{port + 3}")
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-2000:] for r in results]
    docs = sorted((json.loads(r.stdout.splitlines()[-1]) for r in results), key=lambda d: d["rank"])
    for d in docs:
        assert (d["size"], d["sum"], d["gathered"], d["token"]) == (3, 6.0, [0, 1, 2], "from-0")
        assert (d["mpi"], d["addr"], d["port"]) == ("TorchComm", "127.0.0.1", port)
        assert (d["loaded_step"], d["layout"], d["stop"]) == (1, "per-rank", False)
    import h5py

    with h5py.File(tmp_path / "data.h5") as f:
        assert f["x"][:, 0].tolist() == [0, 1, 1, 2, 2, 2]


def test_without_mpi_or_reserved_ports_it_says_what_to_do(tmp_path):
    results = _run(2, tmp_path)
    for r in results:
        assert r.returncode != 0
        assert "SLURM_STEP_RESV_PORTS" in r.stderr and "--resv-ports" in r.stderr, r.stderr[-2000:]


def test_tasks_per_node_is_read_from_slurm_s_compact_form(monkeypatch):
    from hpcx.runtime import dist

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "4(x2),3")
    for node, want in ((0, 4), (1, 4), (2, 3)):
        monkeypatch.setenv("SLURM_NODEID", str(node))
        assert dist._ranks_on_node_from_env() == want
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert dist._ranks_on_node_from_env() == 8


@pytest.mark.parametrize(
    ("env", "want"),
    [({"HPCX_MPI": "0"}, False), ({"HPCX_MPI": "1"}, True), ({"RANK": "0", "WORLD_SIZE": "2"}, False)],
)
def test_mpi_is_used_unless_off_or_torchrun(monkeypatch, env, want):
    from hpcx.runtime import dist

    for key in ("HPCX_MPI", "RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert dist.mpi_wanted() is want


SINGLE_RANK_FAILS = """
import sys
sys.modules["mpi4py"] = None  # this Python has no mpi4py
from hpcx import runtime

def train():
    raise ValueError("loss is nan at step 3")

with runtime.session(torch_backend=None) as ctx:
    print("ranks", ctx.size, "comm", ctx.comm, flush=True)
    train()
"""


def test_a_single_rank_without_mpi4py_shows_the_user_s_own_error():
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMPI_", "PMI", "SLURM_", "RANK", "WORLD", "HPCX_"))
    }
    out = subprocess.run(
        [sys.executable, "-c", SINGLE_RANK_FAILS],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )
    assert out.stdout == "ranks 1 comm None\n"
    assert out.returncode == 1
    assert out.stderr.rstrip().splitlines()[-1] == "ValueError: loss is nan at step 3", out.stderr
    assert "line 7, in train" in out.stderr and "mpi4py" not in out.stderr, out.stderr
