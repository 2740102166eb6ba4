"""The first hour on a real cluster (issue 30), on the test cluster, as a new user meets it: no site file anywhere,
so `hpcx submit` takes the live Slurm cluster (and says so), jobs get names a person can read in squeue, the local
site only where Slurm does not answer, and a user's own batch script with a plain MPI step runs on 2 nodes x 2
tasks with nothing exported by hand."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcx.site import SYSTEM_SITE_FILE
from tests.conftest import Hpcx, _base_env

SLURM_CONF = Path("/etc/slurm/slurm.conf")
WAIT_S = 180


@pytest.fixture
def newcomer(testbed, runs_root, tmp_path) -> Hpcx:
    """The CLI with no site file named anywhere (no HPCX_SITE, no user config, no system-wide file) and an empty
    cache of its own, run from a fresh project directory."""
    if SYSTEM_SITE_FILE.exists():
        pytest.skip(f"{SYSTEM_SITE_FILE} exists on this machine: it would be the site")
    env = _base_env(runs_root)
    env = {k: v for k, v in env.items() if not k.startswith("OMPI_")}  # nothing exported by hand
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CONFIG_DIRS=str(tmp_path / "etc-xdg"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    return Hpcx(env)


@pytest.fixture
def project(tmp_path) -> Path:
    where = tmp_path / "project"
    where.mkdir()
    (where / "train.py").write_text(
        "import sys, time\ntime.sleep(float(sys.argv[1]) if sys.argv[1:] else 0)\nprint('trained')\n"
    )
    return where


def _partitions() -> set[str]:
    out = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=30, check=True)
    return set(out.stdout.split())


def test_submit_without_a_site_file_takes_the_live_cluster(newcomer, project):
    dry = newcomer("submit", "--dry-run", "serial", "-t", "10", "python", "train.py", cwd=project)
    first = dry.stderr.splitlines()[0]
    assert first.startswith("site: live cluster hpcxtest (no site file; discovered from Slurm"), dry.stderr
    assert "hpcx site discover -o FILE" in first
    (partition,) = re.findall(r"^#SBATCH --partition=(\S+)$", dry.stdout, re.M)
    assert partition in _partitions()
    assert "#SBATCH --job-name=train\n" in dry.stdout
    shown = newcomer("config", "show", cwd=project).stdout.splitlines()
    assert shown[0].startswith("site: live cluster hpcxtest") and "within the last" in shown[0]  # cached
    cached = list((Path(newcomer.env["XDG_CACHE_HOME"]) / "hpcx").glob("live-site-*.json"))
    assert len(cached) == 1 and stat.S_IMODE(cached[0].stat().st_mode) == 0o600  # the user's alone

    sub = newcomer.json("submit", "serial", "-t", "5", "python", "train.py", cwd=project)
    assert sub["scheduler"] == "slurm" and sub["job_id"].isdigit(), sub
    row = newcomer.wait_finished(sub["run_id"], timeout_s=WAIT_S)
    assert row["state"] == "COMPLETED", row
    deadline = time.monotonic() + 60
    while True:  # slurmdbd lags: a job's first record may still carry Slurm's placeholder name ("allocation")
        name = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", sub["job_id"], "-o", "JobName"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        if name == ["train"] or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert name == ["train"], (sub, name)


def test_squeue_shows_names_a_person_can_read(newcomer, project):
    (project / "pkg").mkdir()
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pkg" / "prep_data.py").write_text("import time\ntime.sleep(60)\n")
    (project / "job.sh").write_text("#!/bin/bash\nsleep 60\n")
    (project / "job.sh").chmod(0o755)
    commands = {
        "train": ["python", "train.py", "60"],
        "prep_data": ["python", "-m", "pkg.prep_data"],
        "job": ["./job.sh"],
    }
    runs = {}
    try:
        for expected, command in commands.items():
            sub = newcomer.json("submit", "serial", "-t", "2", *command, cwd=project)
            runs[expected] = sub
        ids = ",".join(s["job_id"] for s in runs.values())
        out = subprocess.run(
            ["squeue", "-h", "-j", ids, "-o", "%i %j"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        names = dict(line.split() for line in out.splitlines())
        assert {names[s["job_id"]]: k for k, s in runs.items()} == {k: k for k in commands}
    finally:
        for sub in runs.values():
            newcomer("cancel", sub["run_id"], check=False)


def test_where_slurm_does_not_answer_the_local_site_is_used_and_named(newcomer, project, tmp_path):
    # Slurm installed but its controller down: a slurm.conf whose controller port nobody listens on.
    dead = tmp_path / "slurm.conf"
    dead.write_text(re.sub(r"(?m)^SlurmctldPort=.*$", "SlurmctldPort=1", SLURM_CONF.read_text()))
    down = Hpcx({**newcomer.env, "SLURM_CONF": str(dead)})
    err = down("submit", "--dry-run", "serial", "python", "train.py", cwd=project, timeout_s=90).stderr
    first = err.splitlines()[0]
    assert first.startswith(
        "site: builtin local site, jobs run on this machine (no site file, and Slurm does not answer: "
    ), err
    row = [r for r in down.json("config", "show", timeout_s=90)["values"] if r["key"] == "site"][0]
    assert (row["value"], row["source"]) == ("builtin local site", "builtin")


MPI_SCRIPT = """#!/bin/bash
#SBATCH -N 2
#SBATCH --ntasks-per-node=2
#SBATCH -t 5
srun --mpi=pmix {python} -c "from mpi4py import MPI; c = MPI.COMM_WORLD; \\
print('rank', c.rank, 'of', c.size, 'sum', c.allreduce(c.rank), flush=True)"
"""


def _mpi_script(where: Path) -> Path:
    script = where / "mpi_job.sh"
    script.write_text(MPI_SCRIPT.format(python=sys.executable))
    return script


def test_an_own_script_with_a_plain_mpi_step_runs_with_sbatch(testbed, tmp_path):
    script = _mpi_script(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "SLURM_", "SBATCH_", "HPCX_"))}
    out = tmp_path / "out.txt"
    proc = subprocess.run(
        ["sbatch", "--wait", "-o", str(out), str(script)],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        env=env,
        cwd=tmp_path,
    )
    text = out.read_text() if out.exists() else ""
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}\n{text[-3000:]}"
    assert sorted(re.findall(r"^rank (\d) of 4 sum 6$", text, re.M)) == ["0", "1", "2", "3"], text[-3000:]


def test_an_own_script_with_a_plain_mpi_step_runs_with_hpcx_submit(newcomer, tmp_path):
    script = _mpi_script(tmp_path)
    sub = newcomer.json("submit", str(script), cwd=tmp_path)
    row = newcomer.wait_finished(sub["run_id"], timeout_s=WAIT_S)
    logs = newcomer("logs", sub["run_id"]).stdout
    assert row["state"] == "COMPLETED", f"{row}\n{logs[-3000:]}"
    assert sorted(re.findall(r"rank (\d) of 4 sum 6", logs)) == ["0", "1", "2", "3"], logs[-3000:]
