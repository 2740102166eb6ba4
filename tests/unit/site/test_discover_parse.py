"""discover and drift as pure functions over output recorded from the test cluster (Slurm 22.05.8).

The real commands run against the live cluster in tests/slurm/test_site_admin.py.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from hpcx.errors import CommandError, SchedulerError
from hpcx.schedulers.slurm import parse_sacctmgr_names, parse_scontrol_config, parse_scontrol_partitions
from hpcx.site import Site, load_site
from hpcx.site.discover import (
    ClusterState,
    draft_site_doc,
    parse_gres_gpus,
    parse_sinfo_json,
    read_cluster,
    render_site_yaml,
    site_from_doc,
)
from hpcx.site.drift import Drift, compare_sites
from hpcx.site.schema import validate

REPO = Path(__file__).resolve().parents[3]
TESTBED = REPO / "examples" / "sites" / "testbed.yaml"

# `sinfo --json` on the test cluster (n1: 4 CPUs, 4000 MB; n2: the same plus gpu:tesla:2).
SINFO_JSON = {
    "meta": {
        "plugin": {"type": "openapi/v0.0.38", "name": "Slurm OpenAPI v0.0.38"},
        "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"},
    },
    "errors": [],
    "nodes": [
        {
            "architecture": "x86_64",
            "burstbuffer_network_address": "",
            "boards": 1,
            "boot_time": 1795685032,
            "comment": "",
            "cores": 1,
            "cpu_binding": 0,
            "cpu_load": 79,
            "extra": "",
            "free_memory": 21587,
            "cpus": 4,
            "last_busy": 1795685972,
            "features": "",
            "active_features": "",
            "gres": "",
            "gres_drained": "N/A",
            "gres_used": "gpu:0",
            "mcs_label": "",
            "name": "n1",
            "next_state_after_reboot": "invalid",
            "address": "127.0.0.1",
            "hostname": "vm",
            "state": "idle",
            "state_flags": [],
            "next_state_after_reboot_flags": [],
            "operating_system": "Linux 6.18.44-fc-v782 #1 SMP PREEMPT_DYNAMIC @0",
            "owner": None,
            "partitions": ["debug", "batch"],
            "port": 17001,
            "real_memory": 4000,
            "reason": "",
            "reason_changed_at": 0,
            "reason_set_by_user": None,
            "slurmd_start_time": 1795685756,
            "sockets": 4,
            "threads": 1,
            "temporary_disk": 0,
            "weight": 1,
            "tres": "cpu=4,mem=4000M,billing=4",
            "slurmd_version": "22.05.8",
            "alloc_memory": 0,
            "alloc_cpus": 0,
            "idle_cpus": 4,
            "tres_used": None,
            "tres_weighted": 0.0,
        },
        {
            "architecture": "x86_64",
            "burstbuffer_network_address": "",
            "boards": 1,
            "boot_time": 1795685032,
            "comment": "",
            "cores": 1,
            "cpu_binding": 0,
            "cpu_load": 84,
            "extra": "",
            "free_memory": 21248,
            "cpus": 4,
            "last_busy": 1795685974,
            "features": "",
            "active_features": "",
            "gres": "gpu:tesla:2",
            "gres_drained": "N/A",
            "gres_used": "gpu:tesla:0(IDX:N/A)",
            "mcs_label": "",
            "name": "n2",
            "next_state_after_reboot": "invalid",
            "address": "127.0.0.1",
            "hostname": "vm",
            "state": "idle",
            "state_flags": [],
            "next_state_after_reboot_flags": [],
            "operating_system": "Linux 6.18.44-fc-v782 #1 SMP PREEMPT_DYNAMIC @0",
            "owner": None,
            "partitions": ["debug", "batch", "gpu"],
            "port": 17002,
            "real_memory": 4000,
            "reason": "",
            "reason_changed_at": 0,
            "reason_set_by_user": None,
            "slurmd_start_time": 1795685756,
            "sockets": 4,
            "threads": 1,
            "temporary_disk": 0,
            "weight": 1,
            "tres": "cpu=4,mem=4000M,billing=4,gres/gpu=2",
            "slurmd_version": "22.05.8",
            "alloc_memory": 0,
            "alloc_cpus": 0,
            "idle_cpus": 4,
            "tres_used": None,
            "tres_weighted": 0.0,
        },
    ],
}

# `scontrol show partition -o`, verbatim.
SCONTROL_PARTITIONS = """\
PartitionName=debug AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A DefaultTime=00:10:00 DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=2 MaxTime=00:30:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=n[1-2] PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=8 TotalNodes=2 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED TRES=cpu=8,mem=8000M,node=2,billing=8,gres/gpu=2
PartitionName=batch AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO QoS=N/A DefaultTime=01:00:00 DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=2 MaxTime=2-00:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=n[1-2] PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=8 TotalNodes=2 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED TRES=cpu=8,mem=8000M,node=2,billing=8,gres/gpu=2
PartitionName=gpu AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO QoS=N/A DefaultTime=01:00:00 DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=1 MaxTime=1-00:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=n2 PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=4 TotalNodes=1 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED TRES=cpu=4,mem=4000M,node=1,billing=4,gres/gpu=2
"""

# `scontrol show config`: the header, the section lines and the keys discover reads, with a few neighbours.
SCONTROL_CONFIG = """\
Configuration data as of 2026-11-26T09:42:43
AccountingStorageType   = accounting_storage/slurmdbd
ClusterName             = hpcxtest
MaxArraySize            = 1001
MaxJobCount             = 10000
MpiDefault              = pmix
MpiParams               = (null)
SlurmctldPort           = 6817
SLURM_VERSION           = 22.05.8
UnkillableStepTimeout   = 60 sec

