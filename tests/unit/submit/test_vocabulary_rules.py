"""sbatch's long options as an own script's #SBATCH lines spell them (hpcx/submit/vocabulary.py): a unique prefix
is the option it begins, as getopt_long (and so sbatch) reads it; a prefix of several and a name sbatch lacks are
refused naming the line, with a guess only where one is close. What sbatch 22.05 does with each (sbatch
--test-only on the test cluster): --ntasks-per-n=2 runs 2 tasks per node; --mem-per-=1G is "ambiguous;
possibilities: '--mem-per-cpu' '--mem-per-gpu'"; --walltime is "unrecognized option"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli_harness import Result, isolate, run_cli

REPO = Path(__file__).resolve().parents[3]
TESTBED = str(REPO / "examples" / "sites" / "testbed.yaml")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)


def dry_run(tmp_path: Path, line: str) -> Result:
    """``hpcx submit --dry-run --json ./job.sh`` in process, the script holding ``#SBATCH -p debug`` and ``line``."""
    (tmp_path / "job.sh").write_text(f"#!/bin/bash\n#SBATCH -p debug\n{line}\nsrun true\n")
    return run_cli("--site", TESTBED, "submit", "--dry-run", "--json", "./job.sh")


@pytest.mark.parametrize(
    "line, key",
    [
        ("#SBATCH --ntasks-per-n=2", "ntasks_per_node"),
        ("#SBATCH --cpus-per-t=2", "cpus_per_task"),
        ("#SBATCH --mem-per-c=1G", "mem_per_cpu_mb"),
    ],
)
def test_a_unique_prefix_of_a_long_option_is_that_option(tmp_path, line, key):
    result = dry_run(tmp_path, line)
    assert result.code == 0, result
    doc = json.loads(result.out)
    assert doc["sources"][key] == "script"


def refused(tmp_path: Path, line: str) -> dict:
    """The error --json reports for ``line``: message, hint and exit code."""
    result = dry_run(tmp_path, line)
    assert result.code == 2, result
    return json.loads(result.out)["error"]


def test_a_prefix_of_several_options_is_refused_as_sbatch_refuses_it(tmp_path):
    error = refused(tmp_path, "#SBATCH --mem-per-=1G")
    assert error["message"] == "line 3: #SBATCH --mem-per- is not an sbatch option (it abbreviates several)"


def test_a_name_like_no_sbatch_option_gets_no_guess(tmp_path):
    # PBS's --walltime is about as like --time as --time-min: hpcx names neither and points to the manual
    assert refused(tmp_path, "#SBATCH --walltime=1:00:00") == {
        "message": "line 3: #SBATCH --walltime is not an sbatch option",
        "hint": "see man sbatch",
        "exit_code": 2,
    }


def test_a_misspelt_option_names_the_nearest_one(tmp_path):
    assert refused(tmp_path, "#SBATCH --nodez-lizt=n1") == {
        "message": "line 3: #SBATCH --nodez-lizt is not an sbatch option",
        "hint": "did you mean --nodelist?",
        "exit_code": 2,
    }


def test_submit_help_says_what_each_option_does():
    from hpcx.submit.vocabulary import OPTIONS

    result = run_cli("submit", "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    missing = [o.long for o in OPTIONS if not o.help or " ".join(o.help.split()) not in text]
    assert not missing, f"--help says nothing of {missing}"


def _sbatch_args(tmp_path: Path, *options: str) -> list[str]:
    (tmp_path / "job.sh").write_text("#!/bin/bash\n#SBATCH -p debug\nsrun true\n")
    result = run_cli("--site", TESTBED, "submit", "--dry-run", "--json", *options, "./job.sh")
    assert result.code == 0, result.err
    return json.loads(result.out)["sbatch_args"]


def test_flags_typed_beside_an_own_script_reach_sbatch_as_flags(tmp_path):
    args = _sbatch_args(tmp_path, "--exclusive", "--hold")
    assert "--exclusive" in args and "--hold" in args, args
    assert "--exclusive=user" in _sbatch_args(tmp_path, "--exclusive=user")


def test_cpu_bind_beside_an_own_script_is_the_jobs_environment_not_an_sbatch_option(tmp_path):
    args = _sbatch_args(tmp_path, "--cpu-bind", "cores")
    assert "--export=ALL,SLURM_CPU_BIND=cores" in args, args
    assert not [a for a in args if a.startswith("--cpu-bind")], args
