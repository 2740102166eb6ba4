"""Job names a person can read: without -J the job is named after the program the command runs (issue 30, item 2).

squeue and sacct showed a column of identical 'hpcx' names; the name now comes from the command, kept short and
plain, and -J and #SBATCH -J still win.
"""

from __future__ import annotations

import re

import pytest

from hpcx.submit.submission import JOB_NAME_MAX, default_job_name

_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:@-]*$")


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["python", "train.py"], "train"),
        (["python", "-m", "pkg.mod"], "mod"),
        (["python3", "-mpkg.sub.main", "--epochs", "3"], "main"),
        (["./job.sh"], "job"),
        (["/usr/bin/python3.11", "-u", "-X", "dev", "src/models/fit_model.py", "--lr", "0.1"], "fit_model"),
        (["OMP_NUM_THREADS=4", "python", "bench.py"], "bench"),
        (["bash", "scripts/prepare-data.sh"], "prepare-data"),
        (["examples/allreduce_hdf5", "--rows", "64"], "allreduce_hdf5"),
        (["python", "-c", "print(1)"], "python"),
    ],
)
def test_the_default_job_name_is_the_program_the_command_runs(command, name):
    assert default_job_name(command) == name


@pytest.mark.parametrize(
    "command",
    [
        ["python", 'it\'s "a"\nnew line; rm -rf ~.py'],
        ["x" * 300 + ".py"],
        ["$(reboot)", "--now"],
        ["python", "-m", "--"],
        ["ééé"],
        [],
    ],
)
def test_a_hostile_command_gives_a_safe_short_name(command):
    name = default_job_name(command)
    assert _PLAIN.match(name), name
    assert len(name) <= JOB_NAME_MAX


def test_dry_run_names_the_job_after_the_script(hpcx):
    out = hpcx("submit", "--dry-run", "serial", "-t", "5", "python", "train.py", "--lr", "0.1").stdout
    assert "#SBATCH --job-name=train\n" in out


def test_minus_J_still_wins(hpcx):
    out = hpcx("submit", "--dry-run", "serial", "-J", "mine", "python", "train.py").stdout
    assert "#SBATCH --job-name=mine\n" in out


def test_an_own_scripts_job_name_line_still_wins(hpcx, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH -J from-script\n#SBATCH -t 5\npython train.py\n")
    doc = hpcx.json("submit", "--dry-run", str(script))
    assert not any(a.startswith("--job-name") for a in doc["sbatch_args"]), doc["sbatch_args"]
    assert "#SBATCH -J from-script" in doc["script"]


def test_a_hostile_command_renders_one_plain_job_name_line(hpcx):
    out = hpcx(
        "submit", "--dry-run", "serial", "python", "a b'\"$(x)\n#SBATCH --x=1" + "y" * 300 + ".py"
    ).stdout
    (line,) = [ln for ln in out.splitlines() if ln.startswith("#SBATCH --job-name=")]
    name = line.split("=", 1)[1]
    assert _PLAIN.match(name) and len(name) <= JOB_NAME_MAX, line
    header = out.split("\nset -euo pipefail", 1)[0]  # the #SBATCH lines Slurm reads
    assert "--x=1" not in header


def test_a_sweeps_arrays_carry_the_sweeps_name(hpcx, tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        'name: lr-scan\ncommand: [python, train.py, "{lr}"]\nparameters: {grid: {lr: [0.1, 0.2]}}\n'
    )
    script = hpcx.json("sweep", str(spec), "--dry-run")["script"]
    assert "#SBATCH --job-name=lr-scan\n" in script
