"""The pre-flight that places a job's tasks as Slurm does (hpcx/submit/placement.py), as a user meets it: whether
`hpcx render` takes a request or refuses it (exit 3), and the sentence that says why, naming the options as typed.

Every verdict on examples/sites/testbed.yaml below is the one `sbatch --test-only -p debug OPTIONS --wrap true`
gave on the test cluster (scripts/testbed, Slurm 22.05: n1 4 CPUs 4000M avx2,cpu; n2 the same with 2 tesla GPUs,
avx2,gpu; debug and batch over both, MaxNodes 2). The sites made here (nodes without names, a partition without a
memory limit, GPU nodes of 6 CPUs) follow the same rules on node shapes the test cluster does not have."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.unit.cli_harness import Result, isolate, run_cli

REPO = Path(__file__).resolve().parents[3]
TESTBED = str(REPO / "examples" / "sites" / "testbed.yaml")

# Partitions hpcx knows less about than the test cluster, or whose nodes it lacks: no node names (flat, mixed),
# no memory limit (nomem, gnomem), GPU nodes with 6 CPUs and 8000M (g6), a GPU type not named (mixed's third).
SHAPES = """
version: 1
clusters:
  c:
    scheduler: slurm
    default_partition: flat
    partitions:
      flat: {max_time: "01:00:00", max_nodes: 2, cpus_per_node: 4, mem_per_node_mb: 4000}
      nomem: {max_time: "01:00:00", max_nodes: 2, cpus_per_node: 4}
      gnomem: {max_time: "01:00:00", max_nodes: 1, cpus_per_node: 4, gpus_per_node: 2, nodes: "h1"}
      mixed:
        max_time: "01:00:00"
        max_nodes: 4
        cpus_per_node: 4
        mem_per_node_mb: 4000
        node_types:
          - {count: 2, cpus: 4, mem_mb: 4000}
          - {count: 1, cpus: 8, mem_mb: 8000, gpus: 2, gpu_type: a100}
          - {count: 1, cpus: 8, mem_mb: 8000, gpus: 1}
      g6: {max_time: "01:00:00", max_nodes: 2, cpus_per_node: 6, mem_per_node_mb: 8000, gpus_per_node: 2,
           gpu_type: a100, nodes: "g[1-2]", features: [a100]}
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def shapes(tmp_path) -> str:
    path = tmp_path / "shapes.yaml"
    path.write_text(textwrap.dedent(SHAPES))
    return str(path)


def render(site: str, *options: str) -> Result:
    """``hpcx --site SITE render serial OPTIONS true`` in process."""
    return run_cli("--site", site, "render", "serial", *options, "true")


def refusal(site: str, *options: str) -> str:
    """The sentence the pre-flight refuses ``options`` with, the other partitions' suggestion left off."""
    result = render(site, *options)
    assert result.code == 3, f"{' '.join(options)}: exit {result.code}\n{result.err}"
    assert result.out == "" and result.err.count("\n") == 1, result
    line = result.err.removeprefix("hpcx: error: ").rstrip("\n")
    return re.sub(r"; (use --partition .*|no partition fits this request: ask for less)$", "", line)


def accepted(site: str, *options: str) -> list[str]:
    result = render(site, *options)
    assert result.code == 0, f"{' '.join(options)}: exit {result.code}\n{result.err}"
    return [line for line in result.out.splitlines() if line.startswith("#SBATCH ")]


# --- -C: the feature expression, evaluated as Slurm does on each node -------------------------------------------

FEATURES_MET = [
    ("-C", "avx2&(cpu|gpu)"),
    ("-C", "(gpu|cpu)&avx2"),
    ("-C", "[cpu|gpu]&avx2", "-w", "n2"),
    ("-C", "cpu|gpu", "-w", "n1"),
    ("-C", "gpu|cpu", "-w", "n1"),
    ("-C", "gpu&gpu|cpu", "-w", "n1"),
    ("-C", "(avx2)", "-w", "n1"),
    ("-C", "[cpu]", "-w", "n1"),
]


@pytest.mark.parametrize("options", FEATURES_MET, ids=" ".join)
def test_a_feature_expression_the_nodes_meet_is_taken(options):
    assert f"#SBATCH --constraint={options[1]}" in accepted(TESTBED, "-p", "debug", *options)


