"""The training reader's arithmetic and its refusals, rule by rule, on small real HDF5 files in one process:
block sizes, how a rank's slice of the stream is cut into batches across blocks, resuming at an epoch's edge,
and the message for every argument and file it refuses."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")

from hpcx.errors import UsageError  # noqa: E402
from hpcx.io.reader import HDF5Reader, default_block_rows  # noqa: E402


def _file(path, rows, *, chunks=None, width=1, dtype="i8", compression=None):
    """y[i] = i (the row's id); x[i] = (i, i, ...) ``width`` wide."""
    with h5py.File(path, "w") as f:
        y = np.arange(rows, dtype=dtype)
        f.create_dataset("y", data=y, chunks=(chunks,) if chunks else None, compression=compression)
        x = np.repeat(np.arange(rows, dtype="f4")[:, None], width, axis=1)
        f.create_dataset("x", data=x, chunks=(chunks, width) if chunks else None, compression=compression)
    return path


def _ids(batches) -> list[list[int]]:
    return [b.tolist() for b in batches]


# --- block sizes -------------------------------------------------------------------------------------------


def _datasets(tmp_path, specs):
    """Datasets (name, dtype, row shape, chunk rows) in one file, opened for reading."""
    f = h5py.File(tmp_path / "blocks.h5", "w")
    for name, dtype, shape, chunk in specs:
        f.create_dataset(name, (1000, *shape), dtype=dtype, chunks=(chunk, *shape) if chunk else None)
    return f, [f[name] for name, *_ in specs]


@pytest.mark.parametrize(
    ("specs", "batch", "rows"),
    [
        # 20 bytes a row, chunks of 64: 4 MiB is 3276 whole chunks (and 16 divides 64)
        ([("x", "f4", (3,), 64), ("y", "i8", (), 64)], 16, 64 * 3276),
        # contiguous: the batch is the unit, 16 rows of 20 bytes, 13107 of them
        ([("x", "f4", (3,), None), ("y", "i8", (), None)], 16, 16 * 13107),
        # chunks of 1000 and 63: their lcm (63000) is too coarse, the wider dataset's chunk (1000 rows) is the
        # unit, and so is the batch's (9000): 4 chunks of 1032-byte rows
        ([("x", "f4", (256,), 1000), ("y", "i8", (), 63)], 9, 1000 * 4),
        # 64 KiB rows: a batch of 96 (lcm 192 rows, 12 MiB) would make blocks over twice the size: the chunk alone
        ([("x", "f4", (16384,), 64)], 96, 64),
        # one byte a row: 4 Mi rows
        ([("y", "u1", (), None)], 1, 4 << 20),
        # one row larger than a block: one row per block, never none
        ([("x", "f4", (2 << 20,), 1)], 1, 1),
        # chunks of 64 and 96 (lcm 192, within 8 x 96) with a batch of 5 (lcm 960 rows of 24 bytes): all three
        ([("x", "f4", (5,), 64), ("y", "f4", (), 96)], 5, 960 * 182),
        # a batch (2048 rows of 4 KiB) whose blocks would be exactly twice the target still sets the unit
        ([("x", "f4", (1024,), 64)], 2048, 2048),
        # contiguous: no chunk to align to, so an odd batch alone is the unit (1398101 batches of 3 rows)
        ([("y", "u1", (), None)], 3, 3 * 1398101),
        # chunks of 8 and 9: their lcm (72) is exactly 8 x 9, still a common unit (2912 x 72 rows of 20 bytes)
        ([("x", "f4", (3,), 8), ("y", "i8", (), 9)], 1, 72 * 2912),
    ],
)
def test_a_block_is_about_4_mib_of_whole_chunks_and_batches(tmp_path, specs, batch, rows):
    f, dsets = _datasets(tmp_path, specs)
    with f:
        assert default_block_rows(dsets, batch) == rows


def test_the_reader_cuts_files_into_blocks_of_that_size_and_a_short_last_one(tmp_path):
    a = _file(tmp_path / "a.h5", 100, chunks=10)
    b = _file(tmp_path / "b.h5", 25, chunks=10)
    r = HDF5Reader([a, b], "y", batch_size=10, rank=0, world_size=1, block_rows=30)
    assert r.blocks == [(0, 0, 30), (0, 30, 60), (0, 60, 90), (0, 90, 100), (1, 0, 25)]
    assert (r.rows, len(r)) == (125, 12)
    assert r.state_dict()["blocks"] == 5


# --- a rank's batches --------------------------------------------------------------------------------------


def test_batches_straddle_blocks_in_stream_order(tmp_path):
    data = _file(tmp_path / "d.h5", 40)
    r = HDF5Reader(data, "y", batch_size=6, shuffle=False, rank=0, world_size=1, block_rows=4)
    assert _ids(r) == [list(range(i, i + 6)) for i in range(0, 36, 6)]  # the 4 rows left fill no batch


def test_ranks_take_consecutive_slices_and_only_the_tail_is_dropped(tmp_path):
    data = _file(tmp_path / "d.h5", 47)
    got = [
        _ids(HDF5Reader(data, "y", batch_size=5, shuffle=False, rank=r, world_size=3, block_rows=7))
        for r in range(3)
    ]
    # 47 rows over 3 ranks: 15 each, 3 batches of 5; rows 45 and 46 fill no batch on every rank
    assert got == [[list(range(s, s + 5)) for s in range(15 * r, 15 * r + 15, 5)] for r in range(3)]


def test_a_single_name_gives_tensors_and_a_list_of_one_gives_tuples(tmp_path):
    data = _file(tmp_path / "d.h5", 8)
    single = next(iter(HDF5Reader(data, "y", batch_size=4, shuffle=False, rank=0, world_size=1)))
    listed = next(iter(HDF5Reader(data, ["y"], batch_size=4, shuffle=False, rank=0, world_size=1)))
    assert isinstance(single, torch.Tensor) and single.tolist() == [0, 1, 2, 3]
    assert isinstance(listed, tuple) and listed[0].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("chunks", [None, 4], ids=["contiguous", "chunked"])
def test_a_shuffled_epoch_is_a_permutation_that_changes_with_the_epoch(tmp_path, chunks):
    data = _file(tmp_path / "d.h5", 64, chunks=chunks)
    r = HDF5Reader(data, ["x", "y"], batch_size=64, rank=0, world_size=1, block_rows=16, seed=3)
    epochs = []
    for _ in range(2):
        ((x, y),) = list(r.loader())
        assert torch.equal(x[:, 0].long(), y) and sorted(y.tolist()) == list(range(64))
        epochs.append(y.tolist())
    assert epochs[0] != epochs[1] and epochs[0] != list(range(64)) and r.epoch == 2


# --- resuming ----------------------------------------------------------------------------------------------


def test_a_state_after_the_last_batch_resumes_at_the_next_epoch(tmp_path):
    data = _file(tmp_path / "d.h5", 30)
    r = HDF5Reader(data, "y", batch_size=10, shuffle=False, rank=0, world_size=1)
    state = r.state_dict()
    r.load_state_dict({**state, "epoch": 4, "position": 3})
    assert (r.epoch, r.position) == (5, 0)
    r.load_state_dict({**state, "epoch": 4, "position": 2})
    assert (r.epoch, r.position) == (4, 2) and _ids(r) == [[20, 21, 22, 23, 24, 25, 26, 27, 28, 29]]
    r.load_state_dict({**state, "epoch": 0, "position": 0})
    assert (r.epoch, r.position) == (0, 0) and len(_ids(r.loader())) == 3 and (r.epoch, r.position) == (1, 0)


def test_the_state_is_plain_values_naming_what_must_not_change(tmp_path):
    data = _file(tmp_path / "d.h5", 30)
    state = HDF5Reader(data, "y", batch_size=10, rank=1, world_size=2, seed=9, block_rows=15).state_dict()
    assert {k: v for k, v in state.items() if k != "block_sizes"} == {
        "epoch": 0,
        "position": 0,
        "rows": 30,
        "blocks": 2,
        "batch_size": 10,
        "batches_per_epoch": 1,
        "seed": 9,
        "shuffle": True,
        "rank": 1,
        "world_size": 2,
    }
    assert isinstance(state["block_sizes"], str) and len(state["block_sizes"]) == 16
    other = HDF5Reader(data, "y", batch_size=10, rank=1, world_size=2, seed=9, block_rows=10).state_dict()
    assert other["block_sizes"] != state["block_sizes"]


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"seed": 1}, "seed 1 -> 0"),
        ({"shuffle": False}, "shuffle False -> True"),
        ({"rank": 1, "world_size": 2}, "rank 1 -> 0, world_size 2 -> 1"),
        ({"block_sizes": "x"}, "block_sizes 'x' -> "),
    ],
)
def test_a_state_from_another_reader_is_refused_naming_what_changed(tmp_path, change, detail):
    data = _file(tmp_path / "d.h5", 30)
    r = HDF5Reader(data, "y", batch_size=10, rank=0, world_size=1)
    with pytest.raises(UsageError) as err:
        r.load_state_dict({**r.state_dict(), **change})
    assert err.value.message.startswith(f"the reader state was saved for a different reader ({detail}")
    assert err.value.hint == "resume with the same files, batch size, seed, shuffle, block rows and ranks"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epoch": -1}, "state['epoch'] must be an integer >= 0, not -1"),
        ({"position": -1}, "state['position'] must be an integer >= 0, not -1"),
        ({"position": 1.0}, "state['position'] must be an integer >= 0, not 1.0"),
        ({"epoch": None}, "state['epoch'] must be an integer >= 0, not None"),
        ({"position": 4}, "position 4 is beyond the epoch's 3 batches"),
    ],
)
def test_a_state_with_impossible_numbers_is_refused(tmp_path, change, message):
    data = _file(tmp_path / "d.h5", 30)
    r = HDF5Reader(data, "y", batch_size=10, rank=0, world_size=1)
    with pytest.raises(UsageError) as err:
        r.load_state_dict({**r.state_dict(), **change})
    assert err.value.message == message


