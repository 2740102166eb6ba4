"""MPICH's launcher beside Open MPI (Debian's `mpich` package): `mpiexec.mpich -n 2` starts two ranks that know
it, through PMI_RANK/PMI_SIZE/MPI_LOCALRANKID (Intel MPI sets the same), not one rank twice."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpcx.rundir.records import read_records
from tests.mpi.mpirun import REPO

MPIEXEC = shutil.which("mpiexec.mpich")
LIBMPICH = Path("/usr/lib/x86_64-linux-gnu/libmpich.so.12")
pytestmark = pytest.mark.skipif(
    MPIEXEC is None, reason="Debian's mpich is not installed (scripts/setup does)"
)


def _mpiexec(n: int, argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # The mpi4py wheel's MPICH build links libmpi.so.12 (the MPICH ABI name); Debian calls it libmpich.so.12.
    libdir = tmp_path / "lib"
    libdir.mkdir(exist_ok=True)
    if not (libdir / "libmpi.so.12").exists():
        (libdir / "libmpi.so.12").symlink_to(LIBMPICH)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_", "SLURM_", "HPCX_"))
    }
    env.update(LD_LIBRARY_PATH=str(libdir), MPI4PY_MPIABI="mpich", GLOO_SOCKET_IFNAME="lo")
    return subprocess.run(
        [MPIEXEC, "-n", str(n), sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )


def test_hpcx_run_under_mpiexec_mpich_sees_two_ranks(tmp_path):
    out = _mpiexec(
        2,
        [
            "-m",
            "hpcx.run",
            "--profile-dir",
            str(tmp_path / "p"),
            "--",
            sys.executable,
            "-c",
            "import os; os.write(1, f\"rank {os.environ['HPCX_RANK']} of {os.environ['HPCX_WORLD_SIZE']}\\n\".encode())",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(line for line in out.stdout.splitlines() if line.startswith("rank")) == [
        "rank 0 of 2",
        "rank 1 of 2",
    ]
    starts = [next(read_records(f)) for f in sorted((tmp_path / "p").glob("rank-*.jsonl"))]
    assert [(s["rank"], s["size"], s["local_rank"], s["launcher"]) for s in starts] == [
        (0, 2, 0, "mpiexec"),
        (1, 2, 1, "mpiexec"),
    ]


@pytest.mark.skipif(not LIBMPICH.exists(), reason="libmpich12 is not installed")
def test_runtime_init_under_mpiexec_mpich_passes_the_geometry_check(tmp_path):
    job = (
        "import os\nfrom hpcx import runtime\n"
        "with runtime.session(torch_backend='gloo') as ctx:\n"
        "    import torch, torch.distributed as dist\n"
        "    t = torch.ones(1) * (ctx.rank + 1); dist.all_reduce(t)\n"
        "    line = f'rank {ctx.rank} of {ctx.size} sum {int(t.item())} {type(ctx.comm).__module__}\\n'\n"
        "    os.write(1, line.encode())  # one write: the two ranks' lines never mix\n"
    )
    out = _mpiexec(2, ["-c", job], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(line for line in out.stdout.splitlines() if line.startswith("rank")) == [
        "rank 0 of 2 sum 3 mpi4py.MPI",
        "rank 1 of 2 sum 3 mpi4py.MPI",
    ]
