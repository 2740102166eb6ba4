"""The wheel carries the job templates, and its base install is what a login node needs, nothing heavy."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_ships_templates_and_a_light_base_install(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("hpcx-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert {"hpcx/job_templates/base.sbatch.j2", "hpcx/job_templates/mpi.sbatch.j2", "hpcx/py.typed"} <= names
    # Every module in the source tree is in the wheel (a package left out of pyproject's list would be missing).
    sources = {
        p.relative_to(REPO).as_posix() for p in (REPO / "hpcx").rglob("*.py") if "__pycache__" not in p.parts
    }
    assert sources - names == set()
    base = [
        line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    for heavy in ("torch", "mpi4py", "h5py", "numpy"):
        assert not any(heavy in line for line in base), base
