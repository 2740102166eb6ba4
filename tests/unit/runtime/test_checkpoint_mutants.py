"""Checkpoints, what a user sees at the edges the other checkpoint tests leave open: each message and hint whole,
the log lines word for word, the directories left on disk, the threads a save starts, and two ranks (threads of
this process, over a stand-in for mpi4py's communicator) that report different failures. Each test kills
mutants of hpcx/runtime/checkpoint.py that survived a run of scripts/mutation (docs/testing.md)."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.timeout(60)  # a wait that never ends fails its test (the default is 300 s)

from hpcx.errors import RuntimeFailure  # noqa: E402
from hpcx.runtime import checkpoint as ck  # noqa: E402
from hpcx.runtime.checkpoint import Checkpointer  # noqa: E402
from hpcx.runtime.checkpoint_files import HashingWriter  # noqa: E402
from tests.unit.runtime.test_checkpoint import _fork_safe  # noqa: E402, F401 (autouse here too)

REPO = Path(__file__).resolve().parents[3]
WAIT_S = 30  # a thread these tests hold back is let go after this, so a failing test cannot hang


def _listing(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def _fail_writes_after(monkeypatch, n_bytes: int) -> None:
    """Every checkpoint file write fails once ``n_bytes`` of that file are written (a full disk)."""
    real = HashingWriter._write

    def write(self, data):
        if self.size_bytes + memoryview(data).nbytes > n_bytes:
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(HashingWriter, "_write", write)


# --- where and how many --------------------------------------------------------------------------------------


def test_by_default_the_three_newest_steps_are_kept(tmp_path):
    cp = Checkpointer(tmp_path)
    for step in range(1, 6):
        cp.save(step, {"step": step})
    cp.wait()
    assert _listing(tmp_path) == ["latest", "step-00000003", "step-00000004", "step-00000005"]


def test_a_root_whose_parents_do_not_exist_yet_is_made(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    assert Checkpointer(root).save(1, {"v": 1}) == root / "step-00000001"
    assert Checkpointer(root).load().state == {"v": 1}


def test_saving_a_step_again_leaves_no_copy_of_the_old_one(tmp_path):
    cp = Checkpointer(tmp_path)
    cp.save(1, {"v": "old"})
    cp.save(1, {"v": "new"})
    cp.wait()
    assert _listing(tmp_path) == ["latest", "step-00000001"]


def test_a_step_removed_by_someone_else_while_rotating_does_not_stop_the_rotation(tmp_path, monkeypatch):
    for step in (1, 2, 3):
        Checkpointer(tmp_path, keep=None).save(step, {"step": step})
    listed = ck.complete_steps
    # step 0 is listed, then gone before the rotation renames it (a user's rm, another job's cleanup)
    monkeypatch.setattr(ck, "complete_steps", lambda root: [0, *listed(root)])
    cp = Checkpointer(tmp_path, keep=1)
    cp.save(4, {"step": 4})
    cp.wait()
    assert _listing(tmp_path) == ["latest", "step-00000004"]


# --- the threads a save starts -------------------------------------------------------------------------------


def test_a_save_goes_on_while_the_rotated_step_is_still_being_deleted(tmp_path, monkeypatch):
    """A slow file system: the deleter of rotated steps is still at work when the next save starts. That save
    leaves the doomed directory to the deleter, and the deleter's thread is named for a stack dump."""
    release, deleters = threading.Event(), []
    real = ck.remove_all

    def slow_remove_all(paths):
        deleters.append(threading.current_thread().name)
        release.wait(WAIT_S)
        real(paths)

    monkeypatch.setattr(ck, "remove_all", slow_remove_all)
    cp = Checkpointer(tmp_path, keep=1)
    try:
        cp.save(1, {"v": 1}, background=True)
        cp.save(2, {"v": 2}, background=True)  # commits step 1
        cp.save(3, {"v": 3}, background=True)  # commits step 2, whose rotation dooms step 1
        assert [p.name.split(".")[0] for p in tmp_path.glob("*.del-*")] == ["step-00000001"]
    finally:
        release.set()
    cp.wait()
    assert deleters == ["hpcx-ckpt-rotate", "hpcx-ckpt-rotate"]
    assert _listing(tmp_path) == ["latest", "step-00000003"] and cp.load().state == {"v": 3}


def _hash_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name.startswith("hpcx-ckpt-hash")}


