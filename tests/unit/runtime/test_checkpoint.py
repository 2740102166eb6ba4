"""Checkpoints in one process: bitwise resume, rotation, torn steps and fallback, background saves, crashes."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytestmark = pytest.mark.timeout(60)  # a wait that never ends fails its test (the default is 300 s)

from hpcx.errors import RuntimeFailure  # noqa: E402
from hpcx.runtime import checkpoint as ck  # noqa: E402
from hpcx.runtime import checkpoint_files  # noqa: E402
from hpcx.runtime.checkpoint import Checkpointer  # noqa: E402
from hpcx.runtime.checkpoint_files import HashingWriter  # noqa: E402
from hpcx.runtime.seeds import seed_everything  # noqa: E402


@pytest.fixture(autouse=True)
def _fork_safe(monkeypatch):
    """What these tests start survives a fork. scripts/mutation (mutmut) runs each mutant in a process forked from
    one that has already run them, and neither torch's OpenMP workers nor the hash thread of
    checkpoint_files._hasher() exist in the child: its first parallel op (a torch.arange of 20 MiB) or its first
    large write waits for them forever. So torch runs every op inline on one thread (the same values), and each
    test starts its own hash thread and ends it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(checkpoint_files, "_hash_pool", None)
    yield
    if checkpoint_files._hash_pool is not None:
        checkpoint_files._hash_pool.shutdown(wait=True)
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- a small training run


class Trainer:
    """Model + Adam + LR scheduler + GradScaler, data drawn from torch, numpy and python RNGs, a sampler position."""

    def __init__(self, init_seed: int) -> None:
        torch.manual_seed(init_seed)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1)
        )
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-2)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=2, gamma=0.5)
        self.scaler = torch.amp.GradScaler("cpu", growth_interval=3)
        self.epoch, self.position = 0, 0

    def step(self) -> None:
        x = torch.randn(4, 8) + float(np.random.rand()) + random.random()
        loss = self.model(x).pow(2).mean()
        self.opt.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.position += 4
        if self.position >= 12:
            self.epoch, self.position = self.epoch + 1, 0

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": {"epoch": self.epoch, "position": self.position},
            "extras": {"note": "hello", "losses": [1.5, 2.5]},
        }

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.position = state["sampler"]["epoch"], state["sampler"]["position"]

    def params(self) -> list:
        return [p.detach().clone() for p in self.model.parameters()]


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def _continue_after_resume(root: Path, *, restore: bool) -> tuple[list, list]:
    seed_everything(7, 0)
    run = Trainer(init_seed=1)
    for _ in range(5):
        run.step()
    Checkpointer(root).save(5, run.state(), per_rank={"worker_cursor": 17})
    for _ in range(5):
        run.step()
    uninterrupted = run.params()

    seed_everything(999, 0)  # a new process would start from other RNG states
    resumed = Trainer(init_seed=2)
    step, state, per_rank = Checkpointer(root).load(restore=restore)
    assert (step, per_rank) == (5, {"worker_cursor": 17})
    resumed.load(state)
    assert state["extras"] == {"note": "hello", "losses": [1.5, 2.5]}
    for _ in range(5):
        resumed.step()
    assert (resumed.epoch, resumed.position) == (run.epoch, run.position)
    return uninterrupted, resumed.params()


def test_resume_continues_bit_identically(tmp_path):
    uninterrupted, resumed = _continue_after_resume(tmp_path, restore=True)
    assert _same(uninterrupted, resumed)


def test_without_the_rng_states_the_continuation_differs(tmp_path):
    # The test above can fail: dropout and the data draw from the RNGs the checkpoint restores.
    uninterrupted, resumed = _continue_after_resume(tmp_path, restore=False)
    assert not _same(uninterrupted, resumed)


def test_load_restores_python_numpy_and_torch_rngs(tmp_path):
    cp = Checkpointer(tmp_path)
    seed_everything(3, 0)
    cp.save(1, {})
    expected = (random.random(), float(np.random.rand()), torch.rand(3))
    seed_everything(4, 0)
    cp.load()
    got = (random.random(), float(np.random.rand()), torch.rand(3))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


# ---------------------------------------------------------------- layout, rotation