# --- refusals ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": True}, "batch_size must be an integer >= 1, not True"),
        ({"batch_size": 2.0}, "batch_size must be an integer >= 1, not 2.0"),
        ({"seed": -1}, "seed must be an integer >= 0, not -1"),
        ({"block_rows": 0}, "block_rows must be an integer >= 1, not 0"),
        ({"world_size": 0}, "world_size must be an integer >= 1, not 0"),
        ({"rank": -1}, "rank must be an integer >= 0, not -1"),
        ({"rank": 3, "world_size": 3}, "rank 3 is not below world_size 3"),
        (
            {"batch_size": 11},
            "batch_size 11 is larger than a rank's share of the rows (10 rows over 1 ranks: 10 each)",
        ),
    ],
)
def test_bad_arguments_are_refused_naming_the_value(tmp_path, kwargs, message):
    data = _file(tmp_path / "d.h5", 10)
    with pytest.raises(UsageError) as err:
        HDF5Reader(data, "y", **{"batch_size": 2, "rank": 0, "world_size": 1, **kwargs})
    assert err.value.message == message


def test_seed_zero_and_block_rows_one_are_allowed(tmp_path):
    data = _file(tmp_path / "d.h5", 4)
    r = HDF5Reader(data, "y", batch_size=1, rank=0, world_size=1, seed=0, block_rows=1, shuffle=False)
    assert _ids(r) == [[0], [1], [2], [3]]


