"""The pre-flight warning for a training script whose framework disagrees with the request (issue 28, item 4):
Lightning's literal num_nodes/devices (in the script, a LightningCLI config or its --trainer.* options) and
torchrun's or accelerate's own numbers against -N, the tasks per node and the GPUs per node. One sentence names
both numbers, where each was set, what would happen and the fix; a file that cannot be read or parsed gives none;
the job is never refused for it."""

from __future__ import annotations

import json
import os
import textwrap
import threading
from pathlib import Path

import pytest

from hpcx.site import load_site
from hpcx.submit.framework_check import (
    MAX_FILE_BYTES,
    Command,
    framework_warnings,
    parse_command,
    read_bounded,
)
from hpcx.submit.request import Request, resolve
from tests.unit.cli_harness import isolate, run_cli

# Four CPU nodes of 8 CPUs, four GPU nodes of 4 GPUs: every shape below fits, so only the warning is tested.
SITE = """
version: 1
clusters:
  c:
    scheduler: slurm
    default_partition: cpu
    partitions:
      cpu: {max_time: "01:00:00", default_time: "00:10:00", max_nodes: 4, cpus_per_node: 8, mem_per_node_mb: 8000}
      gpu: {max_time: "01:00:00", default_time: "00:10:00", max_nodes: 4, cpus_per_node: 8, mem_per_node_mb: 8000,
            gpus_per_node: 4}
"""

