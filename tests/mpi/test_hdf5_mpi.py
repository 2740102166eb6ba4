"""hpcx.io.hdf5 under real Open MPI and parallel HDF5: round-trips of every dtype and shape at 1, 2 and 4
ranks in both layouts, the fallback forced on and chosen without MPI, a full disk, and the I/O records."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from tests.mpi.mpirun import REPO, mpirun

pytestmark = pytest.mark.mpi
ROUNDTRIP = "tests/mpi/hdf5_roundtrip.py"


def _result(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "roundtrip ok" in proc.stdout, proc.stdout + proc.stderr
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{")))


@pytest.mark.parametrize("n", [1, 2, 4])
@pytest.mark.parametrize("layout", ["auto", "per-rank"])
def test_roundtrip_every_dtype_and_shape(n, layout, tmp_path):
    out = tmp_path / "data.h5"
    doc = _result(mpirun(n, ROUNDTRIP, str(out), "--layout", layout))
    assert doc["layout"] == ("mpio" if layout == "auto" else "per-rank")
    assert doc["virtual"] == (layout == "per-rank")
    # Only the finished file (and, per rank, its parts) is left: no temporary names.
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == (["data.h5"] if layout == "auto" else ["data.h5", "data.h5.parts"])
    if layout == "per-rank":  # one generation of parts: the one the file names
        (generation,) = (tmp_path / "data.h5.parts").iterdir()
        assert sorted(p.name for p in generation.iterdir()) == [f"rank-{r:05d}.h5" for r in range(n)]


def test_fallback_forced_by_the_environment_reads_the_same_after_moving(tmp_path):
    out = tmp_path / "a" / "data.h5"
    out.parent.mkdir()
    doc = _result(mpirun(2, ROUNDTRIP, str(out), env={"HPCX_HDF5_LAYOUT": "per-rank"}))
    assert doc["layout"] == "per-rank" and doc["virtual"]
    # The virtual dataset names its parts relative to itself: the directory can move or be copied.
    moved = tmp_path / "b"
    (tmp_path / "a").rename(moved)
    check = (
        "import h5py,sys; f=h5py.File(sys.argv[1]); x=f['d10_3'][()]; print(x.shape, f['d10_3'].is_virtual)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", check, str(moved / "data.h5")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert proc.returncode == 0 and "True" in proc.stdout, proc.stderr


def test_without_mpi_ranks_write_parts_and_rank_0_stitches(tmp_path):
    """No communicator (no mpi4py, or h5py without MPI): ranks come from the launcher's environment, write
    their own files, and rank 0 waits for every part before stitching."""
    out = tmp_path / "data.h5"
    procs = []
    for rank in range(3):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": "3",
            "LOCAL_RANK": str(rank),
            "HPCX_HDF5_PART_TIMEOUT_S": "60",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, ROUNDTRIP, str(out), "--no-mpi"],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    doc = json.loads(outputs[0][0].splitlines()[0])
    assert doc["layout"] == "per-rank" and "no MPI communicator across 3 ranks" in doc["reason"]
    assert doc["problems"] == []


def test_one_process_without_mpi_writes_a_plain_file(tmp_path):
    out = tmp_path / "data.h5"
    proc = subprocess.run(
        [sys.executable, ROUNDTRIP, str(out), "--no-mpi"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "RANK"},
    )
    doc = _result(proc)
    assert doc["layout"] == "serial" and not doc["virtual"]


def test_io_records_count_every_rank_s_bytes(tmp_path):
    out, profile = tmp_path / "data.h5", tmp_path / "profile"
    _result(mpirun(2, ROUNDTRIP, str(out), env={"HPCX_PROFILE_DIR": str(profile)}))
    from hpcx.rundir.records import read_io_totals, read_records
    from tests.mpi.hdf5_roundtrip import DTYPES, TRAILING, slab

    totals = read_io_totals(profile)
    for rank in (0, 1):
        want = (
            sum(slab(d, t, rank, 2).nbytes for d in DTYPES for t in TRAILING)
            + slab("f8", (4,), rank, 2).nbytes
        )
        want += 40 if rank == 0 else 0  # the replicated dataset, written once by rank 0
        assert totals[rank]["write"]["bytes"] == want
        assert totals[rank]["write"]["calls"] == len(DTYPES) * len(TRAILING) + 2
    events = [r for f in profile.glob("io-rank-*.jsonl") for r in read_records(f) if r["type"] == "hdf5_open"]
    assert {(e["rank"], e["layout"]) for e in events} == {(0, "mpio"), (1, "mpio")}


FULL_DISK = """
import shutil, sys, numpy as np
from mpi4py import MPI
from hpcx.errors import HpcxError
from hpcx.io import hdf5
path, layout, how = sys.argv[1], sys.argv[2], sys.argv[3]
comm = MPI.COMM_WORLD
free = shutil.disk_usage(path.rsplit('/', 1)[0]).free
# 'over': far more than fits. 'edge': the data alone fits, so the check before writing must allow for HDF5's
# metadata (mpio) or the other ranks' parts (per-rank, where the filesystem itself runs out mid-write).
per_rank = (4 * free if how == 'over' else free - 2048) // comm.size // 8
try:
    with hdf5.create(path, comm, layout=layout) as f:
        f.write("x", np.ones(per_rank, dtype="f8"))
