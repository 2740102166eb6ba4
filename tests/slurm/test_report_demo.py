"""`scripts/demo`, the README's first command, as a new user runs it (set-up and the test bed are already there,
so those steps take seconds): every line it prints says what it is (no bare job id), and the report counts the
HDF5 file the demo job writes through hpcx.io."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slurm


def test_demo_prints_labelled_lines_and_counts_its_hdf5_write(testbed, runs_root):
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "demo")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**_env(), "HPCX_RUNS": str(runs_root)},
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after_submit = proc.stdout[proc.stdout.index("+ hpcx submit") :]
    bare = [line for line in (after_submit + proc.stderr).splitlines() if re.fullmatch(r"\s*\d+\s*", line)]
    assert bare == [], "a bare number among the demo's lines"
    run_id, job_id = re.search(r"^  run (\S+) \(Slurm job (\d+)\)$", after_submit, re.MULTILINE).groups()
    assert f"run {run_id}  job {job_id}  kind mpi" in after_submit
    assert re.search(r"^  I/O: write 1\.0 MiB", after_submit, re.MULTILINE), after_submit
    report = json.loads((runs_root / run_id / "report" / "report.json").read_text())
    assert report["io"]["total"]["write"]["bytes"] == 2 * 65536 * 8  # two ranks' rows of float64
    page = (runs_root / run_id / "report" / "report.html").read_text()
    assert "no I/O through hpcx.io" not in page
    # Each unavailable counter's reason once, for both nodes.
    assert after_submit.count("no RAPL zones") <= 1


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "SLURM_", "SBATCH_"))}
