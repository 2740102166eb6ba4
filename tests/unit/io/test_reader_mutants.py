"""The reader's behaviour where a mutant of its code survived the rules tests (issue 24): what a user sees of it,
on small real HDF5 files in one process: layouts the reader must read right, the I/O bytes and seconds a rank
reports, resuming checkpoints that earlier versions wrote, and the messages of reads that fail."""

from __future__ import annotations

import functools
import itertools
import os
import tempfile
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")

from hpcx.errors import RuntimeFailure, UsageError  # noqa: E402
from hpcx.io.reader import HDF5Reader  # noqa: E402
from hpcx.profiling import iometrics as metrics  # noqa: E402
from tests.unit.io.test_reader_rules import _file, _ids  # noqa: E402

# --- what the files hold, read right ------------------------------------------------------------------------


@pytest.mark.parametrize("block_rows", [11, 1])  # a block that ends one row into a chunk; one row a block
def test_chunks_stored_out_of_order_are_read_right(tmp_path, block_rows):
    path = tmp_path / "reversed.h5"
    x = np.arange(33 * 3, dtype="f4").reshape(33, 3)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", (33, 3), dtype="f4", chunks=(16, 3))
        for lo in (32, 16, 0):  # the last chunk first in the file: the chunks are not one run of bytes
            d[lo : lo + 16] = x[lo : lo + 16]
    r = HDF5Reader(path, "x", batch_size=1, shuffle=False, rank=0, world_size=1, block_rows=block_rows)
    assert torch.equal(torch.cat(list(r)), torch.from_numpy(x))


def _layouts(f, values):
    """Datasets HDF5 must read itself: raw bytes in another file, compressed chunks larger than a block, and
    rows of no values; each of ``values``' length."""
    values.tofile(f"{f.filename}.raw")
    size = values.nbytes
    f.create_dataset("external", values.shape, values.dtype, external=[(f"{f.filename}.raw", 0, size)])
    f.create_dataset("gzip", data=values, chunks=(32,), compression="gzip")
    f.create_dataset("empty", (len(values), 0), dtype="f4")


@pytest.mark.parametrize("name", ["external", "gzip", "empty"])
def test_datasets_hdf5_must_read_itself_are_read_right(tmp_path, name):
    values = np.arange(40, dtype="f4")
    with h5py.File(tmp_path / "d.h5", "w") as f:
        _layouts(f, values)
    r = HDF5Reader(tmp_path / "d.h5", name, batch_size=8, shuffle=False, rank=0, world_size=1, block_rows=8)
    got = torch.cat(list(r))
    expected = values if name != "empty" else np.empty((40, 0), "f4")
    assert torch.equal(got, torch.from_numpy(expected))