MPI Plugins Configuration:
PMIxDebug               = 0

Slurmctld(primary) at vm is UP
"""

SACCTMGR_QOS = "normal\n"
SACCTMGR_ACCOUNTS = "root\n"


def recorded_state(**changes) -> ClusterState:
    """The test cluster as discover reads it, from the recorded output above."""
    nodes, release = parse_sinfo_json(json.dumps(SINFO_JSON))
    state = ClusterState(
        nodes=nodes,
        partitions=parse_scontrol_partitions(SCONTROL_PARTITIONS),
        config=parse_scontrol_config(SCONTROL_CONFIG),
        slurm_version=release,
        accounts=parse_sacctmgr_names(SACCTMGR_ACCOUNTS),
        qos=parse_sacctmgr_names(SACCTMGR_QOS),
    )
    return replace(state, **changes)


def load_site_doc(doc: dict) -> Site:
    return site_from_doc(doc, source="cluster")


def with_partition_fields(name: str, **fields: str) -> dict[str, dict[str, str]]:
    partitions = parse_scontrol_partitions(SCONTROL_PARTITIONS)
    partitions[name] = {**partitions[name], **fields}
    return partitions


# --- parsers ---------------------------------------------------------------------------------------------------


def test_sinfo_json_nodes_with_cpus_memory_gpus_and_partitions():
    nodes, release = parse_sinfo_json(json.dumps(SINFO_JSON))
    assert release == "22.05.8"
    n1, n2 = nodes
    assert (n1.name, n1.cpus, n1.mem_mb, n1.gpus, n1.gpu_type) == ("n1", 4, 4000, 0, None)
    assert (n2.name, n2.gpus, n2.gpu_type) == ("n2", 2, "tesla")
    assert n1.partitions == ("debug", "batch") and n2.partitions == ("debug", "batch", "gpu")


@pytest.mark.parametrize(
    "gres, expected",
    [
        ("", (0, None)),
        ("(null)", (0, None)),
        ("gpu:2", (2, None)),
        ("gpu:tesla:2", (2, "tesla")),
        ("gpu:a100:4(S:0-1)", (4, "a100")),
        ("gpu:tesla:2,mps:200", (2, "tesla")),
        ("gpu:a100:2,gpu:v100:2", (4, None)),  # mixed types: no single type to promise
    ],
)
def test_gres_gpu_count_and_type(gres, expected):
    assert parse_gres_gpus(gres) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "sinfo: error: slurm_load_node: Unable to contact slurm controller",
            "printed something that is not JSON",
        ),
        ("", "printed something that is not JSON"),
        ('{"meta": {}, "errors": []}', "without a list of nodes"),
        ('[{"name": "n1"}]', "without a list of nodes"),
        ('{"errors": [{"error": "Invalid user"}], "nodes": []}', "reported errors: .*Invalid user"),
        (
            '{"errors": [], "nodes": [{"name": "n1", "cpus": "four", "real_memory": 1}]}',
            "a node hpcx cannot read",
        ),
        ('{"errors": [], "nodes": [{"name": "n1"}]}', "a node hpcx cannot read"),
    ],
)
def test_garbage_from_sinfo_is_a_scheduler_error_naming_the_command(text, message):
    with pytest.raises(SchedulerError, match=message) as err:
        parse_sinfo_json(text)
    assert str(err.value).startswith("`sinfo --json` ")
    assert "\n" not in str(err.value)


def test_scontrol_partitions_one_line_each_in_order():
    parts = parse_scontrol_partitions(SCONTROL_PARTITIONS)
    assert list(parts) == ["debug", "batch", "gpu"]
    assert parts["debug"]["MaxTime"] == "00:30:00" and parts["debug"]["Default"] == "YES"
    assert parts["batch"]["MaxTime"] == "2-00:00:00" and parts["gpu"]["Nodes"] == "n2"
    assert parts["debug"]["TRES"] == "cpu=8,mem=8000M,node=2,billing=8,gres/gpu=2"  # "=" inside a value


def test_scontrol_partitions_garbage_names_the_command():
    with pytest.raises(SchedulerError, match=r"`scontrol show partition -o` printed a line without"):
        parse_scontrol_partitions("slurm_load_partitions: Unable to contact slurm controller\n")


def test_scontrol_config_keys_and_the_first_value_wins():
    config = parse_scontrol_config(SCONTROL_CONFIG)
    assert config["ClusterName"] == "hpcxtest" and config["MaxArraySize"] == "1001"
    assert config["MpiDefault"] == "pmix" and config["UnkillableStepTimeout"] == "60 sec"
    assert not any(key.startswith(("Configuration", "Slurmctld(")) for key in config)
    assert parse_scontrol_config("A = 1\nA = 2\n") == {"A": "1"}


def test_sacctmgr_names():
    assert parse_sacctmgr_names(SACCTMGR_QOS) == ("normal",)
    assert parse_sacctmgr_names("b\na\n\na\n") == ("a", "b")


# --- the drafted site ------------------------------------------------------------------------------------------


def test_draft_of_the_test_cluster_has_its_real_limits_and_validates():
    doc = draft_site_doc(recorded_state())
    assert validate(doc) == []
    cluster = doc["clusters"]["hpcxtest"]
    assert cluster["default_partition"] == "debug"
    assert cluster["launchers"] == {"srun": {"type": "srun", "mpi": "pmix"}}
    assert cluster["partitions"]["debug"] == {
        "max_time": "00:30:00",
        "default_time": "00:10:00",
        "max_nodes": 2,
        "cpus_per_node": 4,
        "mem_per_node_mb": 4000,
        "gpus_per_node": 0,  # n1 has no GPU: the minimum over debug's nodes
        # ...and the node types say that n2 has two, so a one-node GPU job is judged as Slurm judges it
        "node_types": [  # with their names, for -w and -x
            {"count": 1, "cpus": 4, "mem_mb": 4000, "nodes": "n1"},
            {"count": 1, "cpus": 4, "mem_mb": 4000, "gpus": 2, "gpu_type": "tesla", "nodes": "n2"},
        ],
        "max_array_size": 1001,
        "launcher": "srun",
        "nodes": "n[1-2]",
    }
    assert "node_types" not in cluster["partitions"]["gpu"]  # one kind of node: nothing to say
    gpu = cluster["partitions"]["gpu"]
    assert (gpu["max_time"], gpu["max_nodes"], gpu["gpus_per_node"], gpu["gpu_type"]) == (
        "1-00:00:00",
        1,
        2,
        "tesla",
    )


def test_per_node_limits_are_the_minimum_over_the_partition():
    nodes = recorded_state().nodes
    bigger_n1 = replace(nodes[0], cpus=64, mem_mb=256000, features=("ib", "skylake"))
    smaller_n2 = replace(nodes[1], cpus=2, mem_mb=1000, features=("ib",))
    doc = draft_site_doc(recorded_state(nodes=(bigger_n1, smaller_n2)))
    batch = doc["clusters"]["hpcxtest"]["partitions"]["batch"]
    assert (batch["cpus_per_node"], batch["mem_per_node_mb"], batch["features"]) == (2, 1000, ["ib"])


def test_unlimited_and_restricted_partition_fields():
    partitions = with_partition_fields(
        "batch",
        MaxNodes="UNLIMITED",
        MaxTime="UNLIMITED",
        DefaultTime="NONE",
        AllowAccounts="physics,chem",
        AllowQos="normal",
    )
    batch = draft_site_doc(recorded_state(partitions=partitions))["clusters"]["hpcxtest"]["partitions"][
        "batch"
    ]
    assert batch["max_nodes"] == 2  # UNLIMITED: as many as the partition has
    assert batch["max_time"] == "UNLIMITED" and "default_time" not in batch
    assert batch["accounts"] == ["physics", "chem"] and batch["qos"] == ["normal"]
    assert (
        load_site_doc(draft_site_doc(recorded_state(partitions=partitions))).partitions["batch"].max_time_min
        is None
    )


def test_partition_without_nodes_is_left_out_and_said_so():
    partitions = parse_scontrol_partitions(
        SCONTROL_PARTITIONS + "PartitionName=empty Nodes=(null) MaxTime=10\n"
    )
    state = recorded_state(partitions=partitions)
    assert "empty" not in draft_site_doc(state)["clusters"]["hpcxtest"]["partitions"]
    assert "# Partition empty has no nodes and is left out." in render_site_yaml(
        draft_site_doc(state), state, datetime.now(timezone.utc)
    )


def test_no_mpi_default_and_no_array_limit():
    config = {**parse_scontrol_config(SCONTROL_CONFIG), "MpiDefault": "none", "MaxArraySize": "0"}
    doc = draft_site_doc(recorded_state(config=config))
    assert doc["clusters"]["hpcxtest"]["launchers"] == {"srun": {"type": "srun"}}
    assert "max_array_size" not in doc["clusters"]["hpcxtest"]["partitions"]["debug"]


def test_a_time_hpcx_cannot_read_names_scontrol():
    partitions = with_partition_fields("debug", MaxTime="soon")
    with pytest.raises(SchedulerError, match=r"`scontrol show partition -o` printed MaxTime='soon'.*debug"):
        draft_site_doc(recorded_state(partitions=partitions))


def test_rendered_yaml_has_the_header_loads_back_and_quotes_times():
    state = recorded_state()
    doc = draft_site_doc(state)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    text = render_site_yaml(doc, state, at)
    assert text.startswith(
        "# Discovered by `hpcx site discover` from Slurm cluster hpcxtest (Slurm 22.05.8)\n"
    )
    assert "# at 2026-01-02T03:04:05+00:00." in text
    assert "# Accounts in accounting: root." in text and "# QOS in accounting: normal." in text
    assert 'max_time: "00:30:00"' in text
    assert yaml.safe_load(text) == doc
    no_accounting = render_site_yaml(doc, replace(state, accounts=None, qos=None), at)
    assert "sacctmgr) was not reachable" in no_accounting


def test_site_from_an_invalid_draft_is_a_scheduler_error():
    with pytest.raises(SchedulerError, match="drafted from the cluster is invalid"):
        site_from_doc({"version": 1, "clusters": {"c": {"scheduler": "slurm", "partitions": {}}}}, source="x")


# --- drift -----------------------------------------------------------------------------------------------------


def cluster_site() -> Site:
    return load_site_doc(draft_site_doc(recorded_state()))


def site_with(tmp_path: Path, edit) -> Site:
    """The drafted site with ``edit`` applied to its document, loaded from a file like a user's."""
    doc = draft_site_doc(recorded_state())
    edit(doc["clusters"]["hpcxtest"])
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_site(str(path))