LIGHTNING = """\
import lightning as L


def main(args):
    trainer = L.Trainer(
        accelerator="cpu",
        devices={devices},
        num_nodes={num_nodes},
        strategy="ddp",
    )
    trainer.fit(None)
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def site(tmp_path) -> str:
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(SITE))
    return str(path)


def lightning(tmp_path: Path, num_nodes: object = 2, devices: object = 1, name: str = "train.py") -> str:
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(LIGHTNING.format(num_nodes=num_nodes, devices=devices))
    return name


def warned(
    site: str, tmp_path: Path, *command: str, kind: str = "torch-ddp", mode: str = "", **options
) -> list[str]:
    """framework_warnings for `hpcx submit KIND OPTIONS -- COMMAND` run in tmp_path, options typed as their long
    flags except nodes, typed -N."""
    request = Request(
        kind=kind,
        options=options,
        command=command,
        variables={"mode": mode} if mode else {},
        workdir=tmp_path,
    )
    prep = resolve(request, load_site(site))
    spelled = {"nodes": "-N"} if "nodes" in options else {}
    return framework_warnings(prep, tmp_path, spelled)


# --- Lightning literals against the request ------------------------------------------------------------------


def test_a_literal_num_nodes_other_than_the_nodes_asked_is_named_with_both_numbers(site, tmp_path):
    script = lightning(tmp_path, num_nodes=4)
    assert warned(site, tmp_path, "python", script, nodes="2", ntasks_per_node="1") == [
        "train.py:8 L.Trainer(num_nodes=4) but the job asks -N 2 (2 nodes): Lightning would wait for 4 nodes' "
        "ranks and hang until the time limit; ask -N 4 or set num_nodes=2"
    ]


def test_fewer_nodes_in_the_script_than_asked_is_named_too(site, tmp_path):
    script = lightning(tmp_path, num_nodes=1)
    (got,) = warned(site, tmp_path, "python", script, nodes="2")
    assert got.startswith(
        "train.py:8 L.Trainer(num_nodes=1) but the job asks -N 2 (2 nodes): Lightning would "
    )
    assert got.endswith("; ask -N 1 or set num_nodes=2")
    assert warned(site, tmp_path, "python", script, nodes="2", ntasks_per_node="2") == [
        "train.py:8 L.Trainer(num_nodes=1) but the job asks -N 2 (2 nodes): Lightning would count 1 node's ranks, "
        "not 2: it stops with an error or leaves the others idle; ask -N 1 or set num_nodes=2",
        "train.py:7 L.Trainer(devices=1) but the job asks --ntasks-per-node 2 (2 tasks per node): Lightning would "
        "count 1 process per node, not 2: it stops with an error or leaves the others idle; ask --ntasks-per-node 1 "
        "or set devices=2",
    ]


def test_a_literal_devices_other_than_the_tasks_per_node_is_named(site, tmp_path):
    script = lightning(tmp_path, num_nodes=2, devices=4)
    assert warned(site, tmp_path, "python", script, nodes="2", ntasks_per_node="2") == [
        "train.py:7 L.Trainer(devices=4) but the job asks --ntasks-per-node 2 (2 tasks per node): Lightning would "
        "wait for 4 processes per node and hang until the time limit; ask --ntasks-per-node 4 or set devices=2"
    ]


def test_devices_against_sbatchs_one_task_per_node_says_none_was_asked(site, tmp_path):
    script = lightning(tmp_path, num_nodes=1, devices=2)
    (got,) = warned(site, tmp_path, "python", script)
    assert "L.Trainer(devices=2) but the job has 1 task per node (no --ntasks-per-node given)" in got
    script = lightning(tmp_path, num_nodes=2)
    assert warned(site, tmp_path, "python", script) == [
        "train.py:8 L.Trainer(num_nodes=2) but the job has 1 node (no -N given): Lightning would wait for 2 nodes' "
        "ranks and hang until the time limit; ask -N 2 or set num_nodes=1"
    ]


def test_in_torchrun_mode_devices_are_compared_with_the_gpus_per_node(site, tmp_path):
    script = lightning(tmp_path, num_nodes=2, devices=2)
    got = warned(
        site, tmp_path, "python", script, mode="torchrun", partition="gpu", nodes="2", gpus_per_node="4"
    )
    assert got == [
        "train.py:7 L.Trainer(devices=2) but the job asks --gpus-per-node 4 (4 GPUs per node): Lightning would "
        "count 2 processes per node, not 4: it stops with an error or leaves the others idle; ask --gpus-per-node 2 "
        "or set devices=4"
    ]


def test_in_torchrun_mode_tasks_spread_by_n_are_not_compared(site, tmp_path):
    script = lightning(tmp_path, num_nodes=2, devices=3)
    assert warned(site, tmp_path, "python", script, mode="torchrun", nodes="2", ntasks="4") == []


def test_agreeing_values_give_no_warning(site, tmp_path):
    script = lightning(tmp_path, num_nodes=2, devices=2)
    assert warned(site, tmp_path, "python", script, nodes="2", ntasks_per_node="2") == []
    # outside torchrun mode each task is a rank: devices meet the tasks per node, not the GPUs
    gpus = {"partition": "gpu", "nodes": "2", "gpus_per_node": "4"}
    assert warned(site, tmp_path, "python", script, ntasks_per_node="2", **gpus) == []
    assert (
        warned(
            site, tmp_path, "python", script, mode="torchrun", partition="gpu", nodes="2", gpus_per_node="2"
        )
        == []
    )


@pytest.mark.parametrize(
    ("num_nodes", "devices"),
    [("args.nodes", '"auto"'), ("int(os.environ['N'])", "[0, 1]"), ("-1", "-1"), ("True", "'4'"), ("N", "0")],
)
def test_values_that_are_not_whole_number_literals_give_no_warning(site, tmp_path, num_nodes, devices):
    script = lightning(tmp_path, num_nodes=num_nodes, devices=devices)
    assert warned(site, tmp_path, "python", script, nodes="2", ntasks_per_node="1") == []


def test_two_trainers_that_disagree_leave_the_number_unknown(site, tmp_path):
    (tmp_path / "train.py").write_text(
        "import pytorch_lightning as pl\n"
        "fit = pl.Trainer(num_nodes=4, devices=1)\n"
        "test = pl.Trainer(num_nodes=1, devices=1)  # Lightning's advice: test on one device\n"
    )
    assert warned(site, tmp_path, "python", "train.py", nodes="2") == []


def test_fabric_and_a_module_run_with_python_m_are_read_too(site, tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "train.py").write_text("from lightning.fabric import Fabric\nFabric(num_nodes=3)\n")
    (got,) = warned(site, tmp_path, "python", "-u", "-m", "pkg.train", nodes="2")
    assert got.startswith("pkg/train.py:2 Fabric(num_nodes=3) but the job asks -N 2 (2 nodes)")
    (tmp_path / "pkg" / "__main__.py").write_text("from lightning import Trainer\nTrainer(num_nodes=3)\n")
    (got,) = warned(site, tmp_path, "python", "-m", "pkg", nodes="2")
    assert got.startswith("pkg/__main__.py:2 Trainer(num_nodes=3) but the job asks -N 2 (2 nodes): ")
    assert warned(site, tmp_path, "python", "-m", "pkg", "--trainer.num_nodes", "2", nodes="2") == []


def test_a_value_set_in_the_environment_is_named_there(site, tmp_path, monkeypatch):
    monkeypatch.setenv("HPCX_NODES", "2")
    script = lightning(tmp_path, num_nodes=4)
    (got,) = warned(site, tmp_path, "python", script)
    assert "but the job asks HPCX_NODES=2 (2 nodes)" in got
    assert got.endswith("; ask -N 4 or set num_nodes=2")


def test_nodes_slurm_chooses_are_not_compared(site, tmp_path):
    script = lightning(tmp_path, num_nodes=4, devices=3)
    assert warned(site, tmp_path, "python", script, ntasks="4") == []
    assert warned(site, tmp_path, "python", script, nodes="1-2") == [
        "train.py:7 L.Trainer(devices=3) but the "
        "job has 1 task per node (no --ntasks-per-node given): Lightning would wait for 3 processes per node and "
        "hang until the time limit; ask --ntasks-per-node 3 or set devices=1"
    ]
    # -N given beside -n: the nodes are fixed, only the spread of the tasks is Slurm's
    script = lightning(tmp_path, num_nodes=4)
    (got,) = warned(site, tmp_path, "python", script, nodes="2", ntasks="4")
    assert got.startswith("train.py:8 L.Trainer(num_nodes=4) but the job asks -N 2 (2 nodes): ")


def test_gpus_asked_by_gres_or_with_a_type_are_named_as_typed_and_the_gres_fix_is_a_gres_list(site, tmp_path):
    script = lightning(tmp_path, num_nodes=2, devices=2)
    torchrun = {"mode": "torchrun", "partition": "gpu", "nodes": "2"}
    assert warned(site, tmp_path, "python", script, gres="gpu:tesla:4,nvme:1", **torchrun) == [
        "train.py:7 L.Trainer(devices=2) but the job asks --gres gpu:tesla:4,nvme:1 (4 GPUs per node): Lightning "
        "would count 2 processes per node, not 4: it stops with an error or leaves the others idle; ask --gres "
        "gpu:tesla:2,nvme:1 or set devices=4"
    ]
    # --gres wins over --gpus-per-node, as in Slurm; with GPUs in two entries only their sum is known
    (got,) = warned(site, tmp_path, "python", script, gres="gpu:4", gpus_per_node="2", **torchrun)
    assert "but the job asks --gres gpu:4 (4 GPUs per node): " in got and "; ask --gres gpu:2 or" in got
    (got,) = warned(site, tmp_path, "python", script, gres="gpu:a:2,gpu:b:2", **torchrun)
    assert got.endswith("; ask --gres for 2 GPUs per node or set devices=4")
    (got,) = warned(site, tmp_path, "python", script, gpus_per_node="a100:4", **torchrun)
    assert "but the job asks --gpus-per-node a100:4 (4 GPUs per node): " in got


def test_only_trainer_and_fabric_calls_are_read(site, tmp_path):
    (tmp_path / "train.py").write_text(
        "import lightning as L\n"
        "model = build(num_nodes=8, devices=8)\n"
        'trainer = factories["fit"](devices=3)\n'
        "L.Trainer(num_nodes=4)\n"
    )
    assert warned(site, tmp_path, "python", "train.py", nodes="2") == [
        "train.py:4 L.Trainer(num_nodes=4) but the job asks -N 2 (2 nodes): Lightning would wait for 4 nodes' ranks "
        "and hang until the time limit; ask -N 4 or set num_nodes=2"
    ]


# --- LightningCLI config files and options -------------------------------------------------------------------


def test_a_lightningcli_config_file_is_read(site, tmp_path):
    (tmp_path / "main.py").write_text("from lightning.pytorch.cli import LightningCLI\nLightningCLI()\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "ddp.yaml").write_text("trainer:\n  num_nodes: 4\n  devices: 1\nmodel: {lr: 0.1}\n")
    for flag in (["--config", "conf/ddp.yaml"], ["-c", "conf/ddp.yaml"], ["--config=conf/ddp.yaml"]):
        assert warned(site, tmp_path, "python", "main.py", "fit", *flag, nodes="2") == [
            "conf/ddp.yaml's trainer.num_nodes: 4 but the job asks -N 2 (2 nodes): Lightning would wait for 4 "
            "nodes' ranks and hang until the time limit; ask -N 4 or set trainer.num_nodes: 2 in conf/ddp.yaml"
        ]


def test_the_command_lines_trainer_options_win_over_the_config_and_the_script(site, tmp_path):
    script = lightning(tmp_path, num_nodes=4, devices=1)
    (tmp_path / "c.yaml").write_text("trainer: {num_nodes: 3}\n")
    got = warned(site, tmp_path, "python", script, "--config", "c.yaml", "--trainer.num_nodes=5", nodes="2")
    assert len(got) == 1 and got[0].startswith("--trainer.num_nodes 5 but the job asks -N 2")
    assert got[0].endswith("pass --trainer.num_nodes 2")
    assert warned(site, tmp_path, "python", script, "--trainer.num_nodes", "2", nodes="2") == []


def test_a_config_file_that_is_not_yaml_or_has_no_trainer_gives_no_warning(site, tmp_path):
    script = lightning(tmp_path, num_nodes="args.n")
    (tmp_path / "bad.yaml").write_text("trainer: [unclosed\n")
    (tmp_path / "list.yaml").write_text("- trainer\n")
    (tmp_path / "date.yaml").write_text("trainer: {num_nodes: 4}\nwhen: 2024-13-45\n")  # yaml: ValueError
    (tmp_path / "latin1.yaml").write_bytes("trainer: {num_nodes: 4}\nwho: Jos\xe9\n".encode("latin-1"))
    for config in ("bad.yaml", "list.yaml", "date.yaml", "latin1.yaml", "missing.yaml"):
        assert warned(site, tmp_path, "python", script, "-c", config, nodes="2") == []


def test_trainer_options_that_are_one_or_no_count_or_not_lightningclis(site, tmp_path):
    script = lightning(tmp_path, num_nodes=4)
    assert warned(site, tmp_path, "python", script, "--trainer.num_nodes", "1", nodes="2") == [
        "--trainer.num_nodes 1 but the job asks -N 2 (2 nodes): Lightning would count 1 node's ranks, not 2: it "
        "stops with an error or leaves the others idle; ask -N 1 or pass --trainer.num_nodes 2"
    ]
    # no count, the script's own option (not LightningCLI's dotted one), a last option without its value
    words = ["--trainer.accelerator", "gpu", "--trainer_num_nodes", "2", "--trainer.num_nodes"]
    (got,) = warned(site, tmp_path, "python", script, *words, nodes="2")
    assert got.startswith("train.py:8 L.Trainer(num_nodes=4) but the job asks -N 2 (2 nodes): ")
    (tmp_path / "c.yaml").write_text("trainer: {num_nodes: 1, devices: 1}\n")
    assert warned(site, tmp_path, "python", script, "-c", "c.yaml", nodes="2") == [
        "c.yaml's trainer.num_nodes: 1 but the job asks -N 2 (2 nodes): Lightning would count 1 node's ranks, not 2: "
        "it stops with an error or leaves the others idle; ask -N 1 or set trainer.num_nodes: 2 in c.yaml"
    ]


# --- torchrun and accelerate ---------------------------------------------------------------------------------


def test_torchrun_nproc_per_node_against_the_gpus_per_node_in_each_spelling(site, tmp_path):
    (tmp_path / "train.py").write_text("print('plain DDP')\n")
    for words in (["--nproc-per-node", "4"], ["--nproc-per-node=4"], ["--nproc_per_node", "4"]):
        flag = words[0].split("=")[0]
        got = warned(
            site, tmp_path, "torchrun", *words, "train.py", kind="serial", partition="gpu", gpus_per_node="2"
        )
        assert got == [
            f"torchrun {flag} 4 but the job asks --gpus-per-node 2 (2 GPUs per node): torchrun would start 4 "
            f"processes per node; ask --gpus-per-node 4 or pass {flag} 2"
        ]
    gpus = {"kind": "serial", "partition": "gpu", "gpus_per_node": "2"}
    assert warned(site, tmp_path, *"torchrun --nproc-per-node 1 train.py".split(), **gpus) == [
        "torchrun --nproc-per-node 1 but the job asks --gpus-per-node 2 (2 GPUs per node): torchrun would start 1 "
        "process per node; ask --gpus-per-node 1 or pass --nproc-per-node 2"
    ]
    assert warned(site, tmp_path, *"torchrun --nnodes 1 train.py".split(), kind="mpi", nodes="2") == [
        "torchrun --nnodes 1 but the job asks -N 2 (2 nodes): torchrun's rendezvous would count 1 node, not 2: it "
        "stops with an error or leaves the others idle; ask -N 1 or pass --nnodes 2"
    ]


def test_torchrun_nproc_per_node_against_the_tasks_asked_and_nnodes_against_n(site, tmp_path):
    (tmp_path / "train.py").write_text("")
    # the script's own --nproc-per-node 9 is its argument, not torchrun's
    command = "python -m torch.distributed.run --nnodes 4 --nproc-per-node 2 train.py --nproc-per-node 9"
    got = warned(site, tmp_path, *command.split(), kind="mpi", nodes="2", ntasks_per_node="1")
    assert got == [
        "torchrun --nnodes 4 but the job asks -N 2 (2 nodes): torchrun's rendezvous would wait for 4 nodes and "
        "hang until the time limit; ask -N 4 or pass --nnodes 2",
        "torchrun --nproc-per-node 2 but the job asks --ntasks-per-node 1 (1 task per node): torchrun would start "
        "2 processes per node; ask --ntasks-per-node 2 or pass --nproc-per-node 1",
    ]


def test_torchrun_that_agrees_or_gives_no_plain_count_gives_no_warning(site, tmp_path):
    (tmp_path / "train.py").write_text("")
    gpu = {"kind": "serial", "partition": "gpu", "gpus_per_node": "4"}
    assert warned(site, tmp_path, "torchrun", "--nproc-per-node", "4", "train.py", **gpu) == []
    assert (
        warned(site, tmp_path, "torchrun", "--nproc-per-node", "gpu", "--nnodes", "1:4", "train.py", **gpu)
        == []
    )
    # one task, sbatch's default, and no GPU: torchrun's processes share the task's CPUs, nothing to compare
    assert warned(site, tmp_path, "torchrun", "--nproc-per-node", "4", "train.py", kind="serial") == []


def test_lightning_under_torchrun_meets_torchruns_numbers(site, tmp_path):
    script = lightning(tmp_path, num_nodes=1, devices=4)
    command = f"torchrun --standalone --nproc-per-node 2 {script}"
    got = warned(site, tmp_path, *command.split(), kind="serial", ntasks_per_node="2")
    assert got == [
        "train.py:7 L.Trainer(devices=4) but torchrun runs it with --nproc-per-node 2: Lightning would wait for 4 "
        "processes per node and hang until the time limit; pass --nproc-per-node 4 or set devices=2"
    ]


def test_accelerate_launch_numbers_and_its_config_file(site, tmp_path):
    (tmp_path / "train.py").write_text("")
    (tmp_path / "acc.yaml").write_text("num_machines: 2\nnum_processes: 4\n")
    two_by_two = {"kind": "mpi", "nodes": "2", "ntasks_per_node": "2"}
    command = "accelerate launch --num_processes 8 --num_machines 2 train.py"
    got = warned(site, tmp_path, *command.split(), **two_by_two)
    assert got == [
        "accelerate launch --num_processes 8 but the job asks --ntasks-per-node 2 (2 tasks per node) on 2 nodes (4 "
        "in all): accelerate would start 8 processes in all; ask --ntasks-per-node 4 or pass --num_processes 4"
    ]
    from_config = "accelerate launch --config_file acc.yaml train.py".split()
    assert warned(site, tmp_path, *from_config, **two_by_two) == []
    (got,) = warned(site, tmp_path, *from_config, kind="mpi", nodes="4")
    assert got.startswith("acc.yaml's num_machines: 2 but the job asks -N 4 (4 nodes): accelerate launch's ")
    assert got.endswith("; ask -N 2 or set num_machines: 4 in acc.yaml")


def test_lightning_under_torchrun_meets_its_defaults_and_its_options_in_each_spelling(site, tmp_path):
    script = lightning(tmp_path, num_nodes=2, devices=2)
    assert warned(site, tmp_path, "torchrun", script, kind="serial") == [
        "train.py:8 L.Trainer(num_nodes=2) but torchrun runs it with its default --nnodes 1: Lightning would wait "
        "for 2 nodes' ranks and hang until the time limit; pass --nnodes 2 or set num_nodes=1",
        "train.py:7 L.Trainer(devices=2) but torchrun runs it with its default --nproc-per-node 1: Lightning would "
        "wait for 2 processes per node and hang until the time limit; pass --nproc-per-node 2 or set devices=1",
    ]
    got = warned(site, tmp_path, "torchrun", "--standalone", script, kind="serial")
    assert got[0].startswith("train.py:8 L.Trainer(num_nodes=2) but torchrun runs it with --standalone: ")
    for procs in ("--nproc-per-node", "--nproc_per_node"):  # elastic nodes, a GPU per process: no one number
        assert (
            warned(site, tmp_path, "torchrun", "--nnodes", "1:4", procs, "gpu", script, kind="serial") == []
        )
    script = lightning(tmp_path, num_nodes=4, devices=4)
    command = "torchrun --nnodes 2 --nproc_per_node 2".split()
    assert warned(site, tmp_path, *command, script, kind="mpi", nodes="2", ntasks_per_node="2") == [
        "train.py:8 L.Trainer(num_nodes=4) but torchrun runs it with --nnodes 2: Lightning would wait for 4 nodes' "
        "ranks and hang until the time limit; pass --nnodes 4 or set num_nodes=2",
        "train.py:7 L.Trainer(devices=4) but torchrun runs it with --nproc_per_node 2: Lightning would wait for 4 "
        "processes per node and hang until the time limit; pass --nproc_per_node 4 or set devices=2",
    ]


def test_lightning_under_accelerate_meets_its_machines_and_processes_per_machine(site, tmp_path):
    script = lightning(tmp_path, num_nodes=1, devices=2)
    two_by_four = {"kind": "mpi", "nodes": "2", "ntasks_per_node": "4"}
    command = "accelerate launch --num_machines 2 --num_processes 8".split()
    assert warned(site, tmp_path, *command, script, **two_by_four) == [
        "train.py:8 L.Trainer(num_nodes=1) but accelerate launch runs it with --num_machines 2: Lightning would "
        "count 1 node's ranks, not 2: it stops with an error or leaves the others idle; pass --num_machines 1 or set "
        "num_nodes=2",
        "train.py:7 L.Trainer(devices=2) but accelerate launch runs it with --num_processes 8 on 2 machines: "
        "Lightning would count 2 processes per node, not 4: it stops with an error or leaves the others idle; pass "
        "--num_processes 4 or set devices=4",
    ]
    # only one of the two: the processes per machine are not known
    (got,) = warned(site, tmp_path, *command[:4], script, **two_by_four)
    assert got.startswith(
        "train.py:8 L.Trainer(num_nodes=1) but accelerate launch runs it with --num_machines 2: "
    )
    assert warned(site, tmp_path, *command[:2], *command[4:], script, **two_by_four) == []
    script = lightning(tmp_path, num_nodes=1, devices=1)
    command = "accelerate launch --num-machines 1 --num-processes 2".split()
    assert warned(site, tmp_path, *command, script, kind="mpi", nodes="1", ntasks_per_node="2") == [
        "train.py:7 L.Trainer(devices=1) but accelerate launch runs it with --num-processes 2 on 1 machine: "
        "Lightning would count 1 process per node, not 2: it stops with an error or leaves the others idle; pass "
        "--num-processes 1 or set devices=2"
    ]


def test_accelerates_processes_in_all_on_one_node_or_not_a_multiple_of_the_nodes(site, tmp_path):
    (tmp_path / "train.py").write_text("")
    command = "accelerate launch --num_processes 4 train.py".split()
    assert warned(site, tmp_path, *command, kind="mpi", nodes="1", ntasks_per_node="2") == [
        "accelerate launch --num_processes 4 but the job asks --ntasks-per-node 2 (2 tasks per node) on 1 node (2 in "
        "all): accelerate would start 4 processes in all; ask --ntasks-per-node 4 or pass --num_processes 2"
    ]
    command[3] = "3"  # 3 processes on 2 nodes: no count per node gives them
    (got,) = warned(site, tmp_path, *command, kind="mpi", nodes="2", ntasks_per_node="2")
    assert got.endswith("; ask 3 in all or pass --num_processes 4")


def test_accelerates_config_file_in_either_spelling_and_its_option_over_it(site, tmp_path):
    (tmp_path / "train.py").write_text("")
    (tmp_path / "acc.yaml").write_text("num_machines: 1\n")
    for flag in ("--config_file", "--config-file"):
        command = ["accelerate", "launch", flag, "acc.yaml"]
        assert warned(site, tmp_path, *command, "train.py", kind="mpi", nodes="2") == [
            "acc.yaml's num_machines: 1 but the job asks -N 2 (2 nodes): accelerate launch's rendezvous would count "
            "1 node, not 2: it stops with an error or leaves the others idle; ask -N 1 or set num_machines: 2 in "
            "acc.yaml"
        ]
        assert (
            warned(site, tmp_path, *command, "--num_machines", "2", "train.py", kind="mpi", nodes="2") == []
        )


def test_what_the_command_runs_is_found_as_python_and_the_launchers_read_it():
    assert (
        parse_command(["OMP_NUM_THREADS=1", "python3.11", "-u", "-W", "ignore", "t.py", "-c", "x"]).script
        == "t.py"
    )
    assert parse_command(["python", "-mpkg.mod", "a"]).module == "pkg.mod"
    assert parse_command(["python", "-c", "import t"]) == parse_command(["./run.sh"]) == parse_command([])
    cmd = parse_command(
        ["torchrun", "--standalone", "--nproc-per-node=2", "--rdzv-backend", "c10d", "t.py", "--lr", "1"]
    )
    assert (cmd.launcher, cmd.script, cmd.script_args) == ("torchrun", "t.py", ("--lr", "1"))
    assert cmd.options == {"--standalone": "", "--nproc-per-node": "2", "--rdzv-backend": "c10d"}
    assert parse_command(["torchrun", "--no-python", "./a.out"]).script is None
    assert parse_command(["accelerate", "launch", "--multi_gpu", "-m", "pkg.train"]).module == "pkg.train"
    # the edges: a launcher with no script, an option without its value, -- before the script
    assert parse_command(["torchrun", "--standalone"]) == Command(
        launcher="torchrun", options={"--standalone": ""}
    )
    assert parse_command(["torchrun", "--nnodes"]) == Command(launcher="torchrun", options={"--nnodes": ""})
    assert parse_command(["torchrun", "--rdzv-id", "7"]) == Command(
        launcher="torchrun", options={"--rdzv-id": "7"}
    )
    assert parse_command(["torchrun", "--nnodes", "2", "--", "t.py", "--lr", "1"]) == Command(
        script="t.py", script_args=("--lr", "1"), launcher="torchrun", options={"--nnodes": "2"}
    )
    # an option hpcx does not know takes no .py file as its value: that is the script
    assert parse_command(["torchrun", "--a-new-flag", "t.py"]).script == "t.py"
    assert parse_command(["torchrun", "--no_python", "./a.out"]).script is None
    assert parse_command(["accelerate", "launch", "--module", "pkg.train", "--lr", "1"]) == Command(
        module="pkg.train", script_args=("--lr", "1"), launcher="accelerate launch", options={"--module": ""}
    )
    assert parse_command(["accelerate", "config"]) == parse_command(["./run.sh", "train.py"]) == Command()
    assert parse_command(["python", "-"]) == Command(script="-")
    assert parse_command(["python", "-u"]) == Command()
    assert parse_command(["python", "-m"]) == Command(module="")
    for words in (["-m", "pkg.mod", "a"], ["-mpkg.mod", "a"], ["-mx", "a"]):
        assert parse_command(["python", *words]).script_args == ("a",)


# --- files that cannot be read -------------------------------------------------------------------------------


def test_a_script_that_is_missing_unparseable_binary_or_a_directory_gives_no_warning(site, tmp_path):
    (tmp_path / "broken.py").write_text("Trainer(num_nodes=4\n")
    (tmp_path / "binary.py").write_bytes(b"\x00\xff\xfeTrainer(num_nodes=4)\n")
    (tmp_path / "dir.py").mkdir()
    (tmp_path / "deep.py").write_text("Trainer(num_nodes=4)\nx = " + "[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "-").write_text("Trainer(num_nodes=4)\n")  # python - reads its program from stdin, not this
    for name in ("missing.py", "broken.py", "binary.py", "dir.py", "deep.py", "/dev/null", "-"):
        assert warned(site, tmp_path, "python", name, nodes="2") == []
    assert warned(site, tmp_path, "torchrun", "--no-python", "./a.out", kind="mpi", nodes="2") == []


def test_a_script_that_cannot_be_opened_gives_no_warning(site, tmp_path, monkeypatch):
    script = lightning(tmp_path, num_nodes=4)

    def refuse(*args, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)  # root reads a chmod 000 file: refuse the open itself
    assert warned(site, tmp_path, "python", script, nodes="2") == []


def test_a_fifo_named_as_the_script_is_never_read_and_never_hangs(site, tmp_path):
    os.mkfifo(tmp_path / "train.py")
    got: list[list[str]] = []
    worker = threading.Thread(
        target=lambda: got.append(warned(site, tmp_path, "python", "train.py", nodes="2"))
    )
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # unblock the reader so that pytest can end, then fail
        with open(tmp_path / "train.py", "w"):
            pass
        pytest.fail("reading a FIFO named as the script hung")
    assert got == [[]]


class CountingFile:
    """A file that records the size of each read asked of it."""

    def __init__(self, f, asked: list[int]) -> None:
        self.f, self.asked = f, asked

    def __enter__(self) -> CountingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()

    def fileno(self) -> int:
        return self.f.fileno()

    def read(self, n: int = -1) -> bytes:
        self.asked.append(n)
        return self.f.read(n)


def test_a_huge_script_is_not_read_past_the_bound(site, tmp_path, monkeypatch):
    script = tmp_path / "train.py"
    with script.open("w") as f:
        f.write("import lightning as L\nL.Trainer(num_nodes=4)\n")
        f.truncate(
            1024**3
        )  # sparse: a GiB of zeros that reading whole would take seconds and a GiB of memory
    asked: list[int] = []
    fdopen = os.fdopen

    def spy(fd: int, mode: str = "r", *args: object, **kw: object) -> object:
        f = fdopen(fd, mode, *args, **kw)
        return CountingFile(f, asked) if mode == "rb" else f

    monkeypatch.setattr(os, "fdopen", spy)
    assert read_bounded(script) is None
    assert warned(site, tmp_path, "python", "train.py", nodes="2") == []
    assert asked and all(0 <= n <= MAX_FILE_BYTES + 1 for n in asked), asked
    assert MAX_FILE_BYTES == 2 * 1024 * 1024
    small = tmp_path / "small.py"
    small.write_bytes(b"x" * 10)
    assert read_bounded(small, limit=10) == b"x" * 10 and read_bounded(small, limit=9) is None


# --- the command line ----------------------------------------------------------------------------------------


def test_hpcx_submit_dry_run_prints_the_warning_on_stderr_and_still_renders(site, tmp_path):
    lightning(tmp_path, num_nodes=4, devices=1, name="script.py")
    submit = ["--site", site, "submit", "torch-ddp"]
    result = run_cli(*submit, *"-N 2 --ntasks-per-node 1 --dry-run -- python script.py".split())
    assert result.code == 0
    assert (
        "hpcx: warning: script.py:8 L.Trainer(num_nodes=4) but the job asks -N 2 (2 nodes): Lightning would wait for "
        "4 nodes' ranks and hang until the time limit; ask -N 4 or set num_nodes=2\n"
    ) in result.err
    assert "#!/bin/bash" in result.out and "hpcx: warning" not in result.out
    # --json: stdout stays the one document (submit's has no list of warnings); the option as typed is named
    as_json = run_cli("--json", *submit, "--nodes=2", "--dry-run", "python", "script.py")
    assert as_json.code == 0 and json.loads(as_json.out)["dry_run"] is True
    assert (
        "hpcx: warning: script.py:8 L.Trainer(num_nodes=4) but the job asks --nodes 2 (2 nodes)"
        in as_json.err
    )
    fix = "(2 nodes): Lightning would wait for 4 nodes' ranks and hang until the time limit; ask --nodes 4 or"
    assert fix in as_json.err
    agreeing = run_cli(*submit, "-N", "4", "--dry-run", "python", "script.py")
    assert agreeing.code == 0 and "warning" not in agreeing.err


def test_a_node_count_from_the_site_file_or_the_user_config_is_named_there(tmp_path):
    site_file = tmp_path / "site.yaml"
    site_file.write_text(textwrap.dedent(SITE) + "defaults: {nodes: 2}\n")
    lightning(tmp_path, num_nodes=4)
    submit = ("--site", str(site_file), "submit", "torch-ddp", "--dry-run", "python", "train.py")
    fix = (
        ": Lightning would wait for 4 nodes' ranks and hang until the time limit; ask -N 4 or set num_nodes="
    )
    warning = "hpcx: warning: train.py:8 L.Trainer(num_nodes=4) but the job asks defaults.nodes"
    assert f"{warning} 2 (from the site file {site_file}) (2 nodes){fix}2\n" in run_cli(*submit).err
    config = tmp_path / "config" / "hpcx" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("version: 1\ndefaults:\n  nodes: 3\n")
    assert f"{warning} 3 (from the user config {config}) (3 nodes){fix}3\n" in run_cli(*submit).err


def test_a_digit_python_cannot_read_as_a_number_gives_no_warning_and_no_error(site, tmp_path):
    name = lightning(tmp_path, num_nodes=2, devices=1)
    assert warned(site, tmp_path, "python", name, "--trainer.devices", "\u00b2", nodes="2") == []
