"""The checkpoint manifest and its fallbacks, rule by rule, in one process: what is refused and how it is said,
which step a load takes and what it logs, rotation at its edges, and saves too big for one write."""

from __future__ import annotations

import collections
import hashlib
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.timeout(60)  # a wait that never ends fails its test (the default is 300 s)

from hpcx.errors import RuntimeFailure, UsageError  # noqa: E402
from hpcx.runtime import checkpoint as ck  # noqa: E402
from hpcx.runtime.checkpoint import Checkpointer  # noqa: E402
from tests.unit.runtime.test_checkpoint import _fork_safe  # noqa: E402, F401 (autouse here too)


def _steps(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if ck.STEP_RE.match(p.name))


def _manifest(step_dir: Path) -> dict:
    return json.loads((step_dir / "manifest.json").read_text())


def _rewrite_manifest(step_dir: Path, **changes) -> None:
    (step_dir / "manifest.json").write_text(json.dumps({**_manifest(step_dir), **changes}))


# --- arguments ---------------------------------------------------------------------------------------------


def test_many_ranks_without_a_communicator_are_refused(tmp_path):
    with pytest.raises(UsageError) as err:
        Checkpointer(tmp_path, SimpleNamespace(comm=None, rank=0, size=4))
    assert err.value.message == "a Checkpointer for 4 ranks needs the MPI communicator, but ctx.comm is None"
    assert err.value.hint == "pass the Context that hpcx.runtime.init() returned"
    one = Checkpointer(tmp_path, SimpleNamespace(comm=None, rank=0, size=1))  # one rank needs none
    assert (one.rank, one.world_size) == (0, 1)


@pytest.mark.parametrize("keep", [0, -1, True, 1.5, "3"])
def test_keep_must_be_a_positive_count(tmp_path, keep):
    with pytest.raises(UsageError) as err:
        Checkpointer(tmp_path, keep=keep)
    assert err.value.message == f"keep must be a positive number of steps or None, not {keep!r}"


@pytest.mark.parametrize("step", [-1, True, 1.0, "5"])
def test_a_step_must_be_a_non_negative_integer(tmp_path, step):
    with pytest.raises(UsageError) as err:
        Checkpointer(tmp_path).save(step, {})
    assert err.value.message == f"step must be a non-negative integer, not {step!r}"
    assert not tmp_path.exists() or _steps(tmp_path) == []


def test_step_zero_is_a_step(tmp_path):
    cp = Checkpointer(tmp_path)
    assert cp.save(0, {"a": 1}) == tmp_path / "step-00000000"
    assert cp.load() == (0, {"a": 1}, None)


# --- rotation ----------------------------------------------------------------------------------------------


def test_keep_one_leaves_only_the_newest_step_once_its_deletion_is_waited_for(tmp_path):
    cp = Checkpointer(tmp_path, keep=1)
    for step in (1, 2, 3):
        cp.save(step, {"step": step})
    cp.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-00000003"]
    assert cp.load().state == {"step": 3}


def test_rotation_keeps_the_step_just_saved_even_when_it_is_not_the_highest(tmp_path):
    cp = Checkpointer(tmp_path, keep=2)
    for step in (10, 20, 30):
        cp.save(step, {"step": step})
    cp.save(5, {"step": 5})  # a resume from an older step saves below the others
    cp.wait()
    assert _steps(tmp_path) == ["step-00000005", "step-00000020", "step-00000030"]
    assert (tmp_path / "latest").read_text() == "step-00000005\n"


def test_a_file_named_like_a_step_is_not_a_step(tmp_path):
    cp = Checkpointer(tmp_path, keep=1)
    cp.save(1, {"step": 1})
    (tmp_path / "step-00000009").write_text("not a directory")
    (tmp_path / "latest").unlink()
    assert cp.load().step == 1
    cp.save(2, {"step": 2})
    cp.wait()
    assert (tmp_path / "step-00000009").is_file() and _steps(tmp_path) == ["step-00000002", "step-00000009"]


