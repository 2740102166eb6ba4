"""Pre-flight rules as a user meets them: which partition a request may use, the one line that says why not
(the value, where it was set, the limit, the fix), and which partition hpcx picks when none is named."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from hpcx.cli import main
from hpcx.errors import RejectedError
from hpcx.site import load_site
from hpcx.submit.submission import Request, render_script, resolve

REPO = Path(__file__).resolve().parents[3]
TESTBED = str(REPO / "examples" / "sites" / "testbed.yaml")

# Two uniform partitions alike but for phys's account and QOS allow-lists.
LISTS = """
version: 1
clusters:
  c:
    scheduler: slurm
    default_partition: open
    partitions:
      phys: {max_time: "01:00:00", max_nodes: 2, cpus_per_node: 8, mem_per_node_mb: 8000,
             accounts: [physics, chem], qos: [normal, long]}
      open: {max_time: "01:00:00", max_nodes: 2, cpus_per_node: 8, mem_per_node_mb: 8000}
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith(("HPCX_", "SLURM_", "SBATCH_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no user config
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HPCX_RUNS", str(tmp_path / "runs"))


def _site_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def _resolve(site_path: str, *, array=None, kind="serial", **options):
    return resolve(Request(kind, options=options, command=("true",), array=array), load_site(site_path))


def _refusal(site_path: str, **options) -> str:
    with pytest.raises(RejectedError) as err:
        _resolve(site_path, **options)
    assert err.value.exit_code == 3
    return str(err.value)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- account and QOS allow-lists -----------------------------------------------------------------------------


def test_an_account_the_partition_does_not_allow_is_refused_naming_the_allowed_ones(tmp_path):
    site = _site_file(tmp_path, LISTS)
    assert _resolve(site, partition="phys", account="physics").partition.name == "phys"
    assert _resolve(site, partition="phys").partition.name == "phys"  # no account: Slurm's default one
    assert _resolve(site, partition="open", account="bio").partition.name == "open"  # no list: any account
    assert _refusal(site, partition="phys", account="bio") == (
        "--account bio may not use partition phys (allowed: physics, chem); "
        "use --partition open (max 01:00:00, 2 nodes)"
    )


def test_a_qos_the_partition_does_not_allow_is_refused_naming_the_allowed_ones(tmp_path):
    site = _site_file(tmp_path, LISTS)
    assert _resolve(site, partition="phys", qos="long").partition.name == "phys"
    assert _resolve(site, partition="open", qos="high").partition.name == "open"  # no list: any QOS
    assert _refusal(site, partition="phys", qos="high") == (
        "--qos high is not allowed on partition phys (allowed: normal, long); "
        "use --partition open (max 01:00:00, 2 nodes)"
    )


def test_an_account_or_qos_set_in_the_environment_is_named_there(tmp_path, monkeypatch):
    site = _site_file(tmp_path, LISTS)
    monkeypatch.setenv("HPCX_ACCOUNT", "bio")
    monkeypatch.setenv("HPCX_QOS", "high")
    assert _refusal(site, partition="phys") == (
        "HPCX_ACCOUNT=bio may not use partition phys (allowed: physics, chem); "
        "HPCX_QOS=high is not allowed on partition phys (allowed: normal, long); "
        "use --partition open (max 01:00:00, 2 nodes)"
    )
    assert _resolve(site).partition.name == "open"  # chosen automatically: the one that allows them


def test_a_refused_account_exits_3_with_one_line(tmp_path, capsys):
    site = _site_file(tmp_path, LISTS)
    code, out, err = _cli(capsys, "--site", site, "render", "-p", "phys", "-A", "bio", "serial", "true")
    assert (code, out) == (3, "")
    assert err == (
        "hpcx: error: -A bio may not use partition phys (allowed: physics, chem); "  # as typed
        "use --partition open (max 01:00:00, 2 nodes)\n"
    )


# --- CPUs, memory and GPUs of a uniform partition -----------------------------------------------------------


UNIFORM = """
version: 1
clusters:
  c:
    scheduler: slurm
    partitions:
      open: {max_time: "01:00:00", max_nodes: 2, cpus_per_node: 8, mem_per_node_mb: 8000, gpus_per_node: 2}
"""


def test_a_uniform_partition_takes_a_node_exactly_full_and_not_one_cpu_more(tmp_path):
    site = _site_file(tmp_path, UNIFORM)
    prep = _resolve(site, ntasks_per_node="4", cpus_per_task="2", mem="8000M", gpus_per_node="2")
    assert prep.partition.name == "open"
    assert _refusal(site, partition="open", ntasks_per_node="3", cpus_per_task="3") == (
        "3 tasks x 3 CPUs = 9 CPUs per node exceeds partition open's 8 CPUs per node; "
        "no partition fits this request: ask for less"
    )


def test_a_uniform_partition_refuses_memory_and_gpus_over_its_nodes(tmp_path):
    site = _site_file(tmp_path, UNIFORM)
    assert _refusal(site, partition="open", mem="8001M") == (
        "--mem 8001M exceeds partition open's 8000M per node; no partition fits this request: ask for less"
    )
    assert _refusal(site, partition="open", mem="8G").startswith("--mem 8192M exceeds partition open's 8000M")
    assert _refusal(site, partition="open", gpus_per_node="3") == (
        "--gpus-per-node 3 exceeds partition open's 2 GPUs per node; no partition fits this request: ask for less"
    )


def test_cpu_counts_set_elsewhere_are_named_where_they_were_set(tmp_path, monkeypatch):
    site = _site_file(tmp_path, UNIFORM)
    monkeypatch.setenv("HPCX_CPUS_PER_TASK", "3")
    assert _refusal(site, partition="open", ntasks_per_node="4").startswith(
        "4 tasks x 3 CPUs = 12 CPUs per node exceeds partition open's 8 CPUs per node "
        "(set by HPCX_CPUS_PER_TASK=3); "
    )
    monkeypatch.setenv("HPCX_NTASKS_PER_NODE", "4")
    assert _refusal(site, partition="open").startswith(
        "4 tasks x 3 CPUs = 12 CPUs per node exceeds partition open's 8 CPUs per node "
        "(set by HPCX_NTASKS_PER_NODE=4; HPCX_CPUS_PER_TASK=3); "
    )


def test_memory_gpus_time_and_nodes_set_elsewhere_are_named_where_they_were_set(tmp_path, monkeypatch):
    site = _site_file(tmp_path, UNIFORM)
    for name, value in (("MEM", "9G"), ("GPUS_PER_NODE", "3"), ("TIME", "2:00:00"), ("NODES", "3")):
        monkeypatch.setenv(f"HPCX_{name}", value)
    assert _refusal(site, partition="open") == (
        "HPCX_TIME=02:00:00 exceeds partition open's MaxTime 01:00:00; "
        "HPCX_NODES=3 exceeds partition open's MaxNodes 2; "
        "HPCX_MEM=9216M exceeds partition open's 8000M per node; "
        "HPCX_GPUS_PER_NODE=3 exceeds partition open's 2 GPUs per node; "
        "no partition fits this request: ask for less"
    )


def test_memory_from_the_site_defaults_is_named_in_the_site_file(tmp_path):
    site = _site_file(
        tmp_path,
        UNIFORM.replace(
            "gpus_per_node: 2}",
            "gpus_per_node: 2}\n"
            '      big: {max_time: "01:00:00", max_nodes: 1, cpus_per_node: 8, mem_per_node_mb: 32000}',
        )
        + "defaults:\n  mem: 16G\n",
    )
    message = _refusal(site, partition="open")
    assert message == (
        f"defaults.mem 16384M (from the site file {Path(site).resolve()}) exceeds partition open's 8000M per node; "
        "use --partition big (max 01:00:00, 1 nodes)"
    )


def test_a_partition_without_a_memory_limit_takes_any_memory(tmp_path):
    site = _site_file(tmp_path, UNIFORM.replace(", mem_per_node_mb: 8000", ""))
    assert _resolve(site, partition="open", mem="1T").spec.resources.mem_mb == 1024 * 1024


# --- mixed partitions (node types) ---------------------------------------------------------------------------


MIXED = """
version: 1
clusters:
  c:
    scheduler: slurm
    partitions:
      mix:
        max_time: "01:00:00"
        max_nodes: 3
        cpus_per_node: 8
        node_types:
          - {count: 2, cpus: 8}
          - {count: 1, cpus: 8, mem_mb: 16000, gpus: 2, gpu_type: a100}
"""


def test_a_mixed_partition_takes_what_fits_its_nodes_exactly(tmp_path):
    site = _site_file(tmp_path, MIXED)
    assert _resolve(site, nodes="2", ntasks_per_node="8", mem="64G").partition.name == "mix"  # no mem limit
    assert _resolve(site, ntasks_per_node="8", mem="16000M", gpus_per_node="2").partition.name == "mix"
    assert _resolve(TESTBED, partition="debug", ntasks_per_node="4", mem="4000M").partition.name == "debug"


def test_a_mixed_partition_says_how_many_nodes_have_what(tmp_path, monkeypatch):
    site = _site_file(tmp_path, MIXED)
    assert _refusal(
        site, partition="mix", nodes="2", ntasks_per_node="2", cpus_per_task="2", gpus_per_node="1"
    ) == (
        "2 node(s) with 4 CPUs, 1 GPUs each requested, but only 1 of partition mix's nodes have that "
        "(2 x (8 CPUs, 0 GPUs); 1 x (8 CPUs, 16000M, 2 GPUs)); no partition fits this request: ask for less"
    )
    for name, value in (
        ("NTASKS_PER_NODE", "2"),
        ("CPUS_PER_TASK", "2"),
        ("MEM", "20G"),
        ("GPUS_PER_NODE", "1"),
    ):
        monkeypatch.setenv(f"HPCX_{name}", value)
    assert _refusal(site, partition="mix").startswith(
        "1 node(s) with 4 CPUs, 20480M, 1 GPUs each requested, but only 0 of partition mix's nodes have that "
        "(2 x (8 CPUs, 0 GPUs); 1 x (8 CPUs, 16000M, 2 GPUs)) (set by HPCX_NTASKS_PER_NODE=2; "
        "HPCX_CPUS_PER_TASK=2; HPCX_MEM=20480M; HPCX_GPUS_PER_NODE=1); "
    )


def test_too_many_nodes_for_a_mixed_partition_is_said_once(tmp_path):
    assert _refusal(TESTBED, partition="debug", nodes="3", gpus_per_node="1") == (
        "--nodes 3 exceeds partition debug's MaxNodes 2; no partition fits this request: ask for less"
    )


# --- MaxArraySize --------------------------------------------------------------------------------------------


def test_without_a_max_array_size_in_the_site_file_slurms_default_1001_applies(tmp_path):
    site = _site_file(tmp_path, UNIFORM)
    assert _resolve(site, kind="array", array="0-1000").array.indices[-1] == 1000
    with pytest.raises(RejectedError) as err:
        _resolve(site, kind="array", array="0-1001")
    assert str(err.value) == (
        "--array 0-1001 reaches index 1001, but MaxArraySize on partition open is 1001 (indices 0-1000); "
        "split it into several arrays, or use `hpcx sweep`, which chunks large sweeps"
    )


def test_the_sites_max_array_size_bounds_the_highest_index(tmp_path):
    site = _site_file(tmp_path, UNIFORM.replace("gpus_per_node: 2}", "gpus_per_node: 2, max_array_size: 10}"))
    assert _resolve(site, kind="array", array="0-9").array.indices == tuple(range(10))
    with pytest.raises(
        RejectedError,
        match=r"^--array 10,3 reaches index 10, but MaxArraySize on partition "
        r"open is 10 \(indices 0-9\); split it",
    ):
        _resolve(site, kind="array", array="10,3")


# --- the partition chosen when none is named ----------------------------------------------------------------


def test_without_time_each_partition_is_judged_by_its_own_default_time(tmp_path):
    site = _site_file(
        tmp_path,
        """
        version: 1
        clusters:
          c:
            scheduler: slurm
            partitions:
              quick: {max_time: "5", default_time: "5", max_nodes: 1, cpus_per_node: 4}
        """,
    )
    prep = _resolve(site)  # hpcx's own default (10 minutes) would not fit; the partition's 5 does
    assert (prep.partition.name, prep.spec.resources.time_min, prep.sources["time_min"]) == (
        "quick",
        5,
        "partition",
    )
    assert (
        "#SBATCH --time=00:05:00\n"
        in render_script(prep, run_id="r", run_dir=tmp_path, workdir=tmp_path).text
    )
    with pytest.raises(
        RejectedError, match=r"no partition of c fits this request \(quick: --time 00:10:00 exceeds"
    ):
        _resolve(site, time="10")


def test_a_given_time_is_judged_as_given_not_as_the_partitions_default():
    prep = _resolve(TESTBED, time="45")  # debug (max 30 min, default 10) must not take it
    assert prep.partition.name == "batch" and prep.spec.resources.time_min == 45


def test_no_partition_fits_names_each_partitions_reason_where_the_value_was_set(monkeypatch):
    monkeypatch.setenv("HPCX_TIME", "3-00:00:00")
    with pytest.raises(RejectedError) as err:
        _resolve(TESTBED)
    assert str(err.value) == (
        "no partition of hpcxtest fits this request (debug: HPCX_TIME=3-00:00:00 exceeds partition debug's "
        "MaxTime 00:30:00; batch: HPCX_TIME=3-00:00:00 exceeds partition batch's MaxTime 2-00:00:00; "
        "gpu: HPCX_TIME=3-00:00:00 exceeds partition gpu's MaxTime 1-00:00:00); ask for less"
    )


def test_the_shortest_partition_that_fits_is_chosen_and_unlimited_comes_last(tmp_path):
    site = _site_file(
        tmp_path,
        """
        version: 1
        clusters:
          c:
            scheduler: slurm
            partitions:
              forever: {max_time: UNLIMITED, max_nodes: 2, cpus_per_node: 4}
              week: {max_time: "7-00:00:00", max_nodes: 2, cpus_per_node: 4}
              hour: {max_time: "60", max_nodes: 2, cpus_per_node: 4}
        """,
    )
    assert _resolve(site, time="30").choice["why"] == (
        "partition hour chosen automatically: it fits with the least waste (max 01:00:00, 2 nodes, no GPUs)"
    )
    assert _resolve(site, time="2:00:00").partition.name == "week"
    prep = _resolve(site, time="8-00:00:00")
    assert prep.choice["why"] == (
        "partition forever chosen automatically: it fits with the least waste (max unlimited, 2 nodes, no GPUs)"
    )
    assert prep.choice["candidates"] == ["forever"]


def test_the_fix_names_every_other_partition_that_fits_and_only_those(tmp_path):
    site = _site_file(
        tmp_path,
        """
        version: 1
        clusters:
          c:
            scheduler: slurm
            partitions:
              small: {max_time: "60", max_nodes: 1, cpus_per_node: 4}
              wide: {max_time: "60", max_nodes: 4, cpus_per_node: 4}
              short: {max_time: "10", max_nodes: 4, cpus_per_node: 4}
              forever: {max_time: UNLIMITED, max_nodes: 8, cpus_per_node: 4}
        """,
    )
    assert _refusal(site, partition="small", nodes="2", time="30") == (
        "--nodes 2 exceeds partition small's MaxNodes 1; "
        "use --partition wide (max 01:00:00, 4 nodes) or --partition forever (max unlimited, 8 nodes)"
    )


def test_an_unknown_partition_names_the_known_ones_and_where_it_was_set(tmp_path, monkeypatch):
    site = _site_file(tmp_path, LISTS)
    assert _refusal(site, partition="gpu") == "--partition gpu does not exist on c; use one of: phys, open"
    monkeypatch.setenv("HPCX_PARTITION", "gpu")
    assert _refusal(site) == "HPCX_PARTITION=gpu does not exist on c; use one of: phys, open"


def test_a_gpu_job_goes_where_no_gpu_idles_and_a_cpu_job_never_to_gpu_nodes(tmp_path):
    assert _resolve(TESTBED, gpus_per_node="2", time="20").choice["why"] == (
        "partition debug chosen automatically: it fits with the least waste (max 00:30:00, 2 nodes, "
        "up to 2 GPUs per node)"
    )
    site = _site_file(
        tmp_path,
        """
        version: 1
        clusters:
          c:
            scheduler: slurm
            partitions:
              gpu: {max_time: "30", max_nodes: 2, cpus_per_node: 4, gpus_per_node: 4}
              mix:
                max_time: "60"
                max_nodes: 2
                cpus_per_node: 4
                node_types: [{count: 1, cpus: 4, gpus: 1}, {count: 1, cpus: 4, gpus: 4}]
              cpu: {max_time: "1-00:00:00", max_nodes: 2, cpus_per_node: 4}
        """,
    )
    assert _resolve(site, time="20").partition.name == "cpu"
    assert _resolve(site, time="20", gpus_per_node="1").partition.name == "mix"  # its 1-GPU node idles none
    assert _resolve(site, time="20", gpus_per_node="4").partition.name == "gpu"


@pytest.mark.parametrize("default", ["a", "b"])
def test_between_equal_partitions_the_sites_default_wins(tmp_path, default):
    site = _site_file(
        tmp_path,
        f"""
        version: 1
        clusters:
          c:
            scheduler: slurm
            default_partition: {default}
            partitions:
              a: {{max_time: "60", max_nodes: 2, cpus_per_node: 4}}
              b: {{max_time: "60", max_nodes: 2, cpus_per_node: 4}}
        """,
    )
    assert _resolve(site).partition.name == default


def test_between_partitions_of_equal_time_the_smallest_that_fits_wins(tmp_path):
    site = _site_file(
        tmp_path,
        """
        version: 1
        clusters:
          c:
            scheduler: slurm
            partitions:
              big: {max_time: "60", max_nodes: 8, cpus_per_node: 4}
              fat: {max_time: "60", max_nodes: 2, cpus_per_node: 64}
              thin: {max_time: "60", max_nodes: 2, cpus_per_node: 4}
        """,
    )
    assert _resolve(site).partition.name == "thin"
    assert _resolve(site, nodes="4").partition.name == "big"
    assert _resolve(site, cpus_per_task="8").partition.name == "fat"


def test_dry_run_json_tells_how_the_partition_was_chosen(capsys):
    code, out, _ = _cli(
        capsys, "--site", TESTBED, "--json", "submit", "--dry-run", "-t", "2:00:00", "serial", "true"
    )
    assert code == 0
    choice = json.loads(out)["choice"]
    assert choice["chosen"] == "batch" and choice["candidates"] == ["batch", "gpu"]
    assert choice["why"].startswith("partition batch chosen automatically")
    assert choice["rejected"] == {"debug": ["-t 02:00:00 exceeds partition debug's MaxTime 00:30:00"]}
