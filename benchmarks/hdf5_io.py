"""hdf5_io: hpcx.io.hdf5's collective write and the training reader against the plain ways to move the same bytes.

- write_vs_raw: 4 ranks writing one shared file through hpcx.io.hdf5 (mpio, collective, fsynced) over one
  process writing the same bytes sequentially with numpy tofile + fsync (target >= 0.80; a naive h5py mpio
  write measured about 0.35 on the reference machine, and is timed here too for context);
- write_vs_gather: the same over gathering to rank 0 and writing with serial h5py (target >= 2.0);
- read_vs_memmap: the training reader's throughput over the same loop on np.memmap of the same bytes
  (target >= 0.90).

All cases run alternately in one run, on the same filesystem (``--dir``, default a temporary directory), and
every file is fsynced; ratios are of throughputs (bytes / median seconds).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, Skip, alternate, main, result, stats, timing_row

LOOPBACK = {
    "OMPI_MCA_btl": "self,vader,tcp",
    "OMPI_MCA_btl_tcp_if_include": "lo",
    "OMPI_MCA_oob_tcp_if_include": "lo",
}
RANKS = 4
WORKER = str(REPO / "benchmarks" / "_hdf5_worker.py")


def _writer(mode: str, path: Path, nbytes: int, seconds: list[float]):
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    if mode == "raw":
        argv = [sys.executable, WORKER, mode, str(path), "--bytes", str(nbytes)]
    else:
        argv = [
            "mpirun",
            "-n",
            str(RANKS),
            "--oversubscribe",
            *root,
            sys.executable,
            WORKER,
            mode,
            str(path),
            "--bytes",
            str(nbytes),
        ]

    def go() -> None:
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
        _drop_caches()
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=900, env={**os.environ, **LOOPBACK}
        )
        if out.returncode != 0:
            raise RuntimeError(f"{mode} writer failed: {out.stderr[-2000:]}")
        seconds.append(float(next(x for x in out.stdout.splitlines() if x.startswith("SECONDS")).split()[1]))

    return go


def _drop_caches() -> None:
    """Start each case with the dirty pages of the previous one written out, so none pays for another."""
    os.sync()


def run(quick: bool) -> list[dict]:
    if shutil.which("mpirun") is None:
        raise Skip("mpirun not found")
    try:
        import h5py
    except ImportError as exc:
        raise Skip("h5py is not installed") from exc
    if not h5py.get_config().mpi:
        raise Skip("h5py was built without MPI")
    nbytes = (256 if quick else 2048) << 20
    repeats = 2 if quick else 3
    base = Path(
        os.environ.get("HPCX_BENCH_DIR") or tempfile.mkdtemp(prefix="hpcx-hdf5-bench-", dir="/var/tmp")
    )
    base.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, list[float]] = {m: [] for m in ("raw", "hpcx", "naive", "gather")}
    try:
        cases = {m: _writer(m, base / f"{m}.bin", nbytes, seconds[m]) for m in seconds}
        alternate(cases, repeats, warmup=0)
        rows = _ratios(seconds, nbytes)
        rows += _read_rows(base, quick)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return rows


def _ratios(seconds: dict[str, list[float]], nbytes: int) -> list[dict]:
    med = {m: stats(s)["median"] for m, s in seconds.items()}
    gib = nbytes / 2**30
    return [
        result(
            "write_vs_raw",
            round(med["raw"] / med["hpcx"], 3),
            "ratio",
            f"numpy tofile + fsync of the same {gib:g} GiB, one process (throughput ratio)",
            0.80,
        )
        | {"better": "higher"},
        result(
            "write_vs_gather",
            round(med["gather"] / med["hpcx"], 3),
            "ratio",
            f"Gatherv to rank 0 + serial h5py write + fsync, {RANKS} ranks",
            2.0,
        )
        | {"better": "higher"},
        result(
            "naive_mpio_vs_raw",
            round(med["raw"] / med["naive"], 3),
            "ratio",
            "h5py mpio with defaults and independent writes (context, no target)",
        )
        | {"better": "higher"},
        timing_row("hpcx_write_s", seconds["hpcx"], f"{RANKS} ranks, {gib:g} GiB, collective, fsynced", "s"),
        timing_row("raw_write_s", seconds["raw"], f"1 process, {gib:g} GiB, fsynced", "s"),
        timing_row("gather_write_s", seconds["gather"], f"{RANKS} ranks gathered to rank 0", "s"),
        timing_row("naive_write_s", seconds["naive"], f"{RANKS} ranks, h5py mpio defaults", "s"),
    ]


def _read_rows(base: Path, quick: bool) -> list[dict]:
    """One epoch through HDF5Reader against the same loop on np.memmap of the same bytes: the same batches of
    the same rows in the same order (taken from the reader's own labels, y = row number), gathered from the
    memmap into tensors. Shuffled (the training default: blocks, then rows within blocks) and in file order.
    Both read from the page cache after a warm-up epoch, so this times the reader, not the disk."""
    import h5py
    import numpy as np
    import torch

    from hpcx.io.reader import HDF5Reader

    rows, cols, batch = (1 << 17 if quick else 1 << 19), 256, 256  # 128 or 512 MiB of float32
    x = np.random.default_rng(0).random((rows, cols), dtype=np.float32)
    y = np.arange(rows, dtype=np.int64)
    with h5py.File(base / "train.h5", "w", libver="latest") as f:
        f.create_dataset("x", data=x, chunks=(1024, cols))
        f.create_dataset("y", data=y, chunks=(1024,))
    x.tofile(base / "x.raw")
    y.tofile(base / "y.raw")
    del x, y
    out: list[dict] = []
    for shuffle in (True, False):
        reader = HDF5Reader(
            base / "train.h5", ["x", "y"], batch_size=batch, seed=1, rank=0, world_size=1, shuffle=shuffle
        )
        order = [yb.numpy().copy() for _, yb in reader.loader()]  # the rows of each batch, in order

        def hdf5_epoch(reader: HDF5Reader = reader) -> None:
            reader.epoch, reader.position = 0, 0
            for xb, _ in reader.loader():
                xb.sum()

        def memmap_epoch(order: list = order, shuffle: bool = shuffle) -> None:
            mx = np.memmap(base / "x.raw", dtype=np.float32, mode="r", shape=(rows, cols))
            my = np.memmap(base / "y.raw", dtype=np.int64, mode="r", shape=(rows,))
            for idx in order:
                if shuffle:
                    xb, _ = torch.from_numpy(mx[idx]), torch.from_numpy(my[idx])
                else:  # file order: contiguous slices, the memmap's best case
                    lo, hi = int(idx[0]), int(idx[-1]) + 1
                    xb, _ = torch.from_numpy(np.array(mx[lo:hi])), torch.from_numpy(np.array(my[lo:hi]))
                xb.sum()

        seconds = alternate({"memmap": memmap_epoch, "hdf5": hdf5_epoch}, 3 if quick else 7, warmup=1)
        h, m = stats(seconds["hdf5"])["median"], stats(seconds["memmap"])["median"]
        mib = rows * (cols * 4 + 8) / 2**20
        how = "shuffled" if shuffle else "file order"
        out += [
            result(
                "read_vs_memmap" if shuffle else "read_vs_memmap_file_order",
                round(m / h, 3),
                "ratio",
                f"np.memmap, the same {batch}-row batches ({how}), {mib:.0f} MiB, page cache",
                0.90 if shuffle else None,
            )
            | {"better": "higher"},
            timing_row(f"reader_epoch_s ({how})", seconds["hdf5"], "HDF5Reader.loader(), 0 workers", "s"),
            timing_row(f"memmap_epoch_s ({how})", seconds["memmap"], "np.memmap loop", "s"),
        ]
    return out


if __name__ == "__main__":
    sys.exit(main("hdf5_io", run, __doc__))
