"""Lightning and accelerate scripts, with no line of hpcx in them, on two nodes under the torch-ddp kind: they
take hpcx's MASTER_ADDR/MASTER_PORT, and Lightning's auto-requeue gets the time-limit warning (as USR1, the
signal it listens for), requeues the job itself and resumes from its own checkpoint."""

from __future__ import annotations

import importlib.util
import re

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]
TWO_NODES = ["torch-ddp", "-p", "debug", "-N", "2", "--ntasks-per-node", "1"]


@pytest.fixture(scope="module")
def finished(testbed, tmp_path_factory):
    """Submit the three jobs together, wait for all of them; the logs of each."""
    from tests.conftest import Hpcx, _base_env

    missing = [m for m in ("lightning", "accelerate") if importlib.util.find_spec(m) is None]
    assert not missing, (
        f"{', '.join(missing)} not installed: pip install -e '.[frameworks-test]' (scripts/setup does)"
    )

    root = tmp_path_factory.mktemp("frameworks")
    env = _base_env(root / "runs")
    env["HPCX_SITE"] = str(testbed)
    hpcx = Hpcx(env)
    lightning = ["python", "examples/frameworks/lightning_ddp.py"]
    runs = {
        "lightning": hpcx.json("submit", *TWO_NODES, "-t", "5", *lightning, "--root", str(root / "l1"))[
            "run_id"
        ],
        "accelerate": hpcx.json(
            "submit", *TWO_NODES, "-t", "5", "python", "examples/frameworks/accelerate_ddp.py"
        )["run_id"],
        # a three-minute limit, the warning 60 s before it (Slurm sends it up to 30 s early: long after Lightning
        # has set its handlers, even on a loaded machine), and about 150 s of training: requeued, then it finishes
        "requeue": hpcx.json(
            "submit",
            *TWO_NODES,
            "-t",
            "3",
            "--set",
            "signal_lead_s=60",
            *lightning,
            "--steps",
            "200",
            "--step-sleep",
            "0.75",
            "--root",
            str(root / "l2"),
        )["run_id"],
    }
    out = {}
    for name, run_id in runs.items():
        row = hpcx.wait_finished(run_id, timeout_s=480)
        out[name] = (row["state"], hpcx("logs", "--lines", "100000", run_id).stdout)  # every attempt's lines
    return out


def test_lightning_takes_hpcx_address_and_port(finished):
    state, logs = finished["lightning"]
    assert state == "COMPLETED", logs
    found = sorted(
        re.findall(
            r"global_rank (\d) of 2 reached step 10 \(attempt 0\) via SLURMEnvironment at (\S+) "
            r"\(MASTER_ADDR=(\S+)\)",
            logs,
        )
    )
    assert [r for r, _, _ in found] == ["0", "1"], logs
    assert all(at.split(":")[0] == addr for _, at, addr in found)  # Lightning used the exported address


def test_accelerate_with_plain_python_runs_two_processes(finished):
    state, logs = finished["accelerate"]
    assert state == "COMPLETED", logs
    assert sorted(re.findall(r"process (\d) of (\d): reduced sum (\d+)", logs)) == [
        ("0", "2", "3"),
        ("1", "2", "3"),
    ]


def test_lightning_auto_requeue_gets_the_warning_requeues_and_resumes(finished):
    state, logs = finished["requeue"]
    assert state == "COMPLETED", logs
    assert "the time-limit warning passed on as SIGUSR1: the program handles SIGUSR1, not SIGUSR2" in logs
    assert "Requeued SLURM job" in logs and "Restored all states from the checkpoint" in logs
    assert re.search(r"global_rank 0 of 2 reached step 200 \(attempt [1-9]\d*\)", logs), logs
    assert "Exited with exit code 140" not in logs  # no rank died of the warning itself