FEATURES_UNMET = [
    ("(gpu)", "n1: features avx2,cpu do not meet -C (gpu)"),
    ("[gpu]", "n1: features avx2,cpu do not meet -C [gpu]"),
    ("(gpu)&avx2", "n1: features avx2,cpu do not meet -C (gpu)&avx2"),
    ("avx2&gpu", "n1: features avx2,cpu do not meet -C avx2&gpu"),
    ("avx2,gpu", "n1: features avx2,cpu do not meet -C avx2,gpu"),
    ("[avx2|cpu]&gpu", "n1: features avx2,cpu do not meet -C [avx2|cpu]&gpu"),
]


@pytest.mark.parametrize("expression, why", FEATURES_UNMET, ids=[e for e, _ in FEATURES_UNMET])
def test_a_feature_expression_a_named_node_fails_is_refused_naming_it(expression, why):
    assert refusal(TESTBED, "-p", "debug", "-C", expression, "-w", "n1") == f"-w n1: {why}"


def test_a_feature_expression_no_node_meets_names_each_nodes_features():
    assert refusal(TESTBED, "-p", "debug", "-C", "cpu&gpu") == (
        "no node of partition debug can hold one of this job's tasks: n1: features avx2,cpu do not meet "
        "-C cpu&gpu; n2: features avx2,gpu do not meet -C cpu&gpu"
    )


@pytest.mark.parametrize("expression", ["(gpu]", "gpu)", "&gpu", "gpu&", "gpu*1", "!gpu", "(gpu"])
def test_an_expression_hpcx_cannot_read_is_left_to_slurm_as_written(expression):
    # Slurm refuses most of these ("Invalid feature specification"); hpcx does not guess why, and never says
    # that n1 lacks gpu: the request reaches sbatch as typed and Slurm's own error is the one the user reads.
    assert f"#SBATCH --constraint={expression}" in accepted(
        TESTBED, "-p", "debug", "-C", expression, "-w", "n1"
    )


# --- --mem-per-cpu: the CPUs a task gets, each with its memory -------------------------------------------------


def test_memory_per_cpu_of_a_whole_node_fits_exactly_and_not_one_mb_more():
    accepted(TESTBED, "-p", "debug", "-c", "2", "--mem-per-cpu", "2000M")
    accepted(TESTBED, "-p", "debug", "-n", "1", "--mem-per-cpu", "4000M")
    assert refusal(TESTBED, "-p", "debug", "-c", "2", "--mem-per-cpu", "4000M") == (
        "no node of partition debug can hold one of this job's tasks: n[1-2]: --mem-per-cpu 4000M x 2 CPUs = "
        "8000M exceeds its 4000M; use --mem-per-cpu 2000M or less, or -c 1"
    )


def test_memory_per_cpu_over_a_node_names_no_cpu_count_that_would_fit():
    assert refusal(TESTBED, "-p", "debug", "-n", "1", "--mem-per-cpu", "5G") == (
        "no node of partition debug can hold one of this job's tasks: n[1-2]: --mem-per-cpu 5G x 1 CPUs = "
        "5120M exceeds its 4000M; use --mem-per-cpu 4000M or less"
    )


def test_exclusive_asks_memory_for_every_cpu_of_the_node():
    accepted(TESTBED, "-p", "debug", "--exclusive", "--mem-per-cpu", "1000M")
    assert refusal(TESTBED, "-p", "debug", "--exclusive", "--mem-per-cpu", "1001M") == (
        "no node of partition debug can hold one of this job's tasks: n[1-2]: --mem-per-cpu 1001M x 4 CPUs "
        "(--exclusive: all of them) = 4004M exceeds its 4000M; use --mem-per-cpu 1000M or less"
    )


