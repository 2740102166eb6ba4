"""The admin's site tools on the real local Slurm cluster: `hpcx site discover` and `hpcx site diff`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slurm

# What examples/sites/testbed.yaml does not say that the cluster does (MaxArraySize=1001). The site file is
# owned elsewhere; when it gains `max_array_size: 1001` on each partition, empty this list.
KNOWN_TESTBED_DRIFT: list[dict] = []


@pytest.fixture
def discovered(testbed: Path, hpcx, tmp_path: Path) -> Path:
    """The site file `hpcx site discover -o` drafts from the running cluster."""
    path = tmp_path / "discovered.yaml"
    proc = hpcx("site", "discover", "-o", str(path))
    assert proc.stdout.strip() == f"wrote {path} (cluster hpcxtest)"
    return path


def test_discover_drafts_a_valid_site_with_the_real_limits(discovered: Path, hpcx):
    assert hpcx("site", "validate", str(discovered)).returncode == 0
    text = discovered.read_text()
    assert text.startswith("# Discovered by `hpcx site discover` from Slurm cluster hpcxtest (Slurm 22.05")
    cluster = yaml.safe_load(text)["clusters"]["hpcxtest"]
    parts = cluster["partitions"]
    assert list(parts) == ["debug", "batch", "gpu"] and cluster["default_partition"] == "debug"
    assert (parts["debug"]["max_time"], parts["debug"]["max_nodes"]) == ("00:30:00", 2)
    assert (parts["gpu"]["gpus_per_node"], parts["gpu"]["gpu_type"]) == (2, "tesla")
    assert parts["debug"]["gpus_per_node"] == 0  # n1 has no GPU
    assert cluster["launchers"]["srun"] == {"type": "srun", "mpi": "pmix"}


def test_discover_prints_yaml_without_o_and_refuses_to_overwrite(discovered: Path, hpcx):
    printed = hpcx("site", "discover")
    assert printed.returncode == 0
    assert yaml.safe_load(printed.stdout) == yaml.safe_load(discovered.read_text())
    again = hpcx("site", "discover", "-o", str(discovered), check=False)
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    assert hpcx("site", "discover", "-o", str(discovered), "--force").returncode == 0


def test_discovered_site_has_no_drift(discovered: Path, hpcx):
    proc = hpcx("--site", str(discovered), "site", "diff")  # fails the test on a non-zero exit
    assert proc.stdout.strip() == f"{discovered}: no drift from cluster hpcxtest"


def test_testbed_site_file_against_the_cluster(testbed: Path, hpcx):
    proc = hpcx("--json", "--site", str(testbed), "site", "diff", check=False)
    drift = json.loads(proc.stdout)["drift"]
    assert drift == KNOWN_TESTBED_DRIFT, proc.stdout
    assert proc.returncode == (1 if drift else 0)


def test_pinned_keys_of_site_diff(testbed: Path, hpcx):
    proc = hpcx("--json", "--site", str(testbed), "site", "diff", check=False)
    assert proc.returncode in (0, 1), proc.stderr  # 1: the site file and the cluster differ, like diff
    doc = json.loads(proc.stdout)
    assert doc["hpcx"] == 1 and set(doc) - {"hpcx"} == {"kind", "site", "cluster", "drift"}


def test_a_changed_limit_is_reported_alone_and_exits_1(testbed: Path, hpcx, tmp_path: Path):
    doc = yaml.safe_load(testbed.read_text())
    for part in doc["clusters"]["hpcxtest"]["partitions"].values():
        part["max_array_size"] = 1001  # leave only the drift this test makes (see KNOWN_TESTBED_DRIFT)
    doc["clusters"]["hpcxtest"]["partitions"]["debug"]["max_time"] = "01:00:00"
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(doc))

    proc = hpcx("--site", str(changed), "site", "diff", check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "partition debug: max_time site 01:00:00, cluster 00:30:00\n"
    doc = json.loads(hpcx("--json", "--site", str(changed), "site", "diff", check=False).stdout)
    assert doc["kind"] == "site.diff" and doc["drift"] == [
        {"partition": "debug", "field": "max_time", "site": "01:00:00", "cluster": "00:30:00"}
    ]
