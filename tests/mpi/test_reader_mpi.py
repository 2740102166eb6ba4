"""The training reader under real Open MPI: ranks from the launcher, two DataLoader workers each, no MPI."""

from __future__ import annotations

import textwrap

import pytest

from tests.mpi.mpirun import mpirun

pytestmark = pytest.mark.mpi
np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")
pytest.importorskip("torch")

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np

    from hpcx.io.reader import HDF5Reader

    data, out = sys.argv[1], Path(sys.argv[2])
    reader = HDF5Reader(data, ["x", "y"], batch_size=8, seed=3, block_rows=32)  # rank and size from mpirun
    ids = [y.numpy() for x, y in reader.loader(num_workers=2, multiprocessing_context="fork", timeout_s=60)]
    np.save(out / f"rank-{reader.rank}.npy", np.concatenate(ids))
    mpi = sorted(m for m in sys.modules if m.startswith("mpi4py"))
    print(f"rank {reader.rank} of {reader.world_size}: {len(ids)} batches, mpi modules {mpi}", flush=True)
    """
)


@pytest.mark.parametrize("n", [1, 2])
def test_each_rank_reads_its_share_with_workers_and_without_mpi(n, tmp_path):
    data = tmp_path / "d.h5"
    with h5py.File(data, "w") as f:
        f.create_dataset("x", data=np.zeros((640, 2), "f4"), chunks=(32, 2))
        f.create_dataset("y", data=np.arange(640), chunks=(32,))
    script = tmp_path / "read.py"
    script.write_text(SCRIPT)
    proc = mpirun(n, str(script), str(data), str(tmp_path), timeout_s=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rank in range(n):
        assert f"rank {rank} of {n}: {80 // n} batches, mpi modules []" in proc.stdout
    rows = np.concatenate([np.load(tmp_path / f"rank-{rank}.npy") for rank in range(n)])
    assert sorted(rows.tolist()) == list(range(640))