def test_a_background_save_is_written_by_a_thread_named_for_its_step_that_hashes_inline(
    tmp_path, monkeypatch
):
    """The writer's name is what a stack dump of a stuck job shows; it hashes in its own thread (a second busy
    thread would compete with training for the cores), while a synchronous save hashes big writes beside it."""
    writers = set()
    real = HashingWriter._write

    def write(self, data):
        writers.add(threading.current_thread().name)
        return real(self, data)

    monkeypatch.setattr(HashingWriter, "_write", write)
    big = {"w": torch.zeros(1 << 20)}  # 4 MiB: past PARALLEL_HASH_MIN_BYTES
    before = _hash_threads()  # another module's saves may have left theirs
    cp = Checkpointer(tmp_path)
    cp.save(7, big, background=True)
    cp.wait()
    assert writers == {"hpcx-ckpt-7"} and _hash_threads() == before
    cp.save(8, big)
    assert _hash_threads() - before


SAVE_AND_END = """
import sys, threading, torch
from hpcx.runtime.checkpoint import Checkpointer
def save():
    Checkpointer(sys.argv[1]).save(1, {"w": torch.ones(32 << 20)}, background=True)
if sys.argv[2] == "daemon":  # a training loop that runs in a daemon thread
    t = threading.Thread(target=save, daemon=True)
    t.start()
    t.join()
else:
    save()
"""


