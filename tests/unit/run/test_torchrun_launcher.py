"""hpcx.runtime.torchrun: torchrun's arguments from the allocation, one agent per node, the user's own options
kept as given; the rendezvous on an address of the first node that every node reaches and Slurm's port."""

from __future__ import annotations

import pytest

from hpcx.errors import RuntimeFailure
from hpcx.runtime.torchrun import main, split_options, torchrun_argv

STEP = {
    "SLURM_JOB_ID": "4242",
    "SLURM_STEP_NUM_NODES": "2",
    "SLURM_NODEID": "0",
    "SLURM_STEP_RESV_PORTS": "12007-12008",
}


@pytest.fixture(autouse=True)
def _address(monkeypatch):
    monkeypatch.setenv("HPCX_MASTER_ADDR", "10.1.2.3")  # the site's address of the first node


def _opts(argv):
    return [w for w in argv if w.startswith("--")]


def test_the_first_node_hosts_the_rendezvous_on_its_reachable_address_and_the_steps_port():
    argv = torchrun_argv(["--nproc-per-node=2", "train.py", "--lr", "0.1"], STEP)
    assert argv[-3:] == ["train.py", "--lr", "0.1"]
    assert _opts(argv[:-2]) == [
        "--nnodes=2",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=10.1.2.3:12007",
        "--rdzv-conf=is_host=1",
        "--local-addr=10.1.2.3",
        "--rdzv-id=4242",
        "--nproc-per-node=2",
    ]


def test_another_node_joins_as_a_client_and_keeps_its_own_local_address():
    argv = torchrun_argv(["train.py"], {**STEP, "SLURM_NODEID": "1"})
    assert "--rdzv-conf=is_host=0" in argv and not any(w.startswith("--local-addr") for w in argv)
    assert "--rdzv-endpoint=10.1.2.3:12007" in argv


def test_gpus_on_the_node_are_the_workers_unless_given():
    assert "--nproc-per-node=4" in torchrun_argv(["t.py"], {**STEP, "SLURM_GPUS_ON_NODE": "4"})
    assert "--nproc-per-node=1" in torchrun_argv(["t.py"], STEP)
    given = torchrun_argv(["--nproc_per_node", "3", "t.py"], {**STEP, "SLURM_GPUS_ON_NODE": "4"})
    assert given.count("3") == 1 and not any(w.startswith("--nproc-per-node") for w in given)


def test_what_the_user_gave_wins_in_either_spelling():
    argv = torchrun_argv(
        [
            "--rdzv_endpoint",
            "h:1",
            "--nnodes=1:2",
            "--rdzv-id=mine",
            "--max-restarts",
            "2",
            "t.py",
            "--nnodes=9",
        ],
        STEP,
    )
    assert not any(
        w.startswith(("--rdzv-endpoint", "--rdzv-backend", "--rdzv-conf", "--local-addr")) for w in argv
    )
    assert "--nnodes=2" not in argv and "--rdzv-id=4242" not in argv
    assert argv[-2:] == ["t.py", "--nnodes=9"]  # the script's own arguments are never read as torchrun's


def test_standalone_gets_no_rendezvous_of_ours():
    argv = torchrun_argv(["--standalone", "t.py"], {"SLURM_JOB_ID": "1"})
    assert not any(w.startswith("--rdzv-endpoint") for w in argv) and argv[-2:] == ["--standalone", "t.py"]


def test_without_a_reserved_port_the_batch_steps_free_port_is_taken():
    env = {k: v for k, v in STEP.items() if k != "SLURM_STEP_RESV_PORTS"}
    assert "--rdzv-endpoint=10.1.2.3:23456" in torchrun_argv(["t.py"], {**env, "HPCX_RDZV_PORT": "23456"})


def test_several_nodes_without_any_port_is_an_error_naming_the_fix():
    env = {k: v for k, v in STEP.items() if k != "SLURM_STEP_RESV_PORTS"}
    with pytest.raises(RuntimeFailure) as err:
        torchrun_argv(["t.py"], env)
    assert "SLURM_STEP_RESV_PORTS" in err.value.message and "--resv-ports=1" in (err.value.hint or "")


def test_one_node_without_a_port_finds_a_free_one():
    argv = torchrun_argv(["t.py"], {"SLURM_STEP_NUM_NODES": "1", "SLURM_NODEID": "0"})
    port = next(w for w in argv if w.startswith("--rdzv-endpoint=")).rsplit(":", 1)[1]
    assert port.isdigit() and 0 < int(port) < 65536


def test_no_program_is_an_error():
    with pytest.raises(RuntimeFailure):
        torchrun_argv(["--nnodes=2"], STEP)