def test_no_file_or_no_name_is_refused(tmp_path):
    data = _file(tmp_path / "d.h5", 4)
    for files, names in (([], "y"), (data, [])):
        with pytest.raises(UsageError) as err:
            HDF5Reader(files, names, batch_size=1, rank=0, world_size=1)
        assert err.value.message == "the reader needs at least one file and one dataset name"


def test_datasets_the_reader_cannot_use_are_refused_with_the_reason(tmp_path):
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        f["scalar"] = 3.0
        f.create_group("group")
        f["group/inner"] = np.zeros(4)
        f["text"] = np.array([b"ab", b"cd"])
        f["y"] = np.arange(4)
    kw = {"batch_size": 1, "rank": 0, "world_size": 1}
    cases = [
        ("scalar", f"'scalar' in {path} is a scalar", "the reader needs rows along axis 0"),
        ("group", f"'group' in {path} is not a dataset", "datasets there: group/inner, scalar, text, y"),
        (
            "text",
            f"/text in {path} has dtype |S2, which torch cannot hold",
            "store numbers (float, int, uint8, bool)",
        ),
    ]
    for name, message, hint in cases:
        with pytest.raises(UsageError) as err:
            HDF5Reader(path, name, **kw)
        assert (err.value.message, err.value.hint) == (message, hint)
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(UsageError) as err:
        HDF5Reader(empty, "y", **kw)
    assert err.value.hint == "datasets there: none"