def test_memory_per_cpu_bounds_the_tasks_a_node_holds():
    accepted(TESTBED, "-p", "debug", "-N", "1", "-n", "2", "--mem-per-cpu", "1500M")
    accepted(TESTBED, "-p", "debug", "-n", "8", "--mem-per-cpu", "1000M")
    assert refusal(TESTBED, "-p", "debug", "-N", "1", "-n", "3", "--mem-per-cpu", "1500M") == (
        "-n 3 does not fit on 1 node(s) of partition debug (2 tasks per node at most) with --mem-per-cpu 1500M"
    )
    assert refusal(TESTBED, "-p", "debug", "-N", "1", "-n", "2", "-c", "2", "--mem-per-cpu", "1500M") == (
        "-n 2 does not fit on 1 node(s) of partition debug (1 tasks per node at most) with -c 2, "
        "--mem-per-cpu 1500M"
    )
    assert refusal(TESTBED, "-p", "debug", "-n", "9", "--mem-per-cpu", "1000M") == (
        "-n 9 needs 3 nodes of 4 tasks, over partition debug's 2 usable nodes (MaxNodes 2) with --mem-per-cpu 1000M"
    )


def test_a_partition_without_a_memory_limit_takes_any_memory_per_cpu_or_gpu(shapes):
    accepted(shapes, "-p", "nomem", "-n", "2", "--mem-per-cpu", "9G")
    accepted(shapes, "-p", "nomem", "--exclusive", "--mem-per-cpu", "5G")
    accepted(shapes, "-p", "gnomem", "-G", "1", "--mem-per-gpu", "5G")


# --- tasks per node, tasks per GPU, GPUs per task ------------------------------------------------------------------


def test_ntasks_per_node_beside_ntasks_needs_that_room_on_each_node():
    accepted(TESTBED, "-p", "debug", "-n", "2", "--ntasks-per-node", "4")
    render_5 = render(TESTBED, "-p", "debug", "-n", "2", "--ntasks-per-node", "5")
    assert render_5.code == 3, render_5


def test_ntasks_per_node_of_a_spread_request_needs_that_room_on_each_node():
    accepted(TESTBED, "-p", "debug", "-N", "2", "--ntasks-per-node", "4", "-C", "avx2")
    result = render(TESTBED, "-p", "debug", "--ntasks-per-node", "5", "-C", "avx2")
    assert result.code == 3, result


def test_a_node_count_too_few_nodes_can_hold_names_them_and_why_the_others_cannot():
    assert refusal(TESTBED, "-p", "debug", "-N", "2", "--ntasks-per-node", "2", "-C", "cpu") == (
        "-N 2 node(s) with 2 task(s) each requested, but only 1 of partition debug's nodes can hold that "
        "(n2: features avx2,gpu do not meet -C cpu)"
    )
    assert refusal(TESTBED, "-p", "debug", "-x", "n1", "-G", "2", "-N", "2") == (
        "-N 2 node(s) with 1 task(s) each with GPUs on each node requested, but only 1 of partition debug's "
        "nodes can hold that (after -x n1) (n1: no GPUs)"
    )


def test_gpus_per_task_bound_the_tasks_a_node_holds():
    accepted(TESTBED, "-p", "debug", "-n", "2", "--gpus-per-task", "1")
    assert refusal(TESTBED, "-p", "debug", "-n", "4", "--gpus-per-task", "1") == (
        "-n 4 needs 2 nodes of 2 tasks, over partition debug's 1 usable nodes (MaxNodes 2) with GPUs on each "
        "node, --gpus-per-task 1 (n1: no GPUs)"
    )
    # n2 has 2 GPUs: no node holds a task of 3
    assert refusal(TESTBED, "-p", "debug", "-n", "1", "--gpus-per-task", "3") == (
        "no node of partition debug can hold one of this job's tasks: n1: no GPUs"
    )


def test_tasks_per_gpu_are_placed_on_the_gpus_nodes():
    accepted(TESTBED, "-p", "debug", "--ntasks-per-gpu", "2", "-G", "1")
    accepted(TESTBED, "-p", "debug", "--ntasks-per-gpu", "2", "-G", "2")
    accepted(TESTBED, "-p", "debug", "-n", "4", "--ntasks-per-gpu", "2")
    for options in (("--ntasks-per-gpu", "5", "-G", "1"), ("--ntasks-per-gpu", "3", "-G", "2")):
        assert render(TESTBED, "-p", "debug", *options).code == 3, options