def test_options_end_at_the_program():
    given, words, program = split_options(["--nnodes", "2", "--standalone", "-m", "pkg.train", "--x", "1"])
    assert given == {"nnodes": "2", "standalone": None}
    assert words == ["--nnodes", "2", "--standalone"] and program == ["-m", "pkg.train", "--x", "1"]


def test_no_gpus_on_the_node_is_one_worker():
    assert "--nproc-per-node=1" in torchrun_argv(["t.py"], {**STEP, "SLURM_GPUS_ON_NODE": "0"})


def test_a_port_list_and_a_bad_fallback():
    assert "--rdzv-endpoint=10.1.2.3:12011" in torchrun_argv(
        ["t.py"], {**STEP, "SLURM_STEP_RESV_PORTS": "12011,12019"}
    )
    env = {k: v for k, v in STEP.items() if k != "SLURM_STEP_RESV_PORTS"}
    with pytest.raises(RuntimeFailure) as err:
        torchrun_argv(["t.py"], {**env, "HPCX_RDZV_PORT": "soon"})
    assert str(err.value) == (
        "torchrun's rendezvous port: the step has no reserved port (SLURM_STEP_RESV_PORTS) and HPCX_RDZV_PORT is "
        "not set; launch with `srun --resv-ports=1` (slurm.conf needs MpiParams=ports=12000-12999), or export "
        "HPCX_RDZV_PORT with a port free on the first node"
    )


def test_a_double_dash_ends_torchruns_options():
    given, words, program = split_options(["--nnodes=2", "--", "t.py", "--lr=1"])
    assert given == {"nnodes": "2"} and words == ["--nnodes=2"] and program == ["--", "t.py", "--lr=1"]
    assert split_options(["--rdzv_conf=a=1,b=2", "t.py"])[0] == {"rdzv-conf": "a=1,b=2"}
    assert split_options(["--nnodes"])[0] == {"nnodes": None}  # a value missing at the end: torchrun says so


def test_main_names_what_is_missing_and_exits_2(capsys):
    assert main(["--", "--nnodes=2"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "hpcx.runtime.torchrun: no program to run (python -m hpcx.runtime.torchrun [options] SCRIPT ARGS)\n"
    )


def test_fallbacks_of_the_allocations_values():
    bare = torchrun_argv(["t.py"], {"SLURM_STEP_RESV_PORTS": "12000"})  # no node count, id or node index
    assert _opts(bare) == [
        "--nnodes=1",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=10.1.2.3:12000",
        "--rdzv-conf=is_host=1",
        "--local-addr=10.1.2.3",
    ]
    job = {"SLURM_NNODES": "3", "SLURM_NODEID": "2", "SLURM_STEP_RESV_PORTS": "12000"}
    assert "--nnodes=3" in torchrun_argv(["t.py"], job)  # the job's nodes where the step's are not given


def test_the_users_own_rendezvous_pieces_are_kept():
    argv = torchrun_argv(["--rdzv-conf=join_timeout=900", "--local_addr=10.9.9.9", "t.py"], STEP)
    assert "--rdzv-endpoint=10.1.2.3:12007" in argv and "--rdzv-backend=c10d" in argv
    assert not any(w.startswith(("--rdzv-conf=is_host", "--local-addr=10.1.2.3")) for w in argv)
    assert argv[-3:] == ["--rdzv-conf=join_timeout=900", "--local_addr=10.9.9.9", "t.py"]
    static = torchrun_argv(["--master-addr=10.0.0.1", "--master-port=29500", "t.py"], STEP)
    assert not any(w.startswith(("--rdzv-backend", "--rdzv-endpoint", "--local-addr")) for w in static)
    elastic = torchrun_argv(["--nnodes=1:2", "t.py"], STEP)  # an elastic range is the user's to give
    assert "--nnodes=1:2" in elastic and "--nnodes=2" not in elastic


def test_another_node_gives_its_own_address_where_it_resolves():
    argv = torchrun_argv(["t.py"], {**STEP, "SLURM_NODEID": "1", "SLURMD_NODENAME": "localhost"})
    assert "--local-addr=127.0.0.1" in argv and "--rdzv-conf=is_host=0" in argv


def test_the_agents_step_gets_the_smallest_nodes_cpus():
    from hpcx.runtime.torchrun import step_cpus

    assert step_cpus({"SLURM_JOB_CPUS_PER_NODE": "4(x2)"}) == 4
    assert step_cpus({"SLURM_JOB_CPUS_PER_NODE": "8(x3),2"}) == 2
    assert step_cpus({"SLURM_CPUS_ON_NODE": "6"}) == 6 and step_cpus({}) == 1
    assert main(["--step-cpus"]) == 0
