"""The training reader on real HDF5 files and real DataLoader workers (fork and spawn): every row once per epoch
across ranks, shuffling by block then within it, exact resume mid-epoch, several files, errors, I/O records."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")

from hpcx.errors import RuntimeFailure, UsageError  # noqa: E402
from hpcx.io.reader import HDF5Reader  # noqa: E402
from hpcx.profiling import iometrics as metrics  # noqa: E402
from hpcx.rundir.records import read_records  # noqa: E402

FEATURES = 3
ROW_BYTES = FEATURES * 4 + 8  # x float32 [FEATURES], y int64


def write(path: Path, rows: int, *, first: int = 0, chunks: int | None = 64, **extra) -> Path:
    """x[i] = (id*F, id*F + 1, ...) and y[i] = id, with id = first + i: every value says which row it is."""
    ids = np.arange(first, first + rows)
    with h5py.File(path, "w", **extra) as f:
        x = (ids[:, None] * FEATURES + np.arange(FEATURES)).astype("f4")
        f.create_dataset("x", data=x, chunks=(chunks, FEATURES) if chunks else None)
        f.create_dataset("y", data=ids.astype("i8"), chunks=(chunks,) if chunks else None)
    return path


def ids_of(batches) -> list[int]:
    """The row ids of ``batches`` in order, after checking that every x row belongs to its y."""
    out = []
    for x, y in batches:
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and len(x) == len(y)
        assert torch.equal(x, (y[:, None] * FEATURES + torch.arange(FEATURES)).float())
        out += y.tolist()
    return out


def reader(files, **kw) -> HDF5Reader:
    kw = {"batch_size": 16, "seed": 7, "rank": 0, "world_size": 1, **kw}
    return HDF5Reader(files, ["x", "y"], **kw)


def epoch_ids(files, **kw) -> list[int]:
    """The rows rank 0 of 1 reads in its first epoch, in batches of one: the epoch's whole stream."""
    return ids_of(reader(files, batch_size=1, **kw).loader())


# HDF5 reads, or mapped
LAYOUTS = pytest.mark.parametrize("chunks", [64, None], ids=["chunked", "contiguous"])


@LAYOUTS
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_two_workers_read_every_row_exactly_once_across_ranks(tmp_path, context, chunks):
    ranks, batch = (3, 16) if context == "fork" else (2, 16)  # spawn starts slow workers: fewer of them
    rows = ranks * 20 * batch
    data = write(tmp_path / "d.h5", rows, chunks=chunks)
    seen = []
    for rank in range(ranks):
        r = reader(data, rank=rank, world_size=ranks, block_rows=64, batch_size=batch)
        got = ids_of(r.loader(num_workers=2, multiprocessing_context=context, timeout_s=60))
        assert len(got) == len(r) * batch == 20 * batch
        assert got == ids_of(reader(data, rank=rank, world_size=ranks, block_rows=64, batch_size=batch))
        seen += got
    assert sorted(seen) == list(range(rows))