def test_a_root_that_cannot_be_made_is_said(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RuntimeFailure) as err:
        Checkpointer(tmp_path / "file" / "ckpt").save(1, {})
    assert err.value.message.startswith(
        f"cannot create a checkpoint directory in {tmp_path / 'file' / 'ckpt'}: "
    )
    assert err.value.hint == "check that the path exists on every node, is writable and has space"


# --- the manifest, checked ---------------------------------------------------------------------------------


def _two_steps(root: Path) -> Checkpointer:
    cp = Checkpointer(root, keep=None)
    cp.save(1, {"w": torch.ones(4)}, per_rank={"cursor": 1})
    cp.save(2, {"w": torch.full((4,), 2.0)}, per_rank={"cursor": 2})
    return cp


def _load_logged(cp: Checkpointer, caplog) -> tuple[int, str]:
    with caplog.at_level(logging.INFO, logger="hpcx.checkpoint"):
        loaded = cp.load()
    return loaded.step, caplog.text


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"format": "other"}, "manifest.json is not an hpcx checkpoint manifest"),
        ({"files": ["replicated.pt"]}, "manifest.json is not an hpcx checkpoint manifest"),
        (None, "manifest.json is not an hpcx checkpoint manifest"),  # a JSON list, not an object
    ],
)
def test_a_manifest_that_is_not_hpcxs_makes_the_step_torn(tmp_path, caplog, changes, why):
    cp = _two_steps(tmp_path)
    if changes is None:
        (tmp_path / "step-00000002" / "manifest.json").write_text("[1, 2]")
    else:
        _rewrite_manifest(tmp_path / "step-00000002", **changes)
    step, log = _load_logged(cp, caplog)
    assert step == 1 and f"step 2 is torn: {why}; loading step 1" in log


def test_a_file_the_manifest_does_not_list_makes_the_step_torn(tmp_path, caplog):
    cp = _two_steps(tmp_path)
    files = _manifest(tmp_path / "step-00000002")["files"]
    del files["rank-00000.pt"]
    _rewrite_manifest(tmp_path / "step-00000002", files=files)
    step, log = _load_logged(cp, caplog)
    assert step == 1 and "step 2 is torn: rank-00000.pt is not in the manifest; loading step 1" in log


def test_another_ranks_missing_or_cut_file_is_named_by_rank_0(tmp_path, caplog):
    cp = _two_steps(tmp_path)
    files = _manifest(tmp_path / "step-00000002")["files"]
    files["rank-00001.pt"] = {"sha256": "0" * 64, "size_bytes": 10}
    _rewrite_manifest(tmp_path / "step-00000002", files=files)
    step, log = _load_logged(cp, caplog)
    assert step == 1 and "step 2 is torn: rank-00001.pt missing; loading step 1" in log
    (tmp_path / "step-00000002" / "rank-00001.pt").write_bytes(b"abc")
    caplog.clear()
    step, log = _load_logged(cp, caplog)
    assert "step 2 is torn: rank-00001.pt is 3 bytes, the manifest says 10; loading step 1" in log
    (tmp_path / "step-00000002" / "rank-00001.pt").write_bytes(b"0123456789")  # its size right: not read
    caplog.clear()
    assert _load_logged(cp, caplog)[0] == 2


def test_a_file_of_the_right_size_but_other_bytes_is_torn(tmp_path, caplog):
    cp = _two_steps(tmp_path)
    path = tmp_path / "step-00000002" / "rank-00000.pt"
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    step, log = _load_logged(cp, caplog)
    assert step == 1 and "step 2 is torn: rank-00000.pt does not match its sha256 in the manifest" in log


def test_an_unreadable_file_is_torn(tmp_path, caplog):
    cp = _two_steps(tmp_path)
    path = tmp_path / "step-00000002" / "replicated.pt"
    path.unlink()
    path.mkdir()  # reading it fails with an OSError other than "missing"
    step, log = _load_logged(cp, caplog)
    assert step == 1 and "step 2 is torn: replicated.pt unreadable (" in log


