"""The command line as a Slurm user types it: hpcx's options end at the command's first word (with or without
`--`), and `--set NAME=VALUE` reaches the job as $HPCX_VAR_<NAME> in upper case, the rule sweeps' $HPCX_PARAM_
follow. Jobs here run on the local backend, for real."""

import json

import click
import pytest

PRINT_ARGV = ("python", "-c", "import sys; print('argv', sys.argv[1:])")


def _launch_line(script: str) -> str:
    return next(line for line in script.splitlines() if "-m hpcx.run" in line)


@pytest.mark.parametrize("dash", [[], ["--"]], ids=["no-dashes", "dashes"])
def test_program_flags_after_the_command_stay_the_programs(hpcx, dash):
    out = hpcx(
        "render", "serial", *dash, "python", "train.py", "-N", "2", "-p", "batch", "--lr", "0.01"
    ).stdout
    assert _launch_line(out).endswith("-- python train.py -N 2 -p batch --lr 0.01")
    # nothing asked of hpcx: no node count of its own (sbatch's default, one node), nor the program's -N 2
    assert "#SBATCH --nodes" not in out and "--partition=batch" not in out


def test_options_before_the_command_are_hpcxs(hpcx):
    out = hpcx(
        "render", "-t", "7", "serial", "-J", "prep", "--set=seed=3", "-c2", "python", "x.py", "-t", "9"
    ).stdout
    assert "#SBATCH --time=00:07:00\n" in out and "#SBATCH --job-name=prep\n" in out
    assert "#SBATCH --cpus-per-task=2\n" in out and "export HPCX_VAR_SEED=3\n" in out
    assert _launch_line(out).endswith("-- python x.py -t 9")


def test_an_unknown_option_before_the_command_is_still_an_error(hpcx):
    proc = hpcx("render", "serial", "--bogus", "python", "x.py", check=False)
    assert proc.returncode == 2 and "No such option '--bogus'" in proc.stderr


def test_submitted_program_gets_its_own_flags(hpcx):
    doc = hpcx.json("submit", "serial", *PRINT_ARGV, "-N", "2", "--lr", "0.01", "--dry-run")
    assert doc["run_id"]
    assert hpcx.wait_finished(doc["run_id"], timeout_s=60)["state"] == "COMPLETED"
    assert "argv ['-N', '2', '--lr', '0.01', '--dry-run']" in hpcx("logs", doc["run_id"]).stdout


def test_set_names_are_upper_case_in_the_job(hpcx):
    doc = hpcx.json(
        "submit",
        "serial",
        "--set",
        "seed=1",
        "--set",
        "Lr=0.5",
        "python",
        "-c",
        "import os; print('got', os.environ['HPCX_VAR_SEED'], os.environ['HPCX_VAR_LR'])",
    )
    assert hpcx.wait_finished(doc["run_id"], timeout_s=60)["state"] == "COMPLETED"
    assert "got 1 0.5" in hpcx("logs", doc["run_id"]).stdout


def test_set_names_that_differ_only_in_case_are_refused(hpcx):
    proc = hpcx("render", "serial", "--set", "seed=1", "--set", "SEED=2", "true", check=False)
    assert proc.returncode == 2 and "--set seed and --set SEED both set $HPCX_VAR_SEED" in proc.stderr


def test_help_states_the_rules(hpcx):
    out = " ".join(hpcx("submit", "--help").stdout.split())
    assert "$HPCX_VAR_<NAME> in the job: NAME in upper case, as a sweep's $HPCX_PARAM_<NAME>" in out
    assert "Options end at the command's first word" in out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["serial", "python", "t.py", "-N", "2"], ["--", "serial", "python", "t.py", "-N", "2"]),
        (["-N", "2", "serial", "--", "t", "--lr", "1"], ["-N", "2", "--", "serial", "t", "--lr", "1"]),
        (
            ["serial", "-t5", "--time=6", "-p", "x", "cmd"],
            ["-t5", "--time=6", "-p", "x", "--", "serial", "cmd"],
        ),
        (
            ["serial", "--profile", "--dry-run", "cmd", "--profile"],
            ["--profile", "--dry-run", "--", "serial", "cmd", "--profile"],
        ),
        (["./job.sh", "-t", "30"], ["-t", "30", "--", "./job.sh"]),
        (["--help"], ["--help", "--"]),
    ],
)
def test_split_at_command(args, expected):
    from hpcx.cli.jobs import split_at_command, submit

    with click.Context(submit) as ctx:
        assert split_at_command(args, submit.get_params(ctx)) == expected


def test_json_render_keeps_the_command(hpcx):
    doc = json.loads(hpcx("--json", "render", "serial", "python", "t.py", "--json").stdout)
    assert _launch_line(doc["script"]).endswith("-- python t.py --json")


def test_words_after_an_own_script_are_refused_not_dropped(hpcx, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text('#!/bin/bash\n#SBATCH -t 5\necho "$@"\n')
    proc = hpcx("submit", "--dry-run", str(script), "-t", "3", "data.h5", "--lr", "0.1", check=False)
    assert proc.returncode == 2 and "hpcx does not pass arguments to it ('data.h5 --lr 0.1')" in proc.stderr