def test_layout_manifest_and_latest(tmp_path):
    cp = Checkpointer(tmp_path / "ckpt")
    path = cp.save(100, {"w": torch.ones(3)})
    assert path == tmp_path / "ckpt" / "step-00000100"
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "rank-00000.pt", "replicated.pt"]
    assert (tmp_path / "ckpt" / "latest").read_text() == "step-00000100\n"
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["step"] == 100 and manifest["world_size"] == 1 and manifest["hpcx_version"]
    import hashlib

    for name in ("replicated.pt", "rank-00000.pt"):
        data = (path / name).read_bytes()
        assert manifest["files"][name] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_bytes": len(data),
        }
    assert not [p for p in (tmp_path / "ckpt").iterdir() if ".tmp" in p.name]


def _steps(root: Path) -> list[str]:
    """The committed step directories (rotated ones are renamed at once, then deleted in the background)."""
    return sorted(p.name for p in root.iterdir() if ck.STEP_RE.match(p.name))


def test_rotation_keeps_the_newest_n(tmp_path):
    cp = Checkpointer(tmp_path, keep=2)
    for step in range(1, 6):
        cp.save(step * 10, {"step": step})
    assert _steps(tmp_path) == ["step-00000040", "step-00000050"]
    assert cp.load().state == {"step": 5}


def test_keep_none_keeps_every_step_and_bad_keep_is_refused(tmp_path):
    cp = Checkpointer(tmp_path, keep=None)
    for step in range(4):
        cp.save(step, {})
    assert len(_steps(tmp_path)) == 4
    with pytest.raises(ck.UsageError, match="keep must be"):
        Checkpointer(tmp_path, keep=0)


def test_saving_a_step_again_replaces_it(tmp_path):
    cp = Checkpointer(tmp_path)
    cp.save(1, {"v": "old"})
    cp.save(1, {"v": "new"})
    assert _steps(tmp_path) == ["step-00000001"] and cp.load().state == {"v": "new"}


def test_nothing_saved_loads_none(tmp_path):
    assert Checkpointer(tmp_path / "absent").load() is None
    assert Checkpointer(tmp_path).load() is None


# ---------------------------------------------------------------- torn steps


def _three_steps(root: Path) -> Checkpointer:
    cp = Checkpointer(root, keep=5)
    for step in (100, 200, 300):
        cp.save(step, {"step": step, "w": torch.full((1000,), float(step))})
    return cp


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda d: (d / "rank-00000.pt").unlink(), "rank-00000.pt missing"),
        (lambda d: _flip_a_byte(d / "replicated.pt"), "replicated.pt does not match its sha256"),
        (lambda d: (d / "manifest.json").unlink(), "manifest.json missing"),
        (lambda d: (d / "manifest.json").write_text("{"), "manifest.json unreadable"),
        (
            lambda d: (d / "replicated.pt").write_bytes((d / "replicated.pt").read_bytes()[:100]),
            "replicated.pt is 100 bytes, the manifest says",
        ),
    ],
)
def test_a_torn_step_falls_back_to_the_previous_one_and_says_so(tmp_path, caplog, damage, why):
    cp = _three_steps(tmp_path)
    damage(tmp_path / "step-00000300")
    with caplog.at_level(logging.WARNING, logger="hpcx.checkpoint"):
        loaded = cp.load()
    assert loaded.step == 200 and loaded.state["step"] == 200
    assert torch.equal(loaded.state["w"], torch.full((1000,), 200.0))
    assert f"step 300 is torn: {why}" in caplog.text and "; loading step 200" in caplog.text


def test_two_torn_steps_fall_back_twice(tmp_path, caplog):
    cp = _three_steps(tmp_path)
    (tmp_path / "step-00000300" / "replicated.pt").unlink()
    (tmp_path / "step-00000200" / "manifest.json").unlink()
    with caplog.at_level(logging.WARNING, logger="hpcx.checkpoint"):
        assert cp.load().step == 100
    assert "step 300 is torn: replicated.pt missing; loading step 100" in caplog.text
    assert "step 200 is torn: manifest.json missing; loading step 100" in caplog.text


def test_when_every_step_is_torn_load_refuses_to_start_afresh(tmp_path):
    cp = Checkpointer(tmp_path)
    cp.save(1, {})
    (tmp_path / "step-00000001" / "replicated.pt").unlink()
    with pytest.raises(RuntimeFailure, match="no good checkpoint .* step 1: replicated.pt missing"):
        cp.load()