def test_typed_gres_or_gpus_per_node_spread_tasks_over_gpu_nodes_only():
    accepted(TESTBED, "-p", "debug", "--gres", "gpu:tesla:1", "-n", "3")
    accepted(TESTBED, "-p", "debug", "--gpus-per-node", "tesla:1", "-n", "2")
    assert refusal(TESTBED, "-p", "debug", "--gres", "gpu:tesla:1", "-n", "5") == (
        "-n 5 needs 2 nodes of 4 tasks, over partition debug's 1 usable nodes (MaxNodes 2) with GPUs on each "
        "node (n1: no GPUs)"
    )


# --- CPUs and memory per GPU -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        ("-G", "1", "--cpus-per-gpu", "4"),
        ("-G", "1", "--cpus-per-gpu", "3"),
        ("--gpus-per-node", "2", "--cpus-per-gpu", "2"),
        ("-G", "2", "--cpus-per-gpu", "2"),
        ("-G", "1", "--mem-per-gpu", "4000M"),
        ("-G", "1", "--mem-per-gpu", "2500M"),
        ("-G", "2", "--mem-per-gpu", "2000M"),
    ],
    ids=" ".join,
)
def test_cpus_and_memory_per_gpu_that_fit_the_gpu_node_are_taken(options):
    accepted(TESTBED, "-p", "debug", *options)


@pytest.mark.parametrize(
    "options",
    [
        ("-G", "1", "--cpus-per-gpu", "5"),
        ("--gpus-per-node", "2", "--cpus-per-gpu", "3"),
        ("-G", "1", "--mem-per-gpu", "5000M"),
        ("--gpus-per-node", "2", "--mem-per-gpu", "3000M"),
        ("-G", "2", "--cpus-per-gpu", "3"),
        ("-G", "2", "--mem-per-gpu", "2500M"),
    ],
    ids=" ".join,
)
def test_cpus_or_memory_per_gpu_over_the_gpu_node_are_refused(options):
    result = render(TESTBED, "-p", "debug", *options)
    assert result.code == 3, result


def test_gpus_in_all_need_nodes_whose_cpus_and_memory_give_that_many(shapes):
    # g6's nodes have 2 GPUs, 6 CPUs and 8000M: 4 CPUs or 5000M per GPU leave one GPU per node, two in all
    accepted(shapes, "-p", "g6", "-G", "2", "-N", "2", "--cpus-per-gpu", "4")
    accepted(shapes, "-p", "g6", "-N", "2", "-G", "4", "--cpus-per-gpu", "3")
    accepted(shapes, "-p", "g6", "-N", "2", "-G", "4", "--mem-per-gpu", "4000M")
    for options in (("-G", "3", "--cpus-per-gpu", "4"), ("-G", "3", "--mem-per-gpu", "5000M")):
        assert render(shapes, "-p", "g6", "-N", "2", *options).code == 3, options


def test_more_gpus_than_the_nodes_can_give_is_said_so():
    assert refusal(TESTBED, "-p", "debug", "-G", "3", "-n", "2") == (
        "-G 3 is more GPUs than partition debug's nodes can give this job"
    )


# --- node counts, -w and -x ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        ("-N", "3", "-n", "2"),  # sbatch: "can't run 2 processes on 3 nodes, setting nnodes to 2"
        ("-N", "2-2", "-n", "1"),
        ("-N", "1-3", "-n", "1"),
        ("-N", "1-3", "-n", "2"),
        ("-N", "1-3", "-G", "2"),
        ("-N", "2", "-n", "1", "-G", "1"),
        ("-w", "n1", "-n", "4"),
        ("-x", "n2", "-n", "4"),
    ],
    ids=" ".join,
)
def test_node_counts_slurm_can_meet_are_taken(options):
    accepted(TESTBED, "-p", "debug", *options)


def test_a_node_range_over_max_nodes_is_refused_with_the_range_that_fits():
    assert refusal(TESTBED, "-p", "debug", "-N", "1-3") == (
        "-N 1-3 allows 3 nodes, over partition debug's MaxNodes 2 (use --nodes=1-2)"
    )