def test_no_drift_against_itself_even_when_times_are_spelled_differently(tmp_path):
    def respell(cluster):
        cluster["partitions"]["debug"]["max_time"] = 30
        cluster["partitions"]["batch"]["max_time"] = "48:00:00"

    assert compare_sites(site_with(tmp_path, respell), cluster_site()) == []


def test_one_changed_limit_is_exactly_one_drift(tmp_path):
    def longer(cluster):
        cluster["partitions"]["debug"]["max_time"] = "01:00:00"

    drift = compare_sites(site_with(tmp_path, longer), cluster_site())
    assert drift == [Drift("debug", "max_time", "01:00:00", "00:30:00")]
    assert drift[0].text() == "partition debug: max_time site 01:00:00, cluster 00:30:00"
    assert drift[0].to_dict() == {
        "partition": "debug",
        "field": "max_time",
        "site": "01:00:00",
        "cluster": "00:30:00",
    }


def test_gone_and_new_partitions_gpu_type_and_default_partition(tmp_path):
    def edit(cluster):
        cluster["partitions"]["old"] = cluster["partitions"].pop("batch")
        cluster["partitions"]["gpu"]["gpu_type"] = "a100"
        cluster["default_partition"] = "old"

    texts = [d.text() for d in compare_sites(site_with(tmp_path, edit), cluster_site())]
    assert texts == [
        "cluster: default_partition site old, cluster debug",
        "partition gpu: gpu_type site a100, cluster tesla",
        "partition old: gone from the cluster",
        "partition batch: new on the cluster, not in the site file",
    ]


