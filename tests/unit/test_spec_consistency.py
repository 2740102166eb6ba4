"""hpcx.spec's value parsers and consistency checks as a user meets them through `hpcx render`: the #SBATCH line a
value becomes, and the refusal (exit 2) that names the value as typed, with the hint that fixes it. What sbatch
22.05 does with the same values was checked with `sbatch --test-only` on the test cluster (scripts/testbed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcx.spec import build_resources
from tests.unit.cli_harness import Result, isolate, run_cli

REPO = Path(__file__).resolve().parents[2]
TESTBED = str(REPO / "examples" / "sites" / "testbed.yaml")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)


def hpcx(*args: str) -> Result:
    return run_cli("--site", TESTBED, *args)


def lines(*options: str) -> list[str]:
    """The #SBATCH lines `hpcx render serial OPTIONS true` writes."""
    result = hpcx("render", "serial", "-p", "debug", *options, "true")
    assert result.code == 0, result
    return [line for line in result.out.splitlines() if line.startswith("#SBATCH ")]


def usage_error(*options: str) -> dict:
    """The error `hpcx submit --dry-run --json` reports for OPTIONS: message, hint, exit code (2)."""
    result = hpcx("submit", "--dry-run", "--json", "serial", "-p", "debug", *options, "true")
    assert result.code == 2, result
    error = json.loads(result.out)["error"]
    assert error["exit_code"] == 2
    return {k: error[k] for k in ("message", "hint")}


# --- --exclusive ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["user", "mcs"])
def test_exclusive_user_or_mcs_reaches_slurm_as_typed(value):
    assert f"#SBATCH --exclusive={value}" in lines(f"--exclusive={value}")


def test_an_exclusive_value_sbatch_lacks_is_refused_naming_it():
    assert usage_error("--exclusive=everyone") == {
        "message": "--exclusive 'everyone' is not user or mcs",
        "hint": "or --exclusive alone",
    }


@pytest.mark.parametrize("value", [True, "true", "True", "1", "yes", "YES", ""])
def test_a_true_exclusive_from_a_file_is_the_plain_flag(value):
    # a sweep spec's or a site's `exclusive: true` (YAML reads it as a bool) means --exclusive alone
    assert build_resources({"exclusive": value}, origins={"exclusive": ("site", None)}).exclusive == ""


@pytest.mark.parametrize("value", ["yes", "true", "topo", "node"])
def test_an_exclusive_value_sbatch_22_05_refuses_is_refused_where_typed(value):
    # sbatch 22.05: "Invalid --exclusive specification" for these, on its command line as in a script
    assert usage_error(f"--exclusive={value}")["message"] == f"--exclusive '{value}' is not user or mcs"


# --- -C ---------------------------------------------------------------------------------------------------------


def test_a_constraint_that_is_no_feature_expression_is_refused_naming_it():
    assert usage_error("-C", "a;b") == {
        "message": "-C 'a;b' is not a feature expression",
        "hint": "features joined by & (and), | (or), e.g. -C 'avx2&ib'",
    }


def test_a_constraint_from_a_script_is_named_by_its_option(tmp_path):
    (tmp_path / "job.sh").write_text("#!/bin/bash\n#SBATCH -p debug\n#SBATCH --constraint=a;b\nsrun true\n")
    result = hpcx("submit", "--dry-run", "--json", "./job.sh")
    assert result.code == 2, result
    assert json.loads(result.out)["error"]["message"] == "--constraint 'a;b' is not a feature expression"


# --- GPUs as [TYPE:]COUNT ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message, hint",
    [
        (("-G", "tesla:two"), "-G 'tesla:two' is not [TYPE:]COUNT", "e.g. -G tesla:2"),
        (
            ("--gpus-per-node", "a b:1"),
            "--gpus-per-node 'a b:1' is not [TYPE:]COUNT",
            "e.g. --gpus-per-node tesla:2",
        ),
    ],
    ids=["-G", "--gpus-per-node"],
)
def test_a_typed_gpu_count_that_is_not_type_and_count_is_refused_with_an_example(options, message, hint):
    assert usage_error(*options) == {"message": message, "hint": hint}


# --- host lists ---------------------------------------------------------------------------------------------------


def test_a_host_list_without_a_name_before_its_brackets_is_refused():
    assert usage_error("-w", "[1-2]") == {
        "message": "-w '[1-2]' is not a host list",
        "hint": "e.g. n[1-4],gpu01",
    }


@pytest.mark.parametrize(
    "typed, line",
    [
        ("n[3-4,6]", "--exclude=n[3-4,6]"),
        ("n3,n4,n6", "--exclude=n[3-4,6]"),
        ("7,8", "--exclude=7,8"),
        ("n[03-04],n05", "--exclude=n[03-05]"),
    ],
)
def test_an_excluded_host_list_is_written_compressed_as_slurm_writes_it(typed, line):
    assert f"#SBATCH {line}" in lines("-n", "1", "-x", typed, "-w", "n2")


def test_a_backwards_range_in_a_host_list_is_refused_naming_it_as_typed():
    assert usage_error("-w", "n[2-1]") == {
        "message": "-w 'n[2-1]': [2-1] is not N or N-M",
        "hint": "e.g. n[1-4]",
    }


@pytest.mark.parametrize(
    "typed, message",
    [
        ("n1,n@2", "-w 'n1,n@2' has 'n@2', not a host name"),
        ("", "-w '' names no host"),
    ],
    ids=["bad name", "empty"],
)
def test_a_host_list_naming_no_good_host_is_refused_naming_it(typed, message):
    assert usage_error("-w", typed) == {
        "message": message,
        "hint": "e.g. n[1-4],gpu01 (letters, digits and . _ -)",
    }


def test_two_bracket_ranges_in_one_host_name_are_no_host_list():
    assert usage_error("-w", "n[1-2][3-4]")["message"] == "-w 'n[1-2][3-4]' is not a host list"


# --- -N MIN-MAX -----------------------------------------------------------------------------------------------------


def test_a_node_range_from_zero_or_backwards_is_refused_with_the_range_meant():
    assert usage_error("-N", "0-2") == {"message": "-N 0-2 starts below 1", "hint": "e.g. -N 1-2"}
    assert usage_error("-N", "2-1") == {
        "message": "-N 2-1 is an empty range",
        "hint": "write the smaller count first: 1-2",
    }


def test_a_bad_node_range_in_the_users_defaults_is_named_there(tmp_path):
    config = tmp_path / "config" / "hpcx" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("version: 1\ndefaults:\n  nodes: '0-2'\n")
    where = f"(from the user config {config})"
    assert usage_error() == {
        "message": f"defaults.nodes 0-2 {where} starts below 1",
        "hint": "e.g. defaults.nodes: 1-2",
    }
    config.write_text("version: 1\ndefaults:\n  nodes: '2-1'\n")
    assert usage_error()["message"] == f"defaults.nodes 2-1 {where} is an empty range"