def test_nodelist_and_exclude_bound_the_nodes_a_job_may_get():
    assert refusal(TESTBED, "-p", "debug", "-w", "n1", "-n", "5") == (
        "-n 5 needs 2 nodes of 4 tasks, over partition debug's 1 usable nodes (MaxNodes 2)"
    )
    assert refusal(TESTBED, "-p", "debug", "-x", "n2", "-n", "5") == (
        "-n 5 needs 2 nodes of 4 tasks, over partition debug's 1 usable nodes (MaxNodes 2) (after -x n2)"
    )
    assert render(TESTBED, "-p", "debug", "-w", "n1", "-N", "2").code == 3
    assert render(TESTBED, "-p", "debug", "-w", "n2", "-N", "1-2", "-n", "8").code == 3


def test_nodes_named_or_excluded_are_named_back(shapes):
    assert refusal(shapes, "-p", "g6", "-w", "g1", "-x", "g1") == "-w g1 and -x g1 both name g1"
    assert refusal(shapes, "-p", "g6", "-w", "g3") == "-w g3: g3 is not in partition g6 (its nodes: g[1-2])"
    assert refusal(shapes, "-p", "g6", "-x", "g[1-2]", "-n", "1") == (
        "no node of partition g6 can hold one of this job's tasks (after -x g[1-2]): none has room for one task"
    )
    assert refusal(shapes, "-p", "g6", "-x", "g1", "-n", "7") == (
        "-n 7 needs 2 nodes of 6 tasks, over partition g6's 1 usable nodes (MaxNodes 2) (after -x g1)"
    )
    accepted(shapes, "-p", "g6", "-w", "g[1-2]")


def test_a_task_count_over_one_node_does_not_fit_one_node():
    assert refusal(TESTBED, "-p", "debug", "-N", "1", "-n", "5") == (
        "-n 5 does not fit on 1 node(s) of partition debug (4 tasks per node at most)"
    )
    assert refusal(TESTBED, "-p", "debug", "-n", "5", "-C", "gpu") == (
        "-n 5 needs 2 nodes of 4 tasks, over partition debug's 1 usable nodes (MaxNodes 2) "
        "(n1: features avx2,cpu do not meet -C gpu)"
    )


# --- nodes the site does not name: how a sentence names them -----------------------------------------------------


def test_a_uniform_partition_without_names_says_each_node(shapes):
    assert refusal(shapes, "-p", "flat", "-n", "1", "-c", "2", "--mem-per-cpu", "2500M") == (
        "no node of partition flat can hold one of this job's tasks: each node: --mem-per-cpu 2500M x 2 CPUs = "
        "5000M exceeds its 4000M; use --mem-per-cpu 2000M or less, or -c 1"
    )
    assert refusal(shapes, "-p", "flat", "-n", "9") == (
        "-n 9 needs 3 nodes of 4 tasks, over partition flat's 2 usable nodes (MaxNodes 2)"
    )


def test_a_mixed_partition_without_names_says_how_many_nodes_of_what(shapes):
    assert refusal(shapes, "-p", "mixed", "-n", "1", "-c", "5", "--mem-per-cpu", "2000M") == (
        "no node of partition mixed can hold one of this job's tasks: 2 node(s) of 4 CPUs: -c 5 exceeds its 4 "
        "CPUs; 1 node(s) of 8 CPUs and 2 a100 GPUs, 1 node(s) of 8 CPUs and 1 GPUs: --mem-per-cpu 2000M x 5 CPUs "
        "= 10000M exceeds its 8000M; use --mem-per-cpu 1600M or less, or -c 4"
    )
    # the third type names no GPU type: hpcx cannot tell that it lacks v100, and leaves it to Slurm
    accepted(shapes, "-p", "mixed", "-n", "1", "--gres", "gpu:v100:1")


def test_gpus_of_another_type_are_named_with_the_type_the_nodes_have(shapes):
    assert refusal(shapes, "-p", "g6", "-n", "1", "--gres", "gpu:v100:1") == (
        "no node of partition g6 can hold one of this job's tasks: g[1-2]: a100 GPUs, not v100"
    )
    assert refusal(shapes, "-p", "g6", "-n", "1", "-G", "v100:1") == (
        "no node of partition g6 can hold one of this job's tasks: g[1-2]: a100 GPUs, not v100"
    )


