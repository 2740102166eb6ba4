"""Bad numbers in a site file are refused when it is loaded, before any job is checked against them: zero,
negative, non-numeric and absurd values of every numeric key, each problem one line naming the key's path in the
file, the value found and the limit (what the key must be instead); `hpcx site validate` and every command that
loads the file exit 2. Values Slurm takes (gpus_per_node 0, max_time UNLIMITED) are taken."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hpcx.cli import main
from hpcx.fsutil import load_yaml

REPO = Path(__file__).resolve().parents[3]
TESTBED = load_yaml((REPO / "examples" / "sites" / "testbed.yaml").read_text())
DEBUG = "clusters.hpcxtest.partitions.debug"
GPU = "clusters.hpcxtest.partitions.gpu"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith(("HPCX_", "SLURM_", "SBATCH_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HPCX_RUNS", str(tmp_path / "runs"))


def _site_with(tmp_path: Path, path: str, value: Any) -> Path:
    """The test cluster's site file with the key at dotted ``path`` (``node_types.0.cpus``) set to ``value``."""
    doc = copy.deepcopy(TESTBED)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    node[int(last) if isinstance(node, list) else last] = value
    out = tmp_path / "site.yaml"
    out.write_text(json.dumps(doc))  # JSON is YAML
    return out


def _validate(capsys, site: Path) -> tuple[int, list[str]]:
    code = main(["site", "validate", str(site)])
    err = capsys.readouterr().err
    return code, err.splitlines()


# key path, value, the one line that must say what is wrong (the key, the value, the limit)
ROWS = [
    (f"{DEBUG}.max_time", 0, f"{DEBUG}.max_time: 0 is not a positive time"),
    (f"{DEBUG}.max_time", "0", f"{DEBUG}.max_time: '0' is not a positive time"),
    (f"{DEBUG}.max_time", -5, f"{DEBUG}.max_time: -5 is not a positive time"),
    (
        f"{DEBUG}.max_time",
        "-5",
        f"{DEBUG}.max_time: '-5' is not a Slurm time (MM, HH:MM:SS, D-HH:MM:SS or UNLIMITED)",
    ),
    (
        f"{DEBUG}.max_time",
        "soon",
        f"{DEBUG}.max_time: 'soon' is not a Slurm time (MM, HH:MM:SS, D-HH:MM:SS or UNLIMITED)",
    ),
    (f"{DEBUG}.max_time", 1.5, f"{DEBUG}.max_time: expected string or integer, found float 1.5"),
    (f"{DEBUG}.default_time", 0, f"{DEBUG}.default_time: 0 is not a positive time"),
    (
        f"{DEBUG}.default_time",
        "later",
        f"{DEBUG}.default_time: 'later' is not a Slurm time (MM, HH:MM:SS, D-HH:MM:SS or UNLIMITED)",
    ),
    (
        f"{DEBUG}.default_time",
        "01:00:00",
        f"{DEBUG}.default_time: 01:00:00 is longer than the partition's max_time 00:30:00",
    ),
    (
        f"{DEBUG}.default_time",
        "UNLIMITED",
        f"{DEBUG}.default_time: UNLIMITED is longer than the partition's max_time 00:30:00",
    ),
    (f"{DEBUG}.max_nodes", 0, f"{DEBUG}.max_nodes: 0 is below the minimum 1"),
    (f"{DEBUG}.max_nodes", -2, f"{DEBUG}.max_nodes: -2 is below the minimum 1"),
    (f"{DEBUG}.max_nodes", "two", f"{DEBUG}.max_nodes: expected integer, found a string 'two'"),
    (f"{DEBUG}.max_nodes", 2.5, f"{DEBUG}.max_nodes: expected integer, found float 2.5"),
    (f"{DEBUG}.max_nodes", True, f"{DEBUG}.max_nodes: expected integer, found a boolean True"),
    (f"{DEBUG}.cpus_per_node", 0, f"{DEBUG}.cpus_per_node: 0 is below the minimum 1"),
    (f"{DEBUG}.cpus_per_node", -4, f"{DEBUG}.cpus_per_node: -4 is below the minimum 1"),
    (f"{DEBUG}.cpus_per_node", "4x", f"{DEBUG}.cpus_per_node: expected integer, found a string '4x'"),
    (f"{DEBUG}.mem_per_node_mb", 0, f"{DEBUG}.mem_per_node_mb: 0 is below the minimum 1"),
    (f"{DEBUG}.mem_per_node_mb", -4000, f"{DEBUG}.mem_per_node_mb: -4000 is below the minimum 1"),
    (f"{DEBUG}.mem_per_node_mb", "4G", f"{DEBUG}.mem_per_node_mb: expected integer, found a string '4G'"),
    (f"{GPU}.gpus_per_node", -1, f"{GPU}.gpus_per_node: -1 is below the minimum 0"),
    (f"{GPU}.gpus_per_node", "two", f"{GPU}.gpus_per_node: expected integer, found a string 'two'"),
    (f"{DEBUG}.max_array_size", 0, f"{DEBUG}.max_array_size: 0 is below the minimum 1"),
    (f"{DEBUG}.max_array_size", -1, f"{DEBUG}.max_array_size: -1 is below the minimum 1"),
    (f"{DEBUG}.max_array_size", 4000002, f"{DEBUG}.max_array_size: 4000002 is above the maximum 4000001"),
    (f"{DEBUG}.max_array_size", "1k", f"{DEBUG}.max_array_size: expected integer, found a string '1k'"),
    (f"{DEBUG}.node_types.0.count", 0, f"{DEBUG}.node_types[0].count: 0 is below the minimum 1"),
    (f"{DEBUG}.node_types.0.cpus", 0, f"{DEBUG}.node_types[0].cpus: 0 is below the minimum 1"),
    (
        f"{DEBUG}.node_types.0.cpus",
        "many",
        f"{DEBUG}.node_types[0].cpus: expected integer, found a string 'many'",
    ),
    (f"{DEBUG}.node_types.1.mem_mb", -1, f"{DEBUG}.node_types[1].mem_mb: -1 is below the minimum 1"),
    (f"{DEBUG}.node_types.1.gpus", -2, f"{DEBUG}.node_types[1].gpus: -2 is below the minimum 0"),
    ("defaults.time", 0, "defaults.time: 0 is not a positive time"),
    (
        "defaults.time",
        "soon",
        "defaults.time: 'soon' is not a Slurm time (MM, HH:MM:SS, D-HH:MM:SS or UNLIMITED)",
    ),
    (
        "defaults.time",
        "3-00:00:00",
        "defaults.time: 3-00:00:00 exceeds the max_time of every partition (longest: 2-00:00:00)",
    ),
    (
        "defaults.time",
        "UNLIMITED",
        "defaults.time: 'UNLIMITED' cannot be a default; give a finite time, e.g. 01:00:00",
    ),
    ("defaults.nodes", 0, "defaults.nodes: 0 is below the minimum 1"),
    ("defaults.nodes", "2", "defaults.nodes: expected integer, found a string '2'"),
    ("defaults.nodes", 99, "defaults.nodes: 99 exceeds every partition's MaxNodes (at most 2)"),
    ("defaults.ntasks_per_node", 0, "defaults.ntasks_per_node: 0 is below the minimum 1"),
    (
        "defaults.ntasks_per_node",
        8,
        "defaults.ntasks_per_node x defaults.cpus_per_task: 8 CPUs per node exceeds every partition's nodes (at most 4 CPUs)",
    ),
    ("defaults.cpus_per_task", -1, "defaults.cpus_per_task: -1 is below the minimum 1"),
    (
        "defaults.cpus_per_task",
        5,
        "defaults.ntasks_per_node x defaults.cpus_per_task: 5 CPUs per node exceeds every partition's nodes (at most 4 CPUs)",
    ),
    ("defaults.mem", 0, "defaults.mem: 0 is not a memory size (e.g. 4000M or 4G)"),
    ("defaults.mem", "lots", "defaults.mem: 'lots' is not a memory size (e.g. 4000M or 4G)"),
    (
        "defaults.mem",
        "1T",
        "defaults.mem: 1T (1048576M) exceeds every partition's memory per node (at most 4000M)",
    ),
    ("energy.carbon_intensity_g_per_kwh", -1, "energy.carbon_intensity_g_per_kwh: -1 is below the minimum 0"),
    (
        "energy.carbon_intensity_g_per_kwh",
        5000,
        "energy.carbon_intensity_g_per_kwh: 5000 is above the maximum 2000",
    ),
    (
        "energy.carbon_intensity_g_per_kwh",
        "low",
        "energy.carbon_intensity_g_per_kwh: expected number, found a string 'low'",
    ),
    ("energy.pue", 0.5, "energy.pue: 0.5 is below the minimum 1"),
    ("energy.pue", 0, "energy.pue: 0 is below the minimum 1"),
    ("energy.pue", 9, "energy.pue: 9 is above the maximum 5"),
]