def test_uneven_sizes_give_every_rank_the_same_batches_and_drop_only_the_streams_tail(tmp_path):
    files = [write(tmp_path / "a.h5", 500), write(tmp_path / "b.h5", 503, first=500, chunks=50)]
    stream = epoch_ids(files, block_rows=100)
    assert sorted(stream) == list(range(1003))  # one rank, batches of one: every row, each once
    ranks, batch = 3, 16
    per_rank = [
        ids_of(reader(files, rank=r, world_size=ranks, block_rows=100).loader()) for r in range(ranks)
    ]
    assert {len(p) for p in per_rank} == {1003 // ranks // batch * batch}  # 20 batches of 16 each
    # the ranks take consecutive slices of the one stream; the 43 rows that fill no batch on every rank are dropped
    assert sum(per_rank, []) == stream[: ranks * 320]


@LAYOUTS
def test_shuffle_is_by_block_then_within_it_and_depends_only_on_seed_and_epoch(tmp_path, chunks):
    data = write(tmp_path / "d.h5", 1000, chunks=chunks)
    r = reader(data, batch_size=1)
    assert r.blocks[:2] == [(0, 0, 1000)]  # small rows: the default block is a whole run of 64-row chunks
    stream = epoch_ids(data, block_rows=64)
    runs = [list(run) for _, run in itertools.groupby(stream, key=lambda i: i // 64)]
    blocks = [run[0] // 64 for run in runs]
    assert sorted(blocks) == list(range(16))  # each block is one run of the stream ...
    assert all(sorted(run) == list(range(b * 64, min(b * 64 + 64, 1000))) for b, run in zip(blocks, runs))
    assert blocks != sorted(blocks)  # ... the runs in shuffled order
    assert all(run != sorted(run) for run in runs)  # and the rows inside every block
    assert stream == epoch_ids(data, block_rows=64)
    assert stream != epoch_ids(data, block_rows=64, seed=8)
    two = reader(data, batch_size=1, block_rows=64)
    first, second = ids_of(two.loader()), ids_of(two.loader())
    assert first == stream and sorted(second) == sorted(stream) and second != stream and two.epoch == 2
    assert epoch_ids(data, shuffle=False) == list(range(1000))


@LAYOUTS
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("stop_after", [0, 7, 31])
def test_a_state_taken_mid_epoch_resumes_with_exactly_the_remaining_batches(
    tmp_path, workers, stop_after, chunks
):
    data = write(tmp_path / "d.h5", 1000, chunks=chunks)
    kw = {"rank": 1, "world_size": 2, "block_rows": 64}
    context = "fork" if workers else None

    def loader(r: HDF5Reader):
        return r.loader(num_workers=workers, multiprocessing_context=context, timeout_s=60)

    whole = reader(data, **kw)
    assert len(whole) == 31
    expected = ids_of(loader(whole)) + ids_of(loader(whole))  # two epochs

    first = reader(data, **kw)
    batches = iter(loader(first))
    got = ids_of(next(batches) for _ in range(stop_after))
    state = first.state_dict()  # taken in the loop, as a checkpoint would be
    del batches  # the job ends here, its workers with it
    assert (state["epoch"], state["position"]) == ((0, stop_after) if stop_after < 31 else (1, 0))
    torch.save({"reader": state}, tmp_path / "ckpt.pt")
    again = reader(data, **kw)
    again.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["reader"])
    while again.epoch < 2:
        got += ids_of(loader(again))
    assert got == expected


def test_workers_order_matches_the_main_process_and_leaves_the_global_rng_alone(tmp_path):
    data = write(tmp_path / "d.h5", 1000)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with_workers = ids_of(reader(data, block_rows=64).loader(num_workers=2, multiprocessing_context="fork"))
    assert torch.equal(torch.get_rng_state(), before)  # resuming must not shift the training's random stream
    assert with_workers == ids_of(reader(data, block_rows=64).loader())


def test_one_name_gives_tensors_and_rank_defaults_come_from_the_launcher(tmp_path, monkeypatch):
    data = write(tmp_path / "d.h5", 100)
    monkeypatch.delenv("OMPI_COMM_WORLD_RANK", raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    r = HDF5Reader(data, "y", batch_size=10, shuffle=False)
    assert (r.rank, r.world_size, len(r)) == (1, 2, 5)
    assert torch.cat(list(r)).tolist() == list(range(50, 100))


@pytest.mark.parametrize("block_rows", [32, 20])  # whole chunks, and blocks that start inside one
def test_every_layout_reads_right_whether_mapped_or_read_by_hdf5(tmp_path, block_rows):
    x = np.arange(300).reshape(100, 3)
    path = tmp_path / "layouts.h5"
    with h5py.File(path, "w") as f:
        f["contiguous"] = x.astype(">f4")  # big-endian: made native on the way out
        f.create_dataset("chunked", data=x.astype("f4"), chunks=(16, 3))
        f.create_dataset("reversed", (100, 3), dtype="f4", chunks=(16, 3))
        for lo in reversed(range(0, 100, 16)):  # chunks stored back to front: not one run of bytes
            f["reversed"][lo : lo + 16] = x[lo : lo + 16]
        f.create_dataset("gzip", data=x.astype("f4"), chunks=(16, 3), compression="gzip")
        f.create_dataset("narrow", data=x.astype("f4"), chunks=(16, 1))
        f.create_dataset("unwritten", (100, 3), dtype="f4", fillvalue=2.5)
    with h5py.File(tmp_path / "userblock.h5", "w", userblock_size=512) as f:
        f["contiguous"] = x.astype("f4")
    names = ["contiguous", "chunked", "reversed", "gzip", "narrow", "unwritten"]
    kw = {"batch_size": 10, "rank": 0, "world_size": 1, "block_rows": block_rows}
    maps = HDF5Reader(path, names, **kw).files[0].maps
    kinds = ["hdf5" if m is None else "offset" if m.offset is not None else "chunks" for m in maps]
    assert kinds == ["offset", "chunks", "chunks", "hdf5", "hdf5", "hdf5"]
    assert HDF5Reader(tmp_path / "userblock.h5", "contiguous", **kw).files[0].maps == (None,)
    for shuffle in (False, True):
        columns = [torch.cat(c) for c in zip(*HDF5Reader(path, names, shuffle=shuffle, **kw))]
        ids = (columns[0][:, 0] / 3).long()
        assert columns[0].dtype == torch.float32 and sorted(ids.tolist()) == list(range(100))
        assert torch.equal(columns[0], torch.from_numpy(x).float()[ids])
        assert all(torch.equal(c, columns[0]) for c in columns[1:5]) and torch.all(columns[5] == 2.5)
        alone = torch.cat(list(HDF5Reader(tmp_path / "userblock.h5", "contiguous", shuffle=shuffle, **kw)))
        assert torch.equal(alone, torch.from_numpy(x).float()[(alone[:, 0] / 3).long()])


def test_the_reader_pickles_after_reading_and_never_imports_mpi(tmp_path):
    data = write(tmp_path / "d.h5", 200)
    code = (
        "import pickle, sys; from hpcx.io.reader import HDF5Reader\n"
        f"r = HDF5Reader({str(data)!r}, ['x', 'y'], batch_size=8, rank=0, world_size=1)\n"
        "it = iter(r.loader()); next(it); pickle.loads(pickle.dumps(r))\n"
        "print(sorted(m for m in sys.modules if m.startswith('mpi4py')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@LAYOUTS
def test_reads_are_recorded_per_process_under_the_profile_dir(tmp_path, monkeypatch, chunks):
    data = write(tmp_path / "d.h5", 1024, chunks=chunks)
    profile = tmp_path / "profile"
    monkeypatch.setenv("HPCX_PROFILE_DIR", str(profile))
    before = metrics.totals()["read"]["bytes"]
    assert len(ids_of(reader(data, block_rows=64).loader())) == 1024
    assert metrics.totals()["read"]["bytes"] - before == 1024 * ROW_BYTES  # each row read once
    ids_of(reader(data, block_rows=64).loader(num_workers=2, multiprocessing_context="fork"))
    last = [list(read_records(p))[-1] for p in profile.glob("io-rank-00000-p*.jsonl")]
    workers = [record for record in last if record["pid"] != os.getpid()]  # each worker its own file
    assert len(workers) == 2 and all(w["type"] == "io" and w["read"]["calls"] > 0 for w in workers)
    assert sum(w["read"]["bytes"] for w in workers) >= 1024 * ROW_BYTES


def test_the_errors_name_the_problem(tmp_path):
    good = write(tmp_path / "d.h5", 100)
    with pytest.raises(UsageError, match="does not exist"):
        reader(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(UsageError, match="not a readable HDF5 file"):
        reader(tmp_path / "text.h5")
    with pytest.raises(UsageError, match="'labels' in .* does not exist; datasets there: x, y"):
        HDF5Reader(good, ["x", "labels"], batch_size=4, rank=0, world_size=1)
    with h5py.File(tmp_path / "uneven.h5", "w") as f:
        f["x"], f["y"] = np.zeros((10, 3), "f4"), np.zeros(9, "i8")
    with pytest.raises(UsageError, match="different lengths"):
        reader(tmp_path / "uneven.h5", batch_size=2)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"], f["y"] = np.zeros((10, 4), "f4"), np.zeros(10, "i8")
    with pytest.raises(UsageError, match="differ from those in"):
        reader([good, tmp_path / "other.h5"])
    with pytest.raises(
        UsageError, match=r"larger than a rank's share of the rows \(100 rows over 4 ranks: 25"
    ):
        reader(good, batch_size=26, rank=3, world_size=4)
    with pytest.raises(UsageError, match="rank 2 is not below world_size 2"):
        reader(good, rank=2, world_size=2)
    with pytest.raises(UsageError, match="batch_size must be an integer >= 1"):
        reader(good, batch_size=0)
    state = reader(good).state_dict()
    with pytest.raises(UsageError, match="batch_size 16 -> 8.*resume with the same"):
        reader(good, batch_size=8).load_state_dict(state)
    with pytest.raises(UsageError, match="beyond the epoch's 6 batches"):
        reader(good).load_state_dict({**state, "position": 7})
    stale = reader(good)
    write(good, 100, first=1000)
    with pytest.raises(RuntimeFailure, match="changed since the reader was made"):
        next(iter(stale))
