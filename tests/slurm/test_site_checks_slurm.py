"""The site file against the real cluster: `hpcx site show` shows the GPUs Slurm has, and a rejection caused by a
site default names the site file (and Slurm refuses the same request)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm
SLURM_TIMEOUT_S = 30


def _gpus_per_node(partition: str) -> list[int]:
    """GPUs on each node of ``partition``, as Slurm's own sinfo reports its GRES."""
    out = subprocess.run(
        ["sinfo", "-p", partition, "-N", "-h", "-o", "%N %G"],
        capture_output=True,
        text=True,
        timeout=SLURM_TIMEOUT_S,
        check=True,
    ).stdout
    counts = []
    for line in out.splitlines():
        m = re.search(r"gpu(?::[^:,\s]+)?:(\d+)", line)
        counts.append(int(m.group(1)) if m else 0)
    return sorted(counts)


def test_site_show_has_the_gpus_slurm_puts_a_gpu_job_on(slurm_hpcx):
    shown = slurm_hpcx("site", "show").stdout
    debug = next(line for line in shown.splitlines() if line.strip().startswith("debug"))
    types = re.findall(r"(\d+) x \((\d+) CPUs, \d+M, (?:no GPUs|(\d+) GPUs)", debug)
    listed = sorted(int(gpus or 0) for count, _, gpus in types for _ in range(int(count)))
    assert listed == _gpus_per_node("debug") == [0, 2], debug

    doc = slurm_hpcx.json(
        "submit",
        "serial",
        "--gpus-per-node",
        "1",
        "-t",
        "5",
        "--",
        "bash",
        "-c",
        'echo "on=$SLURMD_NODENAME"',
    )
    assert doc["partition"] == "debug"  # the automatic choice: debug has a GPU node
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=120)["state"] == "COMPLETED"
    assert "on=n2" in slurm_hpcx("logs", doc["run_id"]).stdout  # the node site show lists with 2 GPUs


def test_a_site_default_that_the_partition_refuses_is_blamed_on_the_site_file(
    slurm_hpcx, runs_root, tmp_path
):
    site = tmp_path / "site.yaml"
    site.write_text(Path(slurm_hpcx.env["HPCX_SITE"]).read_text() + 'defaults: {time: "01:00:00"}\n')
    assert slurm_hpcx("--site", str(site), "site", "validate").returncode == 0  # batch takes an hour

    proc = slurm_hpcx("--site", str(site), "submit", "serial", "-p", "debug", "--", "true", check=False)
    assert proc.returncode == 3
    assert (
        f"defaults.time 01:00:00 (from the site file {site}) exceeds partition debug's MaxTime 00:30:00"
        in proc.stderr
    )
    assert "--time" not in proc.stderr.split(";")[0]
    assert not any(runs_root.iterdir())  # nothing submitted
    slurm = subprocess.run(
        ["sbatch", "--test-only", "-p", "debug", "-t", "01:00:00", "--wrap", "true"],
        capture_output=True,
        text=True,
        timeout=SLURM_TIMEOUT_S,
    )
    assert slurm.returncode != 0 and "time limit" in slurm.stderr  # Slurm would refuse it too


def test_an_environment_value_is_named_as_the_variable_before_slurm_sees_it(slurm_hpcx, runs_root):
    slurm_hpcx.env["HPCX_TIME"] = "2h"
    proc = slurm_hpcx("submit", "serial", "--", "true", check=False)
    assert proc.returncode == 2
    assert "HPCX_TIME='2h' is not a Slurm time" in proc.stderr and "--time" not in proc.stderr
    assert not any(runs_root.iterdir())