@pytest.mark.parametrize(
    "path, value, expected", ROWS, ids=lambda v: str(v) if not isinstance(v, str) or "." in v else None
)
def test_a_bad_number_in_the_site_file_is_one_line_naming_key_value_and_limit(
    capsys, tmp_path, path, value, expected
):
    site = _site_with(tmp_path, path, value)
    code, lines = _validate(capsys, site)
    assert code == 2, lines
    assert lines[0] == f"hpcx: error: site file {str(site)!r} is invalid:", lines
    assert f"  {expected}" in lines[1:], lines


def test_a_command_that_loads_a_bad_site_file_exits_2_before_checking_anything(capsys, tmp_path):
    site = _site_with(tmp_path, f"{DEBUG}.max_nodes", 0)
    assert main(["--site", str(site), "submit", "--dry-run", "-p", "debug", "serial", "true"]) == 2
    assert f"  {DEBUG}.max_nodes: 0 is below the minimum 1" in capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    "path, value",
    [
        (f"{GPU}.gpus_per_node", 0),
        (f"{DEBUG}.max_time", "UNLIMITED"),
        (f"{DEBUG}.max_time", "infinite"),
        (f"{DEBUG}.max_array_size", 4000001),
        (f"{DEBUG}.node_types.1.gpus", 0),
        ("energy.pue", 1),
        ("energy.carbon_intensity_g_per_kwh", 0),
        ("defaults.time", 30),
        ("defaults.mem", 4000),
        ("defaults.mem", "4000M"),
    ],
)
def test_values_slurm_takes_are_taken(capsys, tmp_path, path, value):
    site = _site_with(tmp_path, path, value)
    code, lines = _validate(capsys, site)
    assert code == 0, lines
