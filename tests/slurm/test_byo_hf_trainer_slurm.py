"""A Hugging Face Trainer script, with no line of hpcx in it, on two nodes under the torch-ddp kind: its two
processes train one model with DDP's averaged gradients, rendezvousing at hpcx's MASTER_ADDR/MASTER_PORT."""

from __future__ import annotations

import importlib.util
import re
import subprocess

import pytest

from hpcx.rundir.layout import SCRIPT_FILE

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        importlib.util.find_spec("transformers") is None,
        reason="transformers not installed: pip install -e '.[frameworks-test]' (scripts/setup does)",
    ),
]
TWO_NODES = ["torch-ddp", "-p", "debug", "-N", "2", "--ntasks-per-node", "1", "-t", "5"]
LINE = re.compile(
    r"process (\d) of (\d): weight (\S+) after 5 steps \(DDP average gives (\S+)\) via (\S+):(\d+)"
)


def _reserved_port_range() -> range:
    """The ports Slurm reserves for steps (slurm.conf's MpiParams=ports=LO-HI), as the cluster says."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"MpiParams\s*=\s*ports=(\d+)-(\d+)", config)
    assert found, f"the test cluster reserves no ports for steps (MpiParams):\n{config}"
    return range(int(found[1]), int(found[2]) + 1)


def test_hf_trainer_trains_with_ddp_on_two_nodes_at_hpcx_address_and_port(slurm_hpcx, runs_root):
    command = ["python", "examples/frameworks/hf_trainer_ddp.py", "--output-dir", str(runs_root / "hf-out")]
    run_id = slurm_hpcx.json("submit", *TWO_NODES, *command)["run_id"]
    row = slurm_hpcx.wait_finished(run_id, timeout_s=420)
    logs = slurm_hpcx("logs", "--lines", "100000", run_id).stdout
    assert row["state"] == "COMPLETED", logs
    found = sorted(LINE.findall(logs))
    assert [(index, size) for index, size, *_ in found] == [("0", "2"), ("1", "2")], logs
    # both processes end at the weight only averaged gradients reach (-0.5 * 5 steps * mean(1, 3))
    assert all(weight == expected == "-5" for _, _, weight, expected, _, _ in found), logs
    script = (runs_root / run_id / SCRIPT_FILE).read_text()
    hpcx_addr = re.search(r"^export HPCX_MASTER_ADDR=(\S+)$", script, re.M)
    assert hpcx_addr, script
    assert {(addr, port) for *_, addr, port in found} == {
        (hpcx_addr[1], found[0][5])
    }  # one rendezvous, hpcx's
    assert int(found[0][5]) in _reserved_port_range()  # Slurm's reserved port, not torch's default 29500
    assert "set by you" not in logs and "not set:" not in logs