@pytest.mark.parametrize("latest", [None, "garbage\n", "step-00000999\n", b"\xff\xfe"])
def test_damaged_latest_falls_back_to_the_newest_complete_step(tmp_path, caplog, latest):
    cp = _three_steps(tmp_path)
    (tmp_path / "step-00000300" / "manifest.json").unlink()  # the newest directory is torn too
    if latest is None:
        (tmp_path / "latest").unlink()
    elif isinstance(latest, bytes):
        (tmp_path / "latest").write_bytes(latest)
    else:
        (tmp_path / "latest").write_text(latest)
    with caplog.at_level(logging.WARNING, logger="hpcx.checkpoint"):
        assert cp.load().step == 200
    assert "latest is" in caplog.text or "latest names step-00000999" in caplog.text
    assert "step 300 is torn: manifest.json missing; loading step 200" in caplog.text


def test_a_step_newer_than_latest_is_ignored(tmp_path, caplog):
    # The process died after renaming step 300 into place but before `latest` named it.
    cp = _three_steps(tmp_path)
    (tmp_path / "latest").write_text("step-00000200\n")
    with caplog.at_level(logging.WARNING, logger="hpcx.checkpoint"):
        assert cp.load().step == 200
    assert "ignoring step 300: newer than latest" in caplog.text


def test_a_leftover_tmp_directory_is_reported_ignored_and_removed_by_the_next_save(tmp_path, caplog):
    cp = _three_steps(tmp_path)
    leftover = tmp_path / "step-00000400.tmp-abc123"
    leftover.mkdir()
    (leftover / "rank-00000.pt").write_bytes(b"half a file")
    with caplog.at_level(logging.WARNING, logger="hpcx.checkpoint"):
        assert cp.load().step == 300
    assert "step 400 is torn: its save did not finish (step-00000400.tmp-abc123 left over" in caplog.text
    assert "loading step 300" in caplog.text
    cp.save(400, {})
    assert not leftover.exists() and cp.load().step == 400


def test_world_size_mismatch_is_a_clear_error(tmp_path):
    cp = _three_steps(tmp_path)
    manifest = tmp_path / "step-00000300" / "manifest.json"
    doc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**doc, "world_size": 4}))
    with pytest.raises(
        RuntimeFailure, match="written by 4 ranks, this run has 1.*resharding .* not supported"
    ):
        cp.load()


# ---------------------------------------------------------------- crashes during a save


class DiskFull(OSError):
    pass


def _fail_writes_after(monkeypatch, n_bytes: int) -> None:
    """Make every checkpoint file write fail once ``n_bytes`` have been written (a full disk, an I/O error)."""
    real = HashingWriter._write

    def write(self, data):
        if self.size_bytes + memoryview(data).nbytes > n_bytes:
            raise DiskFull(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(HashingWriter, "_write", write)


def test_a_crash_in_the_middle_of_a_save_leaves_the_previous_step_loadable(tmp_path, monkeypatch, caplog):
    cp = _three_steps(tmp_path)
    _fail_writes_after(monkeypatch, 2000)
    with pytest.raises(RuntimeFailure, match="step 400 was not saved .*No space left on device"):
        cp.save(400, {"step": 400, "w": torch.zeros(1000)})
    monkeypatch.undo()
    assert (tmp_path / "latest").read_text() == "step-00000300\n"
    with caplog.at_level(logging.WARNING, logger="hpcx.checkpoint"):
        assert Checkpointer(tmp_path).load().step == 300
    assert "step 400 is torn: its save did not finish" in caplog.text


# ---------------------------------------------------------------- background saves


def _files(step_dir: Path) -> dict[str, bytes]:
    return {name: (step_dir / name).read_bytes() for name in ("replicated.pt", "rank-00000.pt")}


def test_a_background_save_writes_the_same_bytes_as_a_synchronous_one(tmp_path):
    run = Trainer(init_seed=1)
    for _ in range(3):
        run.step()
    seed_everything(5, 0)
    sync_dir = Checkpointer(tmp_path / "sync").save(3, run.state(), per_rank={"k": 1})
    seed_everything(5, 0)
    cp = Checkpointer(tmp_path / "bg")
    bg_dir = cp.save(3, run.state(), per_rank={"k": 1}, background=True)
    for p in run.model.parameters():  # training goes on while the writer thread works on its copy
        p.data.add_(1.0)
    assert cp.wait() == bg_dir
    assert _files(bg_dir) == _files(sync_dir)
    sync_manifest = json.loads((sync_dir / "manifest.json").read_text())
    bg_manifest = json.loads((bg_dir / "manifest.json").read_text())
    assert bg_manifest["files"] == sync_manifest["files"] and bg_manifest["background"] is True


def test_a_background_save_keeps_shared_storages_shared(tmp_path):
    base = torch.arange(10.0)
    state = {"whole": base, "view": base[2:5], "tied": base}
    cp = Checkpointer(tmp_path)
    cp.save(1, state, background=True)
    cp.wait()
    loaded = cp.load().state
    assert loaded["view"].untyped_storage().data_ptr() == loaded["whole"].untyped_storage().data_ptr()
    assert torch.equal(loaded["view"], torch.tensor([2.0, 3.0, 4.0]))


def test_background_saves_reuse_their_staging_buffers_without_mixing_steps(tmp_path):
    w = torch.ones(1000)
    cp = Checkpointer(tmp_path, keep=None)
    cp.save(1, {"w": w}, background=True)
    w.mul_(2)
    cp.save(2, {"w": w}, background=True)  # the same buffer again, once step 1 is written
    cp.save(3, {"w": torch.arange(7.0), "extra": torch.zeros(3)}, background=True)  # other sizes
    cp.wait()
    for step, expected in [(1, torch.ones(1000)), (2, torch.full((1000,), 2.0)), (3, torch.arange(7.0))]:
        (tmp_path / "latest").write_text(f"step-{step:08d}\n")
        assert torch.equal(cp.load().state["w"], expected)


def test_saving_leaves_torchs_crc32_switch_as_it_was(tmp_path):
    if not hasattr(torch.serialization, "set_crc32_options"):
        pytest.skip("this torch always computes the CRC")
    Checkpointer(tmp_path).save(1, {"w": torch.ones(3)})
    assert torch.serialization.get_crc32_options() is True


def test_a_background_save_is_committed_by_the_next_save(tmp_path):
    cp = Checkpointer(tmp_path)
    cp.save(1, {"v": 1}, background=True)
    cp.save(2, {"v": 2}, background=True)  # waits for step 1 and commits it
    assert (tmp_path / "latest").read_text() == "step-00000001\n"
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] != []  # step 2 is still in flight
    cp.wait()
    assert (tmp_path / "latest").read_text() == "step-00000002\n" and cp.load().state == {"v": 2}