# --- a node's reason, named where the value was set ------------------------------------------------------------


def test_memory_per_node_is_held_to_each_nodes_memory_exactly():
    accepted(TESTBED, "-p", "debug", "-n", "2", "--mem", "4000M")
    assert refusal(TESTBED, "-p", "debug", "-n", "2", "--mem", "4001M") == (
        "no node of partition debug can hold one of this job's tasks: n[1-2]: --mem 4001M exceeds its 4000M"
    )


def test_cpus_per_task_are_held_to_each_nodes_cpus_exactly():
    accepted(TESTBED, "-p", "debug", "-n", "1", "-c", "4")
    assert refusal(TESTBED, "-p", "debug", "-n", "1", "-c", "5") == (
        "no node of partition debug can hold one of this job's tasks: n[1-2]: -c 5 exceeds its 4 CPUs"
    )


@pytest.mark.parametrize(
    "options, named",
    [(("--gres", "gpu:3"), "--gres gpu:3"), (("--gpus-per-node", "3"), "--gpus-per-node 3")],
    ids=["gres", "gpus-per-node"],
)
def test_gpus_per_node_over_the_gpu_node_name_the_option_given(options, named):
    assert refusal(TESTBED, "-p", "debug", "-n", "1", *options) == (
        f"no node of partition debug can hold one of this job's tasks: n1: no GPUs; n2: {named} exceeds its 2 GPUs"
    )


def test_values_from_the_environment_are_named_as_set_there(monkeypatch):
    monkeypatch.setenv("HPCX_MEM", "5000M")
    assert refusal(TESTBED, "-p", "debug", "-n", "2") == (
        "no node of partition debug can hold one of this job's tasks: n[1-2]: HPCX_MEM=5000M exceeds its 4000M"
    )
    monkeypatch.delenv("HPCX_MEM")
    monkeypatch.setenv("HPCX_CPUS_PER_TASK", "5")
    assert refusal(TESTBED, "-p", "debug", "-n", "1") == (
        "no node of partition debug can hold one of this job's tasks: n[1-2]: HPCX_CPUS_PER_TASK=5 exceeds its 4 CPUs"
    )
    monkeypatch.delenv("HPCX_CPUS_PER_TASK")
    monkeypatch.setenv("HPCX_GPUS_PER_NODE", "3")
    assert refusal(TESTBED, "-p", "debug", "-n", "1") == (
        "no node of partition debug can hold one of this job's tasks: n1: no GPUs; n2: HPCX_GPUS_PER_NODE=3 "
        "exceeds its 2 GPUs"
    )


def _own_script(tmp_path: Path, *lines: str) -> Result:
    (tmp_path / "job.sh").write_text(
        "#!/bin/bash\n" + "".join(f"#SBATCH {line}\n" for line in lines) + "srun true\n"
    )
    return run_cli("--site", TESTBED, "submit", "--dry-run", "./job.sh")


def test_an_own_scripts_long_options_are_named_by_their_long_names(tmp_path):
    result = _own_script(tmp_path, "-p debug", "--mem-per-cpu=2500M", "--cpus-per-task=2")
    assert (result.code, result.err) == (
        3,
        "hpcx: error: no node of partition debug can hold one of this job's tasks: n[1-2]: --mem-per-cpu 2500M x "
        "2 CPUs = 5000M exceeds its 4000M; use --mem-per-cpu 2000M or less, or -c 1; no partition fits this "
        "request: ask for less\n",
    )
    result = _own_script(tmp_path, "-p debug", "--constraint=gpu", "--nodelist=n1")
    assert result.code == 3 and result.err.startswith(
        "hpcx: error: --nodelist n1: n1: features avx2,cpu do not meet --constraint gpu;"
    ), result
    result = _own_script(tmp_path, "-p debug", "--ntasks=1", "--cpus-per-task=5")
    assert result.code == 3 and result.err.startswith(
        "hpcx: error: no node of partition debug can hold one of this job's tasks: n[1-2]: --cpus-per-task 5 "
        "exceeds its 4 CPUs;"
    ), result


# --- what the site says of its nodes' features --------------------------------------------------------------------