def test_a_limit_the_site_file_leaves_out_is_drift(tmp_path):
    def forget(cluster):
        del cluster["partitions"]["debug"]["max_array_size"]
        del cluster["partitions"]["debug"]["mem_per_node_mb"]

    texts = [d.text() for d in compare_sites(site_with(tmp_path, forget), cluster_site())]
    assert texts == [
        "partition debug: mem_per_node_mb site (not set), cluster 4000",
        "partition debug: max_array_size site (not set), cluster 1001",
    ]


def test_accounts_restricted_on_the_cluster_is_drift(tmp_path):
    partitions = with_partition_fields("batch", AllowAccounts="physics")
    live = load_site_doc(draft_site_doc(recorded_state(partitions=partitions)))
    drift = compare_sites(site_with(tmp_path, lambda c: None), live)
    assert [d.text() for d in drift] == ["partition batch: accounts site (none), cluster physics"]


# --- failures at the edge: a stand-in Slurm on PATH ------------------------------------------------------------


def fake_slurm(tmp_path: Path, monkeypatch, script: str) -> None:
    """Put a `sinfo` that runs ``script`` first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    sinfo = bindir / "sinfo"
    sinfo.write_text(f"#!/bin/sh\n{script}\n")
    sinfo.chmod(sinfo.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")


def test_sinfo_that_hangs_is_a_timeout_naming_the_command(tmp_path, monkeypatch):
    fake_slurm(tmp_path, monkeypatch, "exec sleep 30")
    with pytest.raises(CommandError, match=r"^`sinfo --json` timed out after 0.5 s"):
        read_cluster(timeout_s=0.5)


def test_the_cluster_is_read_from_slurms_commands_and_accounting_is_optional(tmp_path, monkeypatch):
    fake_slurm(tmp_path, monkeypatch, f"cat <<'EOF'\n{json.dumps(SINFO_JSON)}\nEOF")
    for name, script in {
        "scontrol": f"""case "$*" in
  "show partition -o") cat <<'EOF'\n{SCONTROL_PARTITIONS}EOF\n;;
  "show config") cat <<'EOF'\n{SCONTROL_CONFIG}EOF\n;;
  *) exit 1;;
