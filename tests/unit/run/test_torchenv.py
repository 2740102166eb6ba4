"""torchrun's variables for the ranks hpcx.run starts in a torch job: the launcher's identity, the step's first
node and Slurm's reserved port; what the user set wins and is named in the log."""

from __future__ import annotations

import pytest

from hpcx.runtime.rankenv import detect
from hpcx.runtime.torchenv import torchrun_env, wanted

SRUN = {
    "SLURM_PROCID": "3",
    "SLURM_STEP_NUM_TASKS": "4",
    "SLURM_LOCALID": "1",
    "SLURM_NODEID": "1",
    "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
    "SLURM_STEP_RESV_PORTS": "12001-12001",
    "HPCX_MASTER_ADDR": "10.0.0.7",
    "HPCX_KIND": "torch-ddp",
}


@pytest.fixture
def srun_env(monkeypatch):
    for key in (
        "RANK",
        "WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
        "LOCAL_WORLD_SIZE",
        "TORCHELASTIC_RUN_ID",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in SRUN.items():
        monkeypatch.setenv(key, value)
    return dict(SRUN)


def test_an_srun_rank_of_a_torch_job_gets_torchruns_variables(srun_env):
    values, notes = torchrun_env(srun_env, detect(srun_env))
    assert values == {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
        "GROUP_RANK": "1",
        "NODE_RANK": "1",
        "MASTER_ADDR": "10.0.0.7",
        "MASTER_PORT": "12001",
    }
    assert notes == []


def test_what_the_user_set_wins_and_is_said(srun_env, monkeypatch):
    monkeypatch.setenv("MASTER_PORT", "29500")
    env = {**srun_env, "MASTER_PORT": "29500", "WORLD_SIZE": "8"}
    values, notes = torchrun_env(env, detect(env))
    assert "MASTER_PORT" not in values and "WORLD_SIZE" not in values
    assert notes == ["WORLD_SIZE=8 set by you, kept (hpcx would set 4)"]


def test_without_a_reserved_port_the_log_says_how_to_get_one(srun_env, monkeypatch):
    monkeypatch.delenv("SLURM_STEP_RESV_PORTS")
    env = {k: v for k, v in srun_env.items() if k != "SLURM_STEP_RESV_PORTS"}
    values, notes = torchrun_env(env, detect(env))
    assert "MASTER_PORT" not in values
    assert (
        notes[0].startswith("MASTER_PORT not set: without MPI to broadcast a port")
        and "--resv-ports" in notes[0]
    )


@pytest.mark.parametrize(
    "extra, command, expected",
    [
        ({}, ["python", "train.py"], True),
        ({"HPCX_KIND": "mpi"}, ["python", "train.py"], False),  # an MPI job's ranks: not torch's contract
        ({"HPCX_KIND": "mpi", "HPCX_TORCH_ENV": "1"}, ["python", "train.py"], True),
        ({"HPCX_TORCH_ENV": "0"}, ["python", "train.py"], False),
        ({}, ["python", "-m", "torch.distributed.run", "train.py"], False),  # torchrun's agent sets its own
        ({}, ["torchrun", "train.py"], False),
        ({"TORCHELASTIC_RUN_ID": "x", "RANK": "0", "WORLD_SIZE": "2"}, ["python", "train.py"], False),
    ],
)
def test_which_commands_get_them(extra, command, expected):
    env = {**SRUN, **extra}
    assert wanted(env, detect(env), command) is expected


def test_a_torch_jobs_command_exits_with_torch_distributed_torn_down(tmp_path):
    """The command of a torch job finds hpcx's exit hook first on PYTHONPATH, and the hook destroys a process group
    the script left open (gloo's workers then cannot abort the finished rank at exit)."""
    import os
    import subprocess
    import sys

    from hpcx.runtime.freeport import free_port
    from hpcx.runtime.torchenv import EXIT_SITE

    code = (
        "import os, sys, importlib.util, torch.distributed as dist\n"
        "print(os.environ['PYTHONPATH'].split(os.pathsep)[0])\n"
        "dist.init_process_group('gloo', init_method='tcp://127.0.0.1:' + os.environ['PORT'], rank=0, world_size=1)\n"
        "hook = sys.modules['sitecustomize']\n"
        "hook._settle()\n"
        "print('open' if dist.is_initialized() else 'torn down')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "HPCX_", "MASTER_", "RANK"))}
    env.update(
        SRUN, SLURM_STEP_NUM_TASKS="1", SLURM_PROCID="0", PORT=str(free_port()), PYTHONPATH="/elsewhere"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx.run", "--no-profile", "--", sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(EXIT_SITE), "torn down"]