FEATURED = """
version: 1
clusters:
  c:
    scheduler: slurm
    default_partition: typed
    partitions:
      typed:
        max_time: "01:00:00"
        max_nodes: 2
        cpus_per_node: 4
        mem_per_node_mb: 4000
        node_types:
          - {count: 1, cpus: 4, mem_mb: 4000, features: [ib, XEON]}
          - {count: 1, cpus: 4, mem_mb: 4000}
      plain:
        max_time: "01:00:00"
        max_nodes: 2
        cpus_per_node: 4
        mem_per_node_mb: 4000
        node_types:
          - {count: 2, cpus: 4, mem_mb: 4000}
"""


@pytest.fixture
def featured(tmp_path) -> str:
    path = tmp_path / "featured.yaml"
    path.write_text(textwrap.dedent(FEATURED))
    return str(path)


def test_features_the_site_gives_only_some_node_types_are_checked_on_every_node(featured):
    accepted(featured, "-p", "typed", "-n", "1", "-C", "ib")
    accepted(featured, "-p", "typed", "-n", "1", "-C", "XEON")
    assert refusal(featured, "-p", "typed", "-n", "1", "-C", "XEON&skx") == (
        "no node of partition typed can hold one of this job's tasks: 1 node(s) of 4 CPUs: features ib,XEON do not "
        "meet -C XEON&skx; 1 node(s) of 4 CPUs: features none do not meet -C XEON&skx"
    )
    # -N 2 needs both nodes and only one has ib (the sentence hpcx gives here is not pinned: see the report of
    # issue 24's mutation run in docs/testing.md)
    assert render(featured, "-p", "typed", "-N", "2", "-n", "2", "-C", "ib").code == 3


def test_features_a_site_names_for_no_node_are_left_to_slurm(featured):
    accepted(featured, "-p", "plain", "-n", "1", "-C", "ib")


def test_a_typed_gres_that_is_no_gpu_names_no_gpu_type(shapes):
    accepted(shapes, "-p", "g6", "-n", "1", "--gres", "gpu:1,nvme:local:1")
    accepted(shapes, "-p", "g6", "-n", "1", "--gres", "nvme:local:1,gpu:1")


# --- node counts set elsewhere, and the rules sbatch applies to them ---------------------------------------------


def test_a_node_count_over_max_nodes_is_named_where_it_was_set(monkeypatch):
    assert (
        refusal(TESTBED, "-p", "debug", "-N", "3", "-n", "4") == "-N 3 exceeds partition debug's MaxNodes 2"
    )
    monkeypatch.setenv("HPCX_NODES", "3")
    assert refusal(TESTBED, "-p", "debug", "-n", "4") == "HPCX_NODES=3 exceeds partition debug's MaxNodes 2"
    monkeypatch.setenv("HPCX_NODES", "1-3")
    assert refusal(TESTBED, "-p", "debug", "-C", "avx2") == (
        "HPCX_NODES=1-3 allows 3 nodes, over partition debug's MaxNodes 2 (use --nodes=1-2)"
    )
    monkeypatch.setenv("HPCX_NODES", "2")
    assert refusal(TESTBED, "-p", "debug", "--ntasks-per-node", "2", "-C", "cpu") == (
        "HPCX_NODES=2 node(s) with 2 task(s) each requested, but only 1 of partition debug's nodes can hold that "
        "(n2: features avx2,gpu do not meet -C cpu)"
    )


def test_named_nodes_get_one_task_if_only_one_is_asked_for():
    accepted(TESTBED, "-p", "debug", "-w", "n[1-2]", "-n", "1")  # Slurm gives the job both nodes
    accepted(TESTBED, "-p", "debug", "-n", "2", "-w", "n2", "-G", "1")
    result = render(TESTBED, "-p", "debug", "-n", "2", "--ntasks-per-node", "5", "-w", "n1")
    assert result.code == 3, result


def test_gpus_per_task_over_every_node_refuse_a_per_node_request():
    assert refusal(TESTBED, "-p", "debug", "-N", "1", "--gpus-per-task", "3") == (
        "no node of partition debug can hold one of this job's tasks: n1: no GPUs"
    )