def test_datasets_named_as_scikit_learn_names_them_are_read(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("X", data=np.arange(16, dtype="f4").reshape(8, 2), compression="gzip")
        f["y"] = np.arange(8)
    r = HDF5Reader(tmp_path / "d.h5", ["X", "y"], batch_size=8, shuffle=False, rank=0, world_size=1)
    ((x, y),) = list(r)
    assert x.tolist() == [[2 * i, 2 * i + 1] for i in range(8)] and y.tolist() == list(range(8))


def test_an_x_and_a_y_of_different_lengths_are_refused_naming_both(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["X"], f["y"] = np.zeros((5, 2), "f4"), np.zeros(4, "i8")
    with pytest.raises(UsageError) as err:
        HDF5Reader(tmp_path / "d.h5", ["X", "y"], batch_size=1, rank=0, world_size=1)
    assert err.value.message == f"datasets in {tmp_path / 'd.h5'} have different lengths: {{'X': 5, 'y': 4}}"


def test_a_batch_larger_than_a_ranks_share_is_refused_saying_what_to_change(tmp_path):
    with pytest.raises(UsageError) as err:
        HDF5Reader(_file(tmp_path / "d.h5", 30), "y", batch_size=8, rank=0, world_size=4)
    assert (err.value.message, err.value.hint) == (
        "batch_size 8 is larger than a rank's share of the rows (30 rows over 4 ranks: 7 each)",
        "use a smaller batch, fewer ranks or more data",
    )


def test_another_users_read_only_file_is_read(tmp_path):
    """Shared data sets are often read-only to the ranks that read them (mode 0444, another owner)."""
    with tempfile.TemporaryDirectory() as shared:
        os.chmod(shared, 0o755)
        path = _file(Path(shared) / "d.h5", 16)
        os.chmod(path, 0o444)
        # every module the read needs imported first: nobody may not be able to read this Python's files
        _read_all(_file(tmp_path / "warm.h5", 16))
        assert _as_another_user(lambda: _read_all(path)) == ""


def _read_all(path) -> list[list[int]]:
    return _ids(HDF5Reader(path, "y", batch_size=8, rank=0, world_size=1))


def _as_another_user(read) -> str:
    """``read()`` without write access to the files, as this user or (for root) as nobody: '' or the error."""
    if os.geteuid() != 0:
        try:
            read()
        except Exception as exc:  # the message is the test's failure text
            return repr(exc)
        return ""
    out, inp = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os.close(out)
        error = ""
        try:
            os.setgid(65534)
            os.setuid(65534)
            read()
        except BaseException as exc:
            error = repr(exc) or "error"
        finally:
            os.write(inp, error.encode())
            os._exit(0)
    os.close(inp)
    with os.fdopen(out, "rb") as pipe:
        error = pipe.read().decode()
    os.waitpid(pid, 0)
    return error


# --- the I/O a rank reports ---------------------------------------------------------------------------------

LAYOUT = {"contiguous": {}, "chunked": {"chunks": 4}, "gzip": {"chunks": 4, "compression": "gzip"}}
ROW_BYTES = 4 + 8  # x float32, y int64


def _read_totals(reader) -> tuple[list[int], int, float]:
    """The row ids ``reader`` gives this process (one epoch), and the read bytes and seconds it reported."""
    before = metrics.totals()["read"]
    ids = [i for _, y in reader for i in y.tolist()]
    after = metrics.totals()["read"]
    return ids, after["bytes"] - before["bytes"], after["seconds"] - before["seconds"]


@pytest.mark.parametrize("layout", LAYOUT)
def test_a_rank_reports_reading_only_its_own_blocks_each_once(tmp_path, layout):
    data = _file(tmp_path / "d.h5", 64, **LAYOUT[layout])
    # 4 blocks of 16 rows, 4 batches each; rank 1 of 2 starts at the third block of the shuffled stream
    r = HDF5Reader(data, ["x", "y"], batch_size=4, seed=2, rank=1, world_size=2, block_rows=16)
    ids, nbytes, _ = _read_totals(r)
    assert len(ids) == 32 and len({i // 16 for i in ids}) == 2
    assert nbytes == 32 * ROW_BYTES


@pytest.mark.parametrize(("layout", "rows_read"), [("contiguous", 70), ("chunked", 70), ("gzip", 72)])
def test_mapped_rows_count_as_delivered_and_hdf5_reads_count_whole_blocks(tmp_path, layout, rows_read):
    data = _file(tmp_path / "d.h5", 72, **LAYOUT[layout])
    # blocks of 16 rows and a last one of 8 (two whole chunks); 14 batches of 5: the epoch drops rows 70, 71
    r = HDF5Reader(data, ["x", "y"], batch_size=5, shuffle=False, rank=0, world_size=1, block_rows=16)
    ids, nbytes, _ = _read_totals(r)
    assert ids == list(range(70))
    assert nbytes == rows_read * ROW_BYTES  # HDF5 reads the last block whole; a map copies what is used


@pytest.mark.parametrize("dtype", ["?", "c8"])
def test_bools_and_complex_numbers_are_read_by_hdf5_in_whole_blocks(tmp_path, dtype):
    values = (np.arange(72) % 3).astype(dtype)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["z"] = values  # contiguous, but not plain numbers: HDF5 converts them, whole blocks at a time
    r = HDF5Reader(tmp_path / "d.h5", "z", batch_size=5, shuffle=False, rank=0, world_size=1, block_rows=16)
    before = metrics.totals()["read"]["bytes"]
    assert torch.equal(torch.cat(list(r)), torch.from_numpy(values[:70]))
    assert metrics.totals()["read"]["bytes"] - before == 72 * values.itemsize


@pytest.mark.parametrize("layout", LAYOUT)
def test_the_seconds_reported_are_positive_and_within_the_time_spent_reading(tmp_path, layout):
    data = _file(tmp_path / "d.h5", 64, **LAYOUT[layout])
    r = HDF5Reader(data, ["x", "y"], batch_size=4, rank=0, world_size=1, block_rows=16)
    t0 = time.perf_counter()
    _, _, seconds = _read_totals(r)
    assert 0 < seconds <= time.perf_counter() - t0


@pytest.mark.parametrize("layout", LAYOUT)
def test_the_seconds_reported_add_up_every_read(tmp_path, layout, monkeypatch):
    data = _file(tmp_path / "d.h5", 64, **LAYOUT[layout])
    r = HDF5Reader(data, ["x", "y"], batch_size=4, rank=0, world_size=1, block_rows=16)
    ticks = itertools.count()
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))  # a clock that moves 1 s a look
    _, _, seconds = _read_totals(r)
    # every read took at least a second: at least one second per block read (4), and per batch when each
    # batch copies its rows out of a map (16)
    assert seconds >= (4 if layout == "gzip" else 16)


# --- checkpoints from earlier versions ----------------------------------------------------------------------


def test_a_reader_state_saved_by_an_earlier_version_still_resumes(tmp_path):
    data = _file(tmp_path / "d.h5", 30)
    r = HDF5Reader(data, "y", batch_size=10, shuffle=False, rank=0, world_size=1, block_rows=15)
    # what HDF5Reader.state_dict() returned for this reader when checkpoints first held it
    layout = {"rows": 30, "blocks": 2, "block_sizes": "fb3ad9629f8a3eff", "batch_size": 10}
    saved = {"epoch": 2, "position": 1, **layout, "batches_per_epoch": 3, "seed": 0, "shuffle": False}
    saved.update(rank=0, world_size=1)
    r.load_state_dict(saved)
    assert (r.epoch, r.position) == (2, 1) and _ids(r) == [list(range(10, 20)), list(range(20, 30))]


def test_a_shuffled_epoch_resumes_with_the_rows_an_earlier_version_had_left(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["y"] = np.arange(40)
    r = HDF5Reader(tmp_path / "d.h5", "y", batch_size=10, seed=5, rank=0, world_size=1, block_rows=4)
    r.load_state_dict({**r.state_dict(), "epoch": 1, "position": 1})
    # what this reader gave after that batch when its checkpoints were first written: its 10 blocks of 4
    # rows in a shuffled order, each shuffled; another order would repeat rows the run already trained on
    # this epoch and skip others
    rest = [
        [39, 37, 8, 10, 9, 11, 7, 6, 5, 4],
        [33, 35, 32, 34, 1, 3, 0, 2, 31, 28],
        [30, 29, 26, 25, 24, 27, 18, 17, 16, 19],
    ]
    assert _ids(r) == rest


def _record_seed(path: Path, _worker_id: int) -> None:
    with open(path, "a") as f:
        f.write(f"{torch.initial_seed()}\n")


def test_a_resumed_loaders_worker_gets_the_seed_it_had_before(tmp_path):
    r = HDF5Reader(_file(tmp_path / "d.h5", 40), "y", batch_size=4, seed=3, rank=1, world_size=2)
    r.load_state_dict({**r.state_dict(), "epoch": 2, "position": 1})
    seeds = tmp_path / "seeds"
    init = functools.partial(_record_seed, seeds)
    assert len(_ids(r.loader(num_workers=1, multiprocessing_context="fork", worker_init_fn=init))) == 4
    # the one worker's torch seed for (seed 3, rank 1, epoch 2, position 1) when checkpoints first held the
    # reader: what a worker_init_fn seeds its own generators from, so a resumed run repeats them exactly
    assert seeds.read_text() == "5920727559612797296\n"


# --- errors while reading ------------------------------------------------------------------------------------


def test_a_file_rewritten_in_place_with_its_old_size_and_time_fails_naming_the_rows(tmp_path):
    path = _file(tmp_path / "d.h5", 40, chunks=8, compression="gzip")
    r = HDF5Reader(path, ["x", "y"], batch_size=8, shuffle=False, rank=0, world_size=1, block_rows=16)
    st = os.stat(path)
    path.write_bytes(b"\0" * st.st_size)  # as `rsync --inplace --times` of other bytes would leave it
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(RuntimeFailure) as err:
        next(iter(r))
    assert err.value.message.startswith(f"reading rows 0:16 of {path} failed: ")
    assert err.value.hint == "the reader's files must not change while it reads them"


def test_a_file_changed_since_the_reader_was_made_is_refused_naming_it(tmp_path):
    path = _file(tmp_path / "d.h5", 40)
    r = HDF5Reader(path, ["x", "y"], batch_size=8, rank=0, world_size=1)
    st = os.stat(path)
    _file(path, 40)  # the same shape, written again a second later
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(RuntimeFailure) as err:
        next(iter(r))
    assert (err.value.message, err.value.hint) == (
        f"{path} changed since the reader was made",
        "make a new reader for the new data",
    )
