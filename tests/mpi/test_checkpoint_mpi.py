"""Checkpoints under real Open MPI: per-rank shards, every rank's RNG, world-size checks, a rank killed mid-save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.mpi.test_runtime_mpi import mpirun

pytestmark = pytest.mark.mpi
pytest.importorskip("torch")

# One script, several modes; each rank prints what it saw, the test reads it back.
SCRIPT = """
import os, sys
import torch
from hpcx import runtime
from hpcx.runtime import checkpoint as ck
from hpcx.runtime.checkpoint_files import HashingWriter
from hpcx.runtime.seeds import seed_everything

mode, root = sys.argv[1], sys.argv[2]
with runtime.session(torch_backend=None) as ctx:
    cp = ck.Checkpointer(root, ctx)
    if mode == "roundtrip":
        seed_everything(11, ctx.rank)
        cp.save(1, {"w": torch.arange(5.0)}, per_rank={"rank": ctx.rank, "x": torch.full((3,), ctx.rank)})
        expected = torch.rand(2)  # what this rank draws next, from its own restored generator
        cp.save(2, {"w": torch.arange(6.0)}, per_rank={"rank": ctx.rank}, background=True)
        cp.wait()
        seed_everything(99, ctx.rank)
        step, state, mine = cp.load(restore=False)
        assert step == 2 and torch.equal(state["w"], torch.arange(6.0)) and mine == {"rank": ctx.rank}
        if ctx.rank == 0:  # no `latest`, and step 2 moved aside: load must find step 1 on its own
            os.unlink(os.path.join(root, "latest"))
            os.rename(os.path.join(root, "step-00000002"), os.path.join(root, "moved-aside"))
        ctx.comm.Barrier()
        step, state, mine = cp.load()
        assert step == 1 and torch.equal(state["w"], torch.arange(5.0))
        assert mine["rank"] == ctx.rank and torch.equal(mine["x"], torch.full((3,), ctx.rank))
        assert torch.equal(torch.rand(2), expected), "rank %d: RNG not restored" % ctx.rank
        print(f"rank {ctx.rank} of {ctx.size}: loaded its own shard and RNG", flush=True)
    elif mode == "save":
        cp.save(5, {"w": torch.ones(2)}, per_rank={"rank": ctx.rank})
        print(f"rank {ctx.rank}: saved", flush=True)
    elif mode == "load":
        loaded = cp.load()
        print(f"rank {ctx.rank}: loaded step {loaded.step if loaded else None}", flush=True)
    elif mode == "crash":
        cp.save(1, {"w": torch.ones(2)}, per_rank={"x": torch.zeros(100_000)})
        if ctx.rank == 1:
            real = HashingWriter._write

            def half_then_die(self, data):
                view = memoryview(data).cast("B")
                if view.nbytes > 100_000:  # the tensor: write half of it, then die like an OOM-killed rank
                    self._fh.write(view[: view.nbytes // 2])
                    self._fh.flush()
                    os.kill(os.getpid(), 9)
                return real(self, data)

            HashingWriter._write = half_then_die
        print(f"rank {ctx.rank}: saving step 2", flush=True)
        cp.save(2, {"w": torch.ones(2)}, per_rank={"x": torch.zeros(100_000)})
        print(f"rank {ctx.rank}: step 2 saved (unexpected)", flush=True)
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "ckpt_job.py"
    path.write_text(SCRIPT)
    return path


@pytest.mark.parametrize("n", [1, 2])
def test_every_rank_writes_and_loads_its_own_shard_and_rng(n, tmp_path, script):
    root = tmp_path / "ckpt"
    proc = mpirun(n, str(script), "roundtrip", str(root), timeout_s=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rank in range(n):
        assert f"rank {rank} of {n}: loaded its own shard and RNG" in proc.stdout
    step_dir = root / "step-00000001"
    expected = ["manifest.json", "replicated.pt"] + [f"rank-{r:05d}.pt" for r in range(n)]
    assert sorted(p.name for p in step_dir.iterdir()) == sorted(expected)
    manifest = json.loads((step_dir / "manifest.json").read_text())
    assert manifest["world_size"] == n and sorted(manifest["files"]) == sorted(expected[1:])
    assert "latest is missing; trying the newest step directory, step-00000001" in proc.stderr


def test_loading_with_a_different_number_of_ranks_is_a_clear_error(tmp_path, script):
    root = tmp_path / "ckpt"
    saved = mpirun(2, str(script), "save", str(root), timeout_s=120)
    assert saved.returncode == 0, saved.stderr
    proc = mpirun(1, str(script), "load", str(root), timeout_s=120)
    assert proc.returncode != 0
    assert "checkpoint step 5" in proc.stderr and "was written by 2 ranks, this run has 1" in proc.stderr
    assert "resharding a checkpoint is not supported" in proc.stderr


def test_a_rank_killed_during_a_save_leaves_the_previous_step_loadable(tmp_path, script):
    root = tmp_path / "ckpt"
    crashed = mpirun(2, str(script), "crash", str(root), timeout_s=120)
    assert crashed.returncode != 0, crashed.stdout
    assert "rank 1: saving step 2" in crashed.stdout and "saved (unexpected)" not in crashed.stdout
    assert (root / "latest").read_text() == "step-00000001\n"
    (leftover,) = root.glob("step-00000002.tmp-*")
    half = list(leftover.glob(".rank-00001.pt.tmp"))
    assert half and 0 < half[0].stat().st_size  # rank 1 died with half a file written

    resumed = mpirun(2, str(script), "load", str(root), timeout_s=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "rank 0: loaded step 1" in resumed.stdout and "rank 1: loaded step 1" in resumed.stdout
    assert f"step 2 is torn: its save did not finish ({leftover.name} left over" in resumed.stderr
    assert "loading step 1" in resumed.stderr