def test_one_task_cannot_spread_its_gpus_over_two_nodes(shapes):
    # Slurm gives a job at most one node per task: 3 GPUs for one task need one node with 3
    assert refusal(shapes, "-p", "g6", "-n", "1", "-G", "3", "-N", "1-2") == (
        "-G 3 is more GPUs than partition g6's nodes can give this job"
    )


def test_the_gpu_node_with_the_most_gpus_is_the_one_a_job_gets(shapes):
    accepted(shapes, "-p", "mixed", "-n", "1", "-G", "2")


def test_too_few_nodes_for_a_per_node_request_without_a_reason_names_none(shapes):
    assert refusal(shapes, "-p", "mixed", "-N", "3", "--ntasks-per-node", "8", "-C", "x") == (
        "-N 3 node(s) with 8 task(s) each requested, but only 2 of partition mixed's nodes can hold that"
    )


# --- values from the user's own defaults (the site file's are checked against its partitions when it is read) ----


def _user_defaults(tmp_path: Path, **defaults: object) -> str:
    """Write the user config ($XDG_CONFIG_HOME/hpcx/config.yaml) with these defaults; the words naming it."""
    config = tmp_path / "config" / "hpcx" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("version: 1\ndefaults:\n" + "".join(f"  {k}: {v!r}\n" for k, v in defaults.items()))
    return f"(from the user config {config})"


def test_a_default_a_node_cannot_hold_is_named_where_it_was_set(tmp_path):
    where = _user_defaults(tmp_path, cpus_per_task=5)
    assert refusal(TESTBED, "-p", "debug", "-n", "1") == (
        f"no node of partition debug can hold one of this job's tasks: n[1-2]: defaults.cpus_per_task 5 {where} "
        "exceeds its 4 CPUs"
    )
    where = _user_defaults(tmp_path, mem="5000M")
    assert refusal(TESTBED, "-p", "debug", "-n", "2") == (
        f"no node of partition debug can hold one of this job's tasks: n[1-2]: defaults.mem 5000M {where} exceeds "
        "its 4000M"
    )


def test_a_default_node_count_is_named_where_it_was_set(tmp_path):
    where = _user_defaults(tmp_path, nodes=3)
    assert (
        refusal(TESTBED, "-p", "debug", "-n", "4")
        == f"defaults.nodes 3 {where} exceeds partition debug's MaxNodes 2"
    )
    where = _user_defaults(tmp_path, nodes=2)
    assert refusal(TESTBED, "-p", "debug", "--ntasks-per-node", "2", "-C", "cpu") == (
        f"defaults.nodes 2 {where} node(s) with 2 task(s) each requested, but only 1 of partition debug's nodes "
        "can hold that (n2: features avx2,gpu do not meet -C cpu)"
    )
    where = _user_defaults(tmp_path, nodes="1-3")
    assert refusal(TESTBED, "-p", "debug", "-C", "avx2") == (
        f"defaults.nodes 1-3 {where} allows 3 nodes, over partition debug's MaxNodes 2 (use --nodes=1-2)"
    )


def test_a_uniform_partitions_features_are_each_nodes(shapes):
    accepted(shapes, "-p", "g6", "-n", "1", "-C", "a100")
    assert refusal(shapes, "-p", "g6", "-n", "1", "-C", "v100") == (
        "no node of partition g6 can hold one of this job's tasks: g[1-2]: features a100 do not meet -C v100"
    )
    accepted(shapes, "-p", "flat", "-n", "1", "-C", "v100")  # flat names no features: Slurm judges


def test_an_exclude_file_is_read_by_slurm_not_by_hpcx(tmp_path):
    # man sbatch, --exclude: "a filename ... if it contains a '/' character"
    (tmp_path / "hosts").write_text("n1\n")
    assert "#SBATCH --exclude=./hosts" in accepted(TESTBED, "-p", "debug", "-n", "1", "-x", "./hosts")


def test_nodes_both_named_and_excluded_are_all_named():
    assert refusal(TESTBED, "-p", "debug", "-N", "2", "-w", "n[1-2]", "-x", "n[1-2]") == (
        "-w n[1-2] and -x n[1-2] both name n1, n2"
    )