except HpcxError as exc:
    print(f"rank {comm.rank}: {exc}", file=sys.stderr)
    sys.exit(1)
print("wrote")
"""


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


@pytest.mark.parametrize("layout", ["mpio", "per-rank"])
@pytest.mark.parametrize("how", ["over", "edge"])
def test_a_full_disk_fails_clearly_and_leaves_no_file(small_fs, layout, how, tmp_path):
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK)
    out = small_fs / f"data-{uuid.uuid4().hex[:6]}.h5"
    proc = mpirun(2, str(script), str(out), layout, how)
    assert proc.returncode != 0, proc.stdout
    assert "wrote" not in proc.stdout
    err = proc.stderr
    assert str(out) in err and "free" in err, err
    assert "Traceback" not in err and "Segmentation" not in err, err
    if how == "over":
        assert "needs" in err, err
    # Nothing that looks like a finished file: no data.h5, no parts, no temporary files left behind.
    assert list(small_fs.iterdir()) == [], list(small_fs.iterdir())


def test_h5py_without_mpi_falls_back_to_per_rank_files(monkeypatch, tmp_path):
    import h5py
    import numpy as np
    from mpi4py import MPI

    from hpcx.io import hdf5

    monkeypatch.setattr(h5py, "get_config", lambda: type("C", (), {"mpi": False})())
    with hdf5.create(tmp_path / "d.h5", MPI.COMM_SELF) as f:
        assert (f.layout, f.reason) == ("per-rank", f"h5py {h5py.__version__} was built without MPI")
        f.write("x", np.arange(5.0))
    monkeypatch.undo()
    with h5py.File(tmp_path / "d.h5") as f:
        assert f["x"].is_virtual and f["x"][()].tolist() == [0, 1, 2, 3, 4]
    from hpcx.errors import RuntimeFailure

    monkeypatch.setattr(h5py, "get_config", lambda: type("C", (), {"mpi": False})())
    with pytest.raises(RuntimeFailure, match="built without MPI, so layout 'mpio' is impossible"):
        hdf5.create(tmp_path / "e.h5", MPI.COMM_SELF, layout="mpio")


def test_dtype_mismatch_warns_and_objects_are_refused(tmp_path):
    import h5py
    import numpy as np

    from hpcx.errors import UsageError
    from hpcx.io import hdf5

    with hdf5.create(tmp_path / "d.h5") as f:
        with pytest.warns(RuntimeWarning, match="converting float64 in memory to the dataset's float32"):
            f.write("x", np.linspace(0, 1, 7), dtype="f4")
        with pytest.raises(UsageError, match="holds Python objects"):
            f.write("s", np.array(["a", None], dtype=object))
        with pytest.raises(UsageError, match="scalar cannot be split"):
            f.write("k", np.float64(3.0))
        f.write("k", np.float64(3.0), distributed=False)
    with h5py.File(tmp_path / "d.h5") as f:
        assert f["x"].dtype == np.float32 and f["k"][()] == 3.0 and "s" not in f
    with pytest.raises(UsageError, match="is not one of auto, mpio, per-rank"):
        hdf5.create(tmp_path / "e.h5", layout="fast")
    assert not (tmp_path / "e.h5").exists()


def test_an_exception_inside_the_block_leaves_nothing(tmp_path):
    import numpy as np

    from hpcx.io import hdf5

    with pytest.raises(KeyError), hdf5.create(tmp_path / "d.h5") as f:
        f.write("x", np.arange(3))
        raise KeyError("the job failed halfway")
    assert list(tmp_path.iterdir()) == []


def test_fs_info_reads_the_mount_table(tmp_path):
    from hpcx.io import hdf5

    info = hdf5.fs_info(tmp_path)
    assert info.fs_type != "unknown" and info.block_size >= 512 and info.alignment == info.block_size
    proc_mounts = {line.split()[1]: line.split()[2] for line in open("/proc/mounts")}
    assert proc_mounts.get(info.mount_point) == info.fs_type
    lustre = hdf5.FsInfo("lustre", "/lus", 4096, stripe_size=1 << 20, stripe_count=8)
    kwargs = hdf5.file_kwargs(lustre)
    assert (kwargs["alignment_interval"], kwargs.get("locking")) == (1 << 20, False) and lustre.network
    assert "locking" not in hdf5.file_kwargs(info) or info.network