def test_every_step_torn_names_each_with_why_and_the_fix(tmp_path):
    cp = _two_steps(tmp_path)
    (tmp_path / "step-00000002" / "replicated.pt").unlink()
    _rewrite_manifest(tmp_path / "step-00000001", format="x")
    with pytest.raises(RuntimeFailure) as err:
        cp.load()
    assert err.value.message == (
        f"no good checkpoint in {tmp_path}: step 2: replicated.pt missing; step 1: "
        "manifest.json is not an hpcx checkpoint manifest"
    )
    assert err.value.hint == f"move {tmp_path} aside to start afresh"


def test_a_world_size_mismatch_names_both_sizes_and_the_fix(tmp_path):
    cp = _two_steps(tmp_path)
    _rewrite_manifest(tmp_path / "step-00000002", world_size=8)
    with pytest.raises(RuntimeFailure) as err:
        cp.load()
    assert err.value.message == f"checkpoint step 2 in {tmp_path} was written by 8 ranks, this run has 1"
    assert err.value.hint == "resume with 8 ranks: resharding a checkpoint is not supported"


# --- which step, and what is said --------------------------------------------------------------------------


def test_a_good_load_says_which_step_and_nothing_else(tmp_path, caplog):
    cp = _two_steps(tmp_path)
    step, log = _load_logged(cp, caplog)
    assert step == 2 and log.strip().splitlines()[-1].endswith(f"loaded checkpoint step 2 from {tmp_path}")
    assert "WARNING" not in log


@pytest.mark.parametrize(
    ("latest", "note"),
    [
        (None, "latest is missing; trying the newest step directory, step-00000002"),
        ("nonsense\n", "latest is damaged (it holds 'nonsense'); trying the newest step directory"),
        ("step-00000007\n", "latest names step-00000007, which does not exist; trying the newest step"),
    ],
)
def test_a_bad_latest_is_said_and_the_newest_step_loaded(tmp_path, caplog, latest, note):
    cp = _two_steps(tmp_path)
    if latest is None:
        (tmp_path / "latest").unlink()
    else:
        (tmp_path / "latest").write_text(latest)
    step, log = _load_logged(cp, caplog)
    assert step == 2 and f"checkpoints in {tmp_path}: {note}" in log


def test_steps_newer_than_latest_are_listed_and_skipped(tmp_path, caplog):
    cp = Checkpointer(tmp_path, keep=None)
    for step in (1, 2, 3):
        cp.save(step, {"step": step})
    (tmp_path / "latest").write_text("step-00000001\n")
    step, log = _load_logged(cp, caplog)
    assert step == 1
    assert "ignoring step 3, 2: newer than latest (step 1), so its save did not finish" in log


def test_a_leftover_older_than_the_loaded_step_is_not_called_torn(tmp_path, caplog):
    cp = _two_steps(tmp_path)
    (tmp_path / "step-00000001.tmp-old").mkdir()
    (tmp_path / "step-00000003.del-abcd").mkdir()  # a rotation's leftover: not a save that died
    step, log = _load_logged(cp, caplog)
    assert step == 2 and "is torn" not in log


def test_a_leftover_with_nothing_to_load_says_so(tmp_path, caplog):
    (tmp_path / "step-00000004.tmp-x").mkdir()
    with caplog.at_level(logging.WARNING, logger="hpcx.checkpoint"):
        assert Checkpointer(tmp_path).load() is None
    assert (
        "step 4 is torn: its save did not finish (step-00000004.tmp-x left over, removed by the next "
        in caplog.text
    )
    assert "save); no earlier step to load" in caplog.text


def test_restore_false_leaves_the_rng_alone(tmp_path):
    cp = Checkpointer(tmp_path)
    torch.manual_seed(1)
    cp.save(1, {})
    torch.manual_seed(2)
    before = torch.get_rng_state()
    cp.load(restore=False)
    assert torch.equal(torch.get_rng_state(), before)
    cp.load()
    torch.manual_seed(1)
    assert not torch.equal(torch.get_rng_state(), before)


def test_the_manifest_records_what_wrote_it(tmp_path):
    import hpcx

    cp = Checkpointer(tmp_path)
    cp.save(3, {})
    doc = _manifest(tmp_path / "step-00000003")
    assert (doc["format"], doc["format_version"], doc["hpcx_version"]) == (
        "hpcx-checkpoint",
        1,
        hpcx.__version__,
    )
    assert doc["torch_version"] == str(torch.__version__) and doc["background"] is False
    cp.save(4, {}, background=True)
    cp.wait()
    assert _manifest(tmp_path / "step-00000004")["background"] is True