def test_files_whose_datasets_differ_in_length_or_shape_are_refused(tmp_path):
    uneven = tmp_path / "uneven.h5"
    with h5py.File(uneven, "w") as f:
        f["x"], f["y"] = np.zeros((5, 2), "f4"), np.zeros(4, "i8")
    with pytest.raises(UsageError) as err:
        HDF5Reader(uneven, ["x", "y"], batch_size=1, rank=0, world_size=1)
    assert err.value.message == f"datasets in {uneven} have different lengths: {{'x': 5, 'y': 4}}"
    assert err.value.hint == "inputs and labels must have one row per sample"
    a, b = _file(tmp_path / "a.h5", 4, width=2), _file(tmp_path / "b.h5", 4, width=3)
    with pytest.raises(UsageError) as err:
        HDF5Reader([a, b], ["x"], batch_size=1, rank=0, world_size=1)
    shapes = [f"[Column(name='x', dtype=dtype('float32'), shape=({n},))]" for n in (3, 2)]
    assert err.value.message == f"datasets in {b} differ from those in {a}: {shapes[0]} vs {shapes[1]}"
    assert err.value.hint == "every file needs the same dtypes and row shapes"


def test_a_file_that_is_a_directory_or_not_hdf5_is_refused(tmp_path):
    (tmp_path / "dir.h5").mkdir()
    with pytest.raises(UsageError) as err:
        HDF5Reader(tmp_path / "dir.h5", "y", batch_size=1, rank=0, world_size=1)
    assert err.value.message == f"HDF5 file {tmp_path / 'dir.h5'} does not exist"
    assert err.value.hint == "every rank must see the same files"


def test_block_rows_are_checked_only_when_given(tmp_path):
    data = _file(tmp_path / "d.h5", 4)
    assert HDF5Reader(data, "y", batch_size=1, rank=0, world_size=1, block_rows=None).blocks == [(0, 0, 4)]


def test_a_compressed_dataset_of_large_integers_is_read_exactly_when_shuffled(tmp_path):
    path = tmp_path / "ids.h5"
    # beyond float64's 53 bits: no value may pass through a float
    ids = (1 << 60) + np.arange(100, dtype="i8")
    with h5py.File(path, "w") as f:
        f.create_dataset("id", data=ids, chunks=(10,), compression="gzip")  # read by HDF5, not mapped
    r = HDF5Reader(path, "id", batch_size=10, rank=0, world_size=1, block_rows=20, seed=5)
    got = torch.cat(list(r)).tolist()
    assert sorted(got) == ids.tolist() and got != ids.tolist()


def test_the_blocks_come_in_another_order_every_epoch(tmp_path):
    data = _file(tmp_path / "d.h5", 64)
    r = HDF5Reader(data, "y", batch_size=64, rank=0, world_size=1, block_rows=4, seed=3)
    orders = []
    for _ in range(2):
        ((y,),) = [(b,) for b in r.loader()]
        orders.append(list(dict.fromkeys(i // 4 for i in y.tolist())))  # the blocks in the order read
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(16)) and orders[0] != orders[1]


def test_a_rank_or_world_size_given_wins_over_the_launchers(tmp_path, monkeypatch):
    data = _file(tmp_path / "d.h5", 40)
    monkeypatch.delenv("OMPI_COMM_WORLD_RANK", raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    r = HDF5Reader(data, "y", batch_size=5, world_size=2)
    assert (r.rank, r.world_size, len(r)) == (1, 2, 4)
    r = HDF5Reader(data, "y", batch_size=5, rank=3)
    assert (r.rank, r.world_size, len(r)) == (3, 4, 2)


def _slow_start(_worker_id: int) -> None:
    import time

    time.sleep(1.5)


def test_the_loader_waits_for_slow_workers_unless_told_otherwise(tmp_path):
    data = _file(tmp_path / "d.h5", 8)
    r = HDF5Reader(data, "y", batch_size=4, shuffle=False, rank=0, world_size=1)
    batches = r.loader(num_workers=1, multiprocessing_context="fork", worker_init_fn=_slow_start)
    assert _ids(batches) == [[0, 1, 2, 3], [4, 5, 6, 7]]