def test_an_uncommitted_background_save_is_not_loaded(tmp_path, caplog):
    cp = Checkpointer(tmp_path)
    cp.save(1, {"v": 1})
    cp.save(2, {"v": 2}, background=True)
    cp._pending.thread.join()  # the files are written but the job died before save()/wait() committed them
    cp._pending = None
    with caplog.at_level(logging.WARNING, logger="hpcx.checkpoint"):
        assert Checkpointer(tmp_path).load().state == {"v": 1}
    assert "step 2 is torn: its save did not finish" in caplog.text


def test_a_failed_background_save_is_reported_by_wait(tmp_path, monkeypatch):
    cp = Checkpointer(tmp_path)
    cp.save(1, {"v": 1})
    _fail_writes_after(monkeypatch, 10)
    cp.save(2, {"v": torch.zeros(100)}, background=True)
    with pytest.raises(RuntimeFailure, match="step 2 was not saved"):
        cp.wait()
    monkeypatch.undo()
    assert cp.load().state == {"v": 1}


def test_the_context_manager_commits_a_pending_background_save(tmp_path):
    with Checkpointer(tmp_path) as cp:
        cp.save(1, {"v": 1}, background=True)
    assert Checkpointer(tmp_path).load().state == {"v": 1}


# ---------------------------------------------------------------- torch.load(weights_only=...)


class Custom:
    def __init__(self, x: int) -> None:
        self.x = x


def test_weights_only_loading_refuses_custom_objects_with_a_hint(tmp_path):
    cp = Checkpointer(tmp_path)
    cp.save(1, {"extras": Custom(3)})
    with pytest.raises(RuntimeFailure, match="cannot be loaded.*weights_only=False"):
        cp.load()
    assert cp.load(weights_only=False).state["extras"].x == 3


def test_bad_arguments_are_usage_errors(tmp_path):
    with pytest.raises(ck.UsageError, match="step must be"):
        Checkpointer(tmp_path).save(-1, {})
    with pytest.raises(ck.UsageError, match="needs the MPI communicator"):
        Checkpointer(tmp_path, type("Ctx", (), {"comm": None, "rank": 0, "size": 2})())


def test_importing_the_checkpoint_module_imports_neither_torch_nor_mpi():
    code = "import sys, hpcx.runtime.checkpoint; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & {"torch", "numpy", "mpi4py", "click"}
    assert not {m for m in loaded if m.startswith("hpcx.cli")}
