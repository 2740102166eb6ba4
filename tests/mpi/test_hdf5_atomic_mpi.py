"""Under real mpirun, 2 ranks replace a per-rank HDF5 file: when rank 0 is killed with SIGKILL just before the
new file is renamed into place, the job dies and the old file is still there, whole, with its old values;
when nothing is killed, the new values are there and only the new file's parts are left."""

from __future__ import annotations

import pytest

from tests.mpi.mpirun import mpirun

h5py = pytest.importorskip("h5py")
pytest.importorskip("mpi4py")
pytestmark = pytest.mark.mpi

# Each rank writes 500 rows of VALUE; with "kill", rank 0 dies at the moment the stitched file would be
# renamed over the old one (the parts of both files are complete on disk by then).
WRITER = """
import os, signal, sys
import numpy as np
from mpi4py import MPI
from hpcx.io import hdf5

path, value, kill = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "kill"
real_replace = os.replace

def replace(src, dst):
    if kill and os.fspath(dst) == path:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)

os.replace = replace
comm = MPI.COMM_WORLD
with hdf5.create(path, comm, layout="per-rank") as f:
    f.write("x", np.full(500, value))
    f.set_attrs(version=value)
print("wrote", value, flush=True)
"""


def _content(path) -> tuple[float, list[float]]:
    with h5py.File(path, "r") as f:
        assert f["x"].is_virtual and f["x"].shape == (1000,)
        return float(f.attrs["version"]), sorted(set(f["x"][()].tolist()))


def test_a_rank_killed_while_replacing_a_per_rank_file_leaves_the_old_file_whole(tmp_path):
    script = tmp_path / "write.py"
    script.write_text(WRITER)
    out = tmp_path / "out"
    out.mkdir()
    path = out / "data.h5"
    first = mpirun(2, str(script), str(path), "1.0", "no")
    assert first.returncode == 0, first.stderr[-3000:]
    assert _content(path) == (1.0, [1.0])

    killed = mpirun(2, str(script), str(path), "2.0", "kill")
    assert killed.returncode != 0 and "wrote" not in killed.stdout, killed.stdout
    assert _content(path) == (1.0, [1.0])  # not missing, not zeros from deleted parts

    again = mpirun(2, str(script), str(path), "3.0", "no")
    assert again.returncode == 0, again.stderr[-3000:]
    assert _content(path) == (3.0, [3.0])
    # The parts of the replaced file and of the killed write are gone: one generation, one part per rank.
    (generation,) = (out / "data.h5.parts").iterdir()
    assert sorted(p.name for p in generation.iterdir()) == ["rank-00000.h5", "rank-00001.h5"]