@pytest.mark.parametrize("caller", ["main", "daemon"])
def test_a_job_that_ends_during_a_background_save_exits_cleanly_with_its_files_written(tmp_path, caller):
    """The writer is never a daemon thread, whichever thread called save(): the interpreter waits for it at exit
    (a daemon writer is killed inside torch.save, and the process aborts), so the job's exit code is 0 and the
    files are complete on disk; the step is uncommitted, since the job never called wait() (which commits it)."""
    cp = Checkpointer(tmp_path / "waited")
    cp.save(1, {"w": torch.ones(3)}, background=True)
    assert cp.wait() == tmp_path / "waited" / "step-00000001"
    ended = subprocess.run(
        [sys.executable, "-c", SAVE_AND_END, str(tmp_path / "ended"), caller],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (ended.returncode, ended.stderr) == (0, "")
    (tmp,) = (tmp_path / "ended").glob("step-00000001.tmp-*")
    assert _listing(tmp) == ["rank-00000.pt", "replicated.pt"]
    assert torch.equal(torch.load(tmp / "replicated.pt")["w"], torch.ones(32 << 20))
    assert not (tmp_path / "ended" / "latest").exists()


class Quits:
    """User state whose pickling ends the thread that pickles it (SystemExit is not an Exception)."""

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        raise SystemExit(3)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the SystemExit
def test_a_background_writer_that_dies_without_an_outcome_is_reported_by_wait(tmp_path):
    cp = Checkpointer(tmp_path)
    cp.save(1, {"v": 1})
    cp.save(2, {"v": Quits()}, background=True)
    with pytest.raises(RuntimeFailure) as err:
        cp.wait()
    assert (
        err.value.message == "checkpoint step 2 was not saved (rank 0: the background writer did not finish)"
    )
    assert cp.load().state == {"v": 1}


# --- failed saves, said whole --------------------------------------------------------------------------------


def test_a_full_disk_names_the_first_file_written_and_the_leftover(tmp_path, monkeypatch):
    cp = Checkpointer(tmp_path)
    cp.save(1, {"v": 1})
    _fail_writes_after(monkeypatch, 2000)
    with pytest.raises(RuntimeFailure) as err:  # both files are too big: the replicated one is written first
        cp.save(2, {"w": torch.zeros(1000)}, per_rank={"w": torch.zeros(1000)})
    (leftover,) = tmp_path.glob("step-00000002.tmp-*")
    assert err.value.message == (
        "checkpoint step 2 was not saved "
        "(rank 0: writing replicated.pt failed: OSError: [Errno 28] No space left on device)"
    )
    assert (
        err.value.hint
        == f"the previous step in {tmp_path} is intact; {leftover.name} is removed by the next save"
    )


def test_a_commit_that_fails_is_said_logged_with_its_traceback_and_leaves_the_previous_step(
    tmp_path, monkeypatch, caplog
):
    cp = Checkpointer(tmp_path)
    cp.save(1, {"v": 1})

    def full(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "atomic_write", full)  # `latest` cannot be replaced
    with caplog.at_level(logging.DEBUG, logger="hpcx.checkpoint"), pytest.raises(RuntimeFailure) as err:
        cp.save(2, {"v": 2})
    assert err.value.message == (
        "checkpoint step 2 was written but rank 0 could not commit it: OSError: [Errno 28] No space left on device"
    )
    assert err.value.hint == f"the previous step in {tmp_path} is intact"
    (record,) = [r for r in caplog.records if r.getMessage() == "committing step 2 failed"]
    assert record.levelno == logging.DEBUG and record.exc_info[0] is OSError
    assert "Traceback" in caplog.text
    monkeypatch.undo()
    assert (tmp_path / "latest").read_text() == "step-00000001\n" and cp.load().state == {"v": 1}


# --- loads that cannot unpickle, said whole ------------------------------------------------------------------

LOAD_HINT = (
    "state of types other than tensors and plain Python values needs load(weights_only=False), for checkpoints "
    "you trust"
)


class Reduced:
    """Extra state that unpickles by calling ``fn`` (which raises)."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __reduce__(self):
        return (self.fn, ())


def refuse_silently():
    raise pickle.UnpicklingError()


def refuse_with_a_value_error():
    raise ValueError("bad extra")


def _load_error(cp: Checkpointer, **kw) -> RuntimeFailure:
    with pytest.raises(RuntimeFailure) as err:
        cp.load(**kw)
    assert err.value.hint == LOAD_HINT
    return err.value


def test_a_weights_only_refusal_quotes_the_first_line_of_torchs_reason(tmp_path):
    cp = Checkpointer(tmp_path)
    cp.save(3, {"extras": Reduced(refuse_with_a_value_error)})
    with pytest.raises(pickle.UnpicklingError) as torch_says:
        torch.load(tmp_path / "step-00000003" / "replicated.pt", weights_only=True)
    lines = str(torch_says.value).strip().splitlines()
    assert len(lines) > 1 and lines[0] != lines[1]
    assert _load_error(cp).message == (
        f"checkpoint step 3 in {tmp_path} passed its sha256 checks but cannot be loaded: "
        f"rank 0: torch.load(weights_only=True) refused it: {lines[0]}"
    )


def test_an_unpickling_error_without_words_is_named_by_its_type(tmp_path):
    cp = Checkpointer(tmp_path)
    cp.save(4, {"extras": Reduced(refuse_silently)})
    assert _load_error(cp, weights_only=False).message == (
        f"checkpoint step 4 in {tmp_path} passed its sha256 checks but cannot be loaded: "
        "rank 0: torch.load(weights_only=False) refused it: UnpicklingError"
    )


def test_another_error_while_unpickling_is_named_with_its_type_and_words(tmp_path):
    cp = Checkpointer(tmp_path)
    cp.save(5, {"extras": Reduced(refuse_with_a_value_error)})
    assert _load_error(cp, weights_only=False).message == (
        f"checkpoint step 5 in {tmp_path} passed its sha256 checks but cannot be loaded: "
        "rank 0: ValueError: bad extra"
    )


def test_map_location_places_the_replicated_and_the_per_rank_state(tmp_path):
    cp = Checkpointer(tmp_path)
    cp.save(1, {"w": torch.ones(3)}, per_rank={"v": torch.zeros(2)})
    loaded = cp.load(map_location="meta", restore=False)
    assert (loaded.state["w"].device.type, loaded.per_rank["v"].device.type) == ("meta", "meta")
    assert loaded.state["w"].shape == (3,) and loaded.per_rank["v"].shape == (2,)


# --- what is logged, word for word ---------------------------------------------------------------------------


def _three_steps(root: Path) -> Checkpointer:
    cp = Checkpointer(root, keep=None)
    for step in (1, 2, 3):
        cp.save(step, {"step": step})
    return cp


def _messages(cp: Checkpointer, caplog, level=logging.WARNING) -> list[str]:
    caplog.clear()
    with caplog.at_level(level, logger="hpcx.checkpoint"):
        cp.load()
    return caplog.messages


def test_a_torn_step_and_a_bad_latest_are_said_in_these_words(tmp_path, caplog):
    cp = _three_steps(tmp_path)
    (tmp_path / "step-00000003" / "manifest.json").unlink()
    (tmp_path / "latest").write_text("nonsense\n")
    assert _messages(cp, caplog) == [
        f"checkpoints in {tmp_path}: latest is damaged (it holds 'nonsense'); trying the newest step directory, "
        "step-00000003",
        "step 3 is torn: manifest.json missing; loading step 2",
    ]


def test_a_leftover_of_a_newer_save_is_said_in_these_words(tmp_path, caplog):
    cp = _three_steps(tmp_path)
    (tmp_path / "step-00000004.tmp-abc").mkdir()
    assert _messages(cp, caplog) == [
        "step 4 is torn: its save did not finish (step-00000004.tmp-abc left over, removed by the next save); "
        "loading step 3"
    ]


def test_a_leftover_of_the_loaded_step_is_not_called_torn(tmp_path, caplog):
    # step 3 was loaded, then saved again after the resume, and that save died
    cp = _three_steps(tmp_path)
    (tmp_path / "step-00000003.tmp-abc").mkdir()
    assert _messages(cp, caplog) == []
    assert cp.load().step == 3


def test_leftovers_are_removed_by_the_next_save_saying_so_and_a_link_is_not_followed(tmp_path, caplog):
    """A leftover that is a symbolic link (to another disk, say) is not followed: what it points at stays, and
    the save goes on."""
    cp = _three_steps(tmp_path / "ckpt")
    root = tmp_path / "ckpt"
    (root / "step-00000007.tmp-abc" / "sub").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keep").mkdir(parents=True)
    (root / "step-00000008.tmp-lnk").symlink_to(elsewhere, target_is_directory=True)
    with caplog.at_level(logging.INFO, logger="hpcx.checkpoint"):
        cp.save(9, {"step": 9})
    said = "left over by a save or a rotation that did not finish"
    assert f"removing {root / 'step-00000007.tmp-abc'}, {said}" in caplog.messages
    assert f"removing {root / 'step-00000008.tmp-lnk'}, {said}" in caplog.messages
    assert not (root / "step-00000007.tmp-abc").exists() and (elsewhere / "keep").is_dir()
    assert cp.load().state == {"step": 9}


# --- two ranks -------------------------------------------------------------------------------------------------


class ThreadComm:
    """mpi4py's object collectives (bcast, allgather) for ranks that are threads of this process."""

    def __init__(self, rank: int, shared: SimpleNamespace) -> None:
        self.rank, self.shared = rank, shared

    def Get_rank(self) -> int:
        return self.rank

    def Get_size(self) -> int:
        return len(self.shared.slots)

    def _exchange(self, obj, keep: bool) -> list:
        if keep:
            self.shared.slots[self.rank] = obj
        self.shared.barrier.wait()
        out = list(self.shared.slots)
        self.shared.barrier.wait()
        return out

    def allgather(self, obj) -> list:
        return self._exchange(obj, True)

    def bcast(self, obj, root: int = 0):
        return self._exchange(obj, self.rank == root)[root]

    def Barrier(self) -> None:
        self.shared.barrier.wait()


def _on_two_ranks(fn) -> list:
    """``fn(checkpointer_maker)`` on ranks 0 and 1 at once; each rank's result or the exception it raised."""
    shared = SimpleNamespace(slots=[None, None], barrier=threading.Barrier(2, timeout=WAIT_S))
    out: list = [None, None]

    def rank(r: int) -> None:
        ctx = SimpleNamespace(comm=ThreadComm(r, shared), rank=r, size=2)
        try:
            out[r] = fn(lambda root, **kw: Checkpointer(root, ctx, **kw))
        except Exception as exc:  # the test looks at it
            out[r] = exc

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(2 * WAIT_S)
    assert not any(t.is_alive() for t in threads)
    return out


def test_two_ranks_that_cannot_write_are_both_named(tmp_path, monkeypatch):
    _fail_writes_after(monkeypatch, 10)
    errors = _on_two_ranks(lambda make: make(tmp_path).save(1, {"v": 1}, per_rank={"r": 1}))
    expected = (
        "checkpoint step 1 was not saved (rank 0: writing replicated.pt failed: OSError: [Errno 28] No space left "
        "on device; rank 1: writing rank-00001.pt failed: OSError: [Errno 28] No space left on device)"
    )
    assert [type(e) for e in errors] == [RuntimeFailure, RuntimeFailure]
    assert [e.message for e in errors] == [expected, expected]


def test_a_step_two_ranks_find_torn_for_different_reasons_names_both(tmp_path, caplog):
    def save_two(make):
        cp = make(tmp_path, keep=None)
        cp.save(1, {"v": 1})
        cp.save(2, {"v": 2})

    assert _on_two_ranks(save_two) == [None, None]
    for name in ("rank-00000.pt", "rank-00001.pt"):  # same sizes, other bytes: each rank finds its own
        path = tmp_path / "step-00000002" / name
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="hpcx.checkpoint"):
        loaded = _on_two_ranks(lambda make: make(tmp_path).load())
    assert [(x.step, x.state) for x in loaded] == [(1, {"v": 1}), (1, {"v": 1})]
    assert caplog.messages == [
        "step 2 is torn: rank-00000.pt does not match its sha256 in the manifest; "
        "rank-00001.pt does not match its sha256 in the manifest; loading step 1"
    ]
