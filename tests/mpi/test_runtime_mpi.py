"""The runtime under real Open MPI: mpirun -n 1 and -n 2, mpi4py + torch.distributed (gloo) + parallel HDF5."""

import subprocess
import sys

import pytest

from tests.mpi.mpirun import mpirun

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("n", [1, 2])
def test_example_runs_at_any_size(n, tmp_path):
    out = tmp_path / "x.h5"
    proc = mpirun(n, "examples/allreduce_hdf5.py", "--out", str(out), "--seconds", "0.2", "--rows", "1000")
    assert proc.returncode == 0, proc.stderr
    expected = n * (n + 1) // 2
    assert (
        f"rank 0 of {n} on" in proc.stdout
        and f"mpi allreduce={expected} torch allreduce={expected}" in proc.stdout
    )
    import h5py

    with h5py.File(out, "r") as f:
        assert f["x"].shape == (n, 1000) and list(f["x"][:, 0]) == list(range(n))


@pytest.mark.parametrize("n", [1, 2])
def test_hpcx_run_writes_one_record_file_per_rank(n, tmp_path):
    proc = mpirun(
        n,
        "-m",
        "hpcx.run",
        "--profile-dir",
        str(tmp_path),
        "--interval",
        "0.2",
        "--",
        sys.executable,
        "-c",
        "import time; x = bytearray(50 << 20); time.sleep(1)",
    )
    assert proc.returncode == 0, proc.stderr
    from hpcx.rundir.records import read_records

    files = sorted(tmp_path.glob("rank-*.jsonl"))
    assert [f.name for f in files] == [f"rank-{r:05d}.jsonl" for r in range(n)]
    for rank, f in enumerate(files):
        recs = list(read_records(f))
        assert recs[0]["type"] == "start" and recs[0]["rank"] == rank and recs[0]["size"] == n
        assert recs[-1]["type"] == "end" and recs[-1]["exit_code"] == 0
        assert recs[-1]["peak_rss_mb"] > 50  # the 50 MiB bytearray was seen
        assert sum(r["type"] == "sample" for r in recs) >= 2


def test_one_failing_rank_aborts_the_job_instead_of_hanging(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(
        "from hpcx import runtime\n"
        "with runtime.session(torch_backend=None) as ctx:\n"
        "    if ctx.rank == 1:\n"
        "        raise ValueError('rank 1 broke')\n"
        "    ctx.comm.Barrier()\n"
    )
    proc = mpirun(2, str(script), timeout_s=60)
    assert proc.returncode != 0
    assert "rank 1 failed, aborting all ranks: rank 1 broke" in proc.stderr


def test_exit_code_and_signals_pass_through_hpcx_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx.run", "--profile-dir", str(tmp_path), "--", "bash", "-c", "exit 7"],
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 7


def test_open_shared_explains_a_serial_h5py(monkeypatch, tmp_path):
    import h5py

    from hpcx.errors import RuntimeFailure
    from hpcx.runtime.hdf5 import open_shared

    monkeypatch.setattr(h5py, "get_config", lambda: type("C", (), {"mpi": False})())
    with pytest.raises(RuntimeFailure, match="built without MPI.*HDF5_MPI=ON"):
        open_shared(tmp_path / "x.h5", "w", comm=None)