# --- big files and background copies ----------------------------------------------------------------------

Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize("background", [False, True])
def test_a_state_larger_than_a_write_chunk_is_saved_and_verified_whole(tmp_path, background):
    big = torch.arange(5 * (1 << 20), dtype=torch.float32)  # 20 MiB: past WRITEBACK_CHUNK_BYTES
    cp = Checkpointer(tmp_path)
    cp.save(1, {"big": big}, background=background)
    cp.wait()
    path = tmp_path / "step-00000001" / "replicated.pt"
    entry = _manifest(tmp_path / "step-00000001")["files"]["replicated.pt"]
    data = path.read_bytes()
    assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}
    assert len(data) > ck.WRITEBACK_CHUNK_BYTES
    assert torch.equal(cp.load().state["big"], big)


def test_a_background_save_keeps_containers_and_their_types(tmp_path):
    ordered = collections.OrderedDict(a=torch.ones(2))
    ordered._metadata = {"a": {"version": 1}}  # what state_dict() carries
    sparse = torch.eye(3).to_sparse()
    state = {
        "ordered": ordered,
        "point": Point(torch.zeros(1), 2),
        "pair": (1, [torch.ones(1), "s"]),
        "sparse": sparse,
        "view": torch.arange(10.0)[2:6],
        "other": {"k": {1, 2}},
    }
    cp = Checkpointer(tmp_path)
    cp.save(1, state, background=True)
    state["view"].add_(100)  # the training loop goes on changing its tensors: the saved copy must not
    cp.wait()
    got = cp.load(weights_only=False).state
    assert type(got["ordered"]) is collections.OrderedDict and got["ordered"]._metadata == {
        "a": {"version": 1}
    }
    assert type(got["point"]).__name__ == "Point" and torch.equal(got["point"].x, torch.zeros(1))
    assert got["pair"][0] == 1 and torch.equal(got["pair"][1][0], torch.ones(1)) and got["pair"][1][1] == "s"
    assert torch.equal(got["sparse"].to_dense(), torch.eye(3))
    assert torch.equal(got["view"], torch.arange(10.0)[2:6]) and got["other"] == {"k": {1, 2}}


def test_an_error_while_exiting_the_context_leaves_the_background_step_uncommitted(tmp_path):
    cp = Checkpointer(tmp_path)
    cp.save(1, {"v": 1})
    with pytest.raises(KeyError), cp:
        cp.save(2, {"v": 2}, background=True)
        raise KeyError("training failed")
    assert (tmp_path / "latest").read_text() == "step-00000001\n"
    assert Checkpointer(tmp_path).load().state == {"v": 1}


def test_an_error_inside_the_context_is_the_error_raised_and_saving_goes_on(tmp_path):
    cp = Checkpointer(tmp_path)
    with pytest.raises(KeyError, match="training failed"), cp:  # no background save pending
        raise KeyError("training failed")
    with pytest.raises(KeyError), cp:
        cp.save(1, {"v": 1}, background=True)
        raise KeyError("training failed")
    cp.save(2, {"v": 2})  # the same checkpointer, after both
    assert cp.load().state == {"v": 2}


def test_deleting_a_rotated_step_that_is_already_gone_says_nothing(tmp_path):
    """The rotation's background deleter and the next save's sweep of leftovers (or a user's rm) may both go for
    the same doomed step: the one that comes second must not end the deleter thread with a traceback in the job's
    log, and a half-deleted directory is finished off, not left."""
    from hpcx.runtime.checkpoint_manifest import remove_all

    half = tmp_path / "step-00000002.del-0123abcd"
    (half / "sub").mkdir(parents=True)
    (half / "sub" / "rank-00000.pt").write_bytes(b"x")
    remove_all([tmp_path / "step-00000001.del-89abcdef", half])  # the first is gone already
    assert list(tmp_path.iterdir()) == []
