"""Replacing an HDF5 file written through the per-rank fallback is atomic: a writer killed with SIGKILL at any
step of the stitch leaves the old file, whole and readable with its old values, or the new one; never nothing,
never a file whose virtual datasets point at deleted parts (h5py reads those as zeros, silently)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

h5py = pytest.importorskip("h5py")
np = pytest.importorskip("numpy")

REPO = Path(__file__).resolve().parents[3]
ROWS = 1000

# One process writes data.h5 with layout="per-rank" (rank 0 of 1 stitches its own part). With a kill point K,
# it prints every file operation of the stitch (rename, delete, ...) before doing it and kills itself with
# SIGKILL before the K-th: the crash of a node or a job killed at its time limit, at that exact moment.
WRITER = """
import os, shutil, signal, sys
import numpy as np
from hpcx.io import hdf5, hdf5_parts

path, value, kill_at, rows = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
state = {"stitching": False, "ops": 0}

def before(name, fn):
    def wrapped(*args, **kwargs):
        if state["stitching"]:
            print(name, *map(str, args[:2]), flush=True)
            if state["ops"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            state["ops"] += 1
        return fn(*args, **kwargs)
    return wrapped

for name in ("replace", "rename", "unlink", "rmdir", "mkdir"):
    setattr(os, name, before(name, getattr(os, name)))
shutil.rmtree = before("rmtree", shutil.rmtree)
real_stitch = hdf5_parts.stitch

def stitch(*args, **kwargs):
    state["stitching"] = True
    try:
        return real_stitch(*args, **kwargs)
    finally:
        state["stitching"] = False

hdf5_parts.stitch = stitch
with hdf5.create(path, layout="per-rank") as f:
    f.write("x", np.full(rows, value))
    f.set_attrs(version=value)
print("done", flush=True)
"""


def _write(path: Path, value: float, kill_at: int = -1) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "HPCX_HDF5_LAYOUT")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
    return subprocess.run(
        [sys.executable, "-c", WRITER, str(path), str(value), str(kill_at), str(ROWS)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _content(path: Path) -> tuple[float, list[float]]:
    """The file's version attribute and the distinct values of its dataset, read the way a user reads it."""
    with h5py.File(path, "r") as f:
        assert f["x"].is_virtual and f["x"].shape == (ROWS,)
        return float(f.attrs["version"]), sorted(set(f["x"][()].tolist()))


def test_a_writer_killed_at_any_step_of_the_stitch_leaves_the_old_file_or_the_new_one(tmp_path):
    old = tmp_path / "old" / "data.h5"
    old.parent.mkdir()
    first = _write(old, 1.0)
    assert first.returncode == 0 and "done" in first.stdout, first.stderr
    assert _content(old) == (1.0, [1.0])

    # How many file operations replacing the file takes (a dry run, not killed).
    dry = tmp_path / "dry"
    shutil.copytree(old.parent, dry)
    counted = _write(dry / "data.h5", 2.0)
    assert counted.returncode == 0, counted.stderr
    ops = [line for line in counted.stdout.splitlines() if line != "done"]
    assert any(line.startswith("replace") and line.endswith(str(dry / "data.h5")) for line in ops), ops

    for kill_at in range(len(ops)):
        work = tmp_path / f"kill-{kill_at}"
        shutil.copytree(old.parent, work)
        target = work / "data.h5"
        killed = _write(target, 2.0, kill_at)
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stdout, killed.stderr)
        done = killed.stdout.splitlines()[:-1]  # the last line is the operation it was killed before
        renamed = any(line.startswith("replace") and line.endswith(str(target)) for line in done)
        want = (2.0, [2.0]) if renamed else (1.0, [1.0])
        assert target.exists(), f"killed before {killed.stdout.splitlines()[-1]!r}: no file at all"
        assert _content(target) == want, f"killed before {killed.stdout.splitlines()[-1]!r}"

        # The next write (the requeued job) succeeds, and only its file and its own parts are left.
        again = _write(target, 3.0)
        assert again.returncode == 0, again.stderr
        assert _content(target) == (3.0, [3.0])
        assert [p.name for p in (work / "data.h5.parts").rglob("*") if p.is_file()] == ["rank-00000.h5"]
        assert sorted(p.name for p in work.iterdir() if not p.name.startswith(".")) == [
            "data.h5",
            "data.h5.parts",
        ]


def test_a_failed_stitch_keeps_the_old_file_and_leaves_no_new_parts(tmp_path, monkeypatch):
    from hpcx.errors import RuntimeFailure
    from hpcx.io import hdf5

    path = tmp_path / "data.h5"
    with hdf5.create(path, layout="per-rank") as f:
        f.write("x", np.full(ROWS, 1.0))
        f.set_attrs(version=1.0)
    real_replace = os.replace

    def no_space_for_the_file(src, dst):
        if Path(dst) == path:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", no_space_for_the_file)
    with (
        pytest.raises(RuntimeFailure, match="No space left on device"),
        hdf5.create(path, layout="per-rank") as f,
    ):
        f.write("x", np.full(ROWS, 2.0))
        f.set_attrs(version=2.0)
    monkeypatch.undo()
    assert _content(path) == (1.0, [1.0])
    assert len(list((tmp_path / "data.h5.parts").iterdir())) == 1  # the old file's parts only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5", "data.h5.parts"]


def test_a_plain_file_written_over_a_per_rank_one_leaves_no_parts(tmp_path):
    from hpcx.io import hdf5

    path = tmp_path / "data.h5"
    with hdf5.create(path, layout="per-rank") as f:
        f.write("x", np.full(ROWS, 1.0))
    with hdf5.create(path) as f:  # one process, no communicator: a plain file
        assert f.layout == "serial"
        f.write("x", np.full(ROWS, 2.0))
    with h5py.File(path, "r") as f:
        assert not f["x"].is_virtual and set(f["x"][()].tolist()) == {2.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5"]