esac""",
        "sacctmgr": f"""case "$*" in
  "-nP show account format=Account") printf '{SACCTMGR_ACCOUNTS}';;
  "-nP show qos format=Name") printf '{SACCTMGR_QOS}';;
  *) exit 1;;
esac""",
    }.items():
        (tmp_path / "bin" / name).write_text(f"#!/bin/sh\n{script}\n")
        (tmp_path / "bin" / name).chmod(0o755)

    assert read_cluster(timeout_s=10) == recorded_state()

    (tmp_path / "bin" / "sacctmgr").write_text(
        "#!/bin/sh\necho 'sacctmgr: error: slurmdbd down' >&2; exit 1\n"
    )
    assert read_cluster(timeout_s=10) == recorded_state(accounts=None, qos=None)


def test_cli_prints_one_line_for_garbage_and_for_a_down_controller(tmp_path, monkeypatch, hpcx):
    fake_slurm(tmp_path, monkeypatch, "echo '<html>proxy error</html>'")
    hpcx.env["PATH"] = os.environ["PATH"]
    proc = hpcx("site", "discover", check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        proc.stderr
        == "hpcx: error: `sinfo --json` printed something that is not JSON: '<html>proxy error</html>\\n'\n"
    )

    (tmp_path / "bin" / "sinfo").write_text(
        "#!/bin/sh\necho 'sinfo: error: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n"
    )
    proc = hpcx("--site", str(TESTBED), "site", "diff", check=False)
    assert proc.returncode == 1
    assert proc.stderr == (
        "hpcx: error: `sinfo --json` exited 1: sinfo: error: Unable to contact slurm controller (connect failure)\n"
    )


def test_discover_refuses_to_overwrite_before_asking_slurm(tmp_path, hpcx):
    existing = tmp_path / "site.yaml"
    existing.write_text("keep me\n")
    proc = hpcx("site", "discover", "-o", str(existing), check=False)
    assert proc.returncode == 2 and "exists; pass --force" in proc.stderr
    assert existing.read_text() == "keep me\n" and "Traceback" not in proc.stderr


def test_diff_needs_a_site_file(hpcx):
    proc = hpcx("site", "diff", check=False)
    assert proc.returncode == 2 and "no site file to compare" in proc.stderr
