"""Bad numbers in `hpcx sweep` are refused before anything is submitted: every option of the command and every
numeric key of the sweep spec, at 0, negative, not a number and absurdly large, each as one line that names the
value, the limit and the fix. Exit 2 for the command line's own options (a usage error, as click's checks), 3 for
the spec (nothing was submitted) and for a request no partition can hold; a few values Slurm would take are
shown to pass.

The command runs in this process against the test cluster's site file, with stand-ins for the Slurm query
commands on PATH (no cluster needed; `--dry-run` submits nothing)."""

import json
import stat

import pytest

from hpcx.cli import main
from tests.conftest import TESTBED_SITE


@pytest.fixture
def sweep(tmp_path, monkeypatch, capsys):
    """Run `hpcx sweep SPEC --dry-run [ARGS]` for a spec written from ``body``; (exit code, stdout, stderr)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("scontrol", "squeue", "sinfo", "sacctmgr", "sbatch"):
        path = bindir / tool
        path.write_text("#!/bin/sh\nexit 0\n")  # a cluster that reports no limits
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("HPCX_RUNS", str(tmp_path / "runs"))
    for var in ("HPCX_SITE", "HPCX_TIME", "HPCX_PARTITION", "HPCX_NODES", "HPCX_MEM"):
        monkeypatch.delenv(var, raising=False)

    def run(body: str, *args: str, json_out: bool = False):
        spec = tmp_path / "sweep.yaml"
        spec.write_text("name: s\ncommand: [t, '{x}']\n" + body)
        argv = [
            "--site",
            str(TESTBED_SITE),
            *(["--json"] if json_out else []),
            "sweep",
            str(spec),
            "--dry-run",
        ]
        code = main([*argv, *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


GRID = "parameters: {grid: {x: [1, 2]}}\n"
RANDOM = "parameters: {random: {draws: 2, params: {x: %s}}}\n"
HUGE = "1000000000000"

REPEATS_FIX = "e.g. repeats: 3 (each combination runs 3 times, each with its own seed)"
PARALLEL = "must be a whole number from 1 to 67108863 (no sweep has more tasks)"
PARALLEL_FIX = "e.g. 8 (at most 8 tasks run at once), or leave it out for no limit"
DRAWS_FIX = "e.g. random: {seed: 7, draws: 8, params: {dropout: {uniform: [0, 0.5]}}}"
TOO_MANY = "more than Slurm can number (67108863 job ids)"
COUNT_FIX = "sweep fewer values, draws or repeats, or split the sweep into several specs"
LOGUNIFORM_FIX = "e.g. {loguniform: [1.0e-5, 0.1]}, or {uniform: [a, b]} for bounds <= 0"
RANDINT = "needs two whole numbers, low <= high (both can be drawn)"
RANGE_EMPTY_FIX = "stop lies beyond start in the step's direction, e.g. {range: [0, 10, 2]}"
RANGE_FIX = "write {range: [start, stop]} or {range: [start, stop, step]}"
LINSPACE = "needs [a, b, n]: two numbers and a whole number n >= 1 of values"
DRAWN = "parameters.random.params.x:"

SPEC_CASES = [
    # name, spec text, the message (value and limit), the fix
    (
        "repeats 0",
        "parameters: {grid: {x: [1]}, repeats: 0}\n",
        "parameters.repeats 0 must be a whole number >= 1",
        REPEATS_FIX,
    ),
    (
        "repeats -1",
        "parameters: {grid: {x: [1]}, repeats: -1}\n",
        "parameters.repeats -1 must be a whole number >= 1",
        REPEATS_FIX,
    ),
    (
        "repeats word",
        "parameters: {grid: {x: [1]}, repeats: three}\n",
        "parameters.repeats 'three' must be a whole number >= 1",
        REPEATS_FIX,
    ),
    (
        "repeats fraction",
        "parameters: {grid: {x: [1]}, repeats: 1.5}\n",
        "parameters.repeats 1.5 must be a whole number >= 1",
        REPEATS_FIX,
    ),
    (
        "repeats boolean",
        "parameters: {grid: {x: [1]}, repeats: true}\n",
        "parameters.repeats True must be a whole number >= 1",
        REPEATS_FIX,
    ),
    (
        "repeats huge",
        "parameters: {grid: {x: [1]}, repeats: HUGE}\n".replace("HUGE", HUGE),
        f"the sweep (grid x: 1; zip 1; draws 1; repeats {HUGE}) gives {HUGE} tasks, {TOO_MANY}",
        COUNT_FIX,
    ),
    ("max_parallel 0", GRID + "max_parallel: 0\n", f"max_parallel 0 {PARALLEL}", PARALLEL_FIX),
    ("max_parallel -3", GRID + "max_parallel: -3\n", f"max_parallel -3 {PARALLEL}", PARALLEL_FIX),
    ("max_parallel word", GRID + "max_parallel: all\n", f"max_parallel 'all' {PARALLEL}", PARALLEL_FIX),
    ("max_parallel fraction", GRID + "max_parallel: 2.5\n", f"max_parallel 2.5 {PARALLEL}", PARALLEL_FIX),
    ("max_parallel boolean", GRID + "max_parallel: true\n", f"max_parallel True {PARALLEL}", PARALLEL_FIX),
    (
        "max_parallel huge",
        GRID + "max_parallel: 4294967297\n",
        f"max_parallel 4294967297 {PARALLEL}",
        PARALLEL_FIX,
    ),
    ("seed word", GRID + "seed: lucky\n", "seed 'lucky' must be a whole number", "e.g. seed: 42"),
    ("seed fraction", GRID + "seed: 1.5\n", "seed 1.5 must be a whole number", "e.g. seed: 42"),
    ("seed empty", GRID + "seed:\n", "seed None must be a whole number", "e.g. seed: 42"),
    (
        "draws 0",
        RANDOM.replace("draws: 2", "draws: 0") % "{uniform: [0, 1]}",
        "parameters.random.draws 0 must be a whole number >= 1",
        DRAWS_FIX,
    ),
    (
        "draws -1",
        RANDOM.replace("draws: 2", "draws: -1") % "{uniform: [0, 1]}",
        "parameters.random.draws -1 must be a whole number >= 1",
        DRAWS_FIX,
    ),
    (
        "draws word",
        RANDOM.replace("draws: 2", "draws: many") % "{uniform: [0, 1]}",
        "parameters.random.draws 'many' must be a whole number >= 1",
        DRAWS_FIX,
    ),
    (
        "draws fraction",
        RANDOM.replace("draws: 2", "draws: 2.5") % "{uniform: [0, 1]}",
        "parameters.random.draws 2.5 must be a whole number >= 1",
        DRAWS_FIX,
    ),
    (
        "draws boolean",
        RANDOM.replace("draws: 2", "draws: true") % "{uniform: [0, 1]}",
        "parameters.random.draws True must be a whole number >= 1",
        DRAWS_FIX,
    ),
    (
        "draws missing",
        "parameters: {random: {params: {x: {uniform: [0, 1]}}}}\n",
        "parameters.random.draws None must be a whole number >= 1",
        DRAWS_FIX,
    ),
    (
        "draws huge",
        RANDOM.replace("draws: 2", f"draws: {HUGE}") % "{uniform: [0, 1]}",
        f"the sweep (grid none; zip 1; draws {HUGE}; repeats 1) gives {HUGE} tasks, {TOO_MANY}",
        COUNT_FIX,
    ),
    (
        "random seed word",
        RANDOM.replace("draws: 2", "draws: 2, seed: x") % "{uniform: [0, 1]}",
        "parameters.random.seed 'x' must be a whole number",
        "e.g. seed: 42",
    ),
    (
        "uniform word",
        RANDOM % "{uniform: [low, 1]}",
        f"{DRAWN} uniform ['low', 1] needs two numbers",
        "e.g. {uniform: [0.001, 0.1]}",
    ),
    (
        "uniform infinite",
        RANDOM % "{uniform: [0, .inf]}",
        f"{DRAWN} uniform [0, inf] needs two numbers",
        "e.g. {uniform: [0.001, 0.1]}",
    ),
    (
        "loguniform 0",
        RANDOM % "{loguniform: [0, 1]}",
        f"{DRAWN} loguniform [0, 1] needs bounds > 0 (it draws their logarithms)",
        LOGUNIFORM_FIX,
    ),
    (
        "loguniform high 0",
        RANDOM % "{loguniform: [0.1, 0]}",
        f"{DRAWN} loguniform [0.1, 0] needs bounds > 0 (it draws their logarithms)",
        LOGUNIFORM_FIX,
    ),
    (
        "loguniform negative",
        RANDOM % "{loguniform: [0.1, -1]}",
        f"{DRAWN} loguniform [0.1, -1] needs bounds > 0 (it draws their logarithms)",
        LOGUNIFORM_FIX,
    ),
    (
        "loguniform word",
        RANDOM % "{loguniform: [a, 1]}",
        f"{DRAWN} loguniform ['a', 1] needs two numbers",
        "e.g. {loguniform: [0.001, 0.1]}",
    ),
    (
        "randint reversed",
        RANDOM % "{randint: [5, 1]}",
        f"{DRAWN} randint [5, 1] {RANDINT}",
        "e.g. {randint: [1, 8]}",
    ),
    (
        "randint fraction",
        RANDOM % "{randint: [1.5, 3]}",
        f"{DRAWN} randint [1.5, 3] {RANDINT}",
        "e.g. {randint: [1, 8]}",
    ),
    (
        "randint word",
        RANDOM % "{randint: [1, many]}",
        f"{DRAWN} randint [1, 'many'] {RANDINT}",
        "e.g. {randint: [1, 8]}",
    ),
    (
        "range step 0",
        "parameters: {grid: {x: {range: [0, 1, 0]}}}\n",
        "parameters.grid.x: range [0, 1, 0] is empty",
        RANGE_EMPTY_FIX,
    ),
    (
        "range backwards",
        "parameters: {grid: {x: {range: [0, 3, -1]}}}\n",
        "parameters.grid.x: range [0, 3, -1] is empty",
        RANGE_EMPTY_FIX,
    ),
    (
        "range of nothing",
        "parameters: {grid: {x: {range: [1, 1]}}}\n",
        "parameters.grid.x: range [1, 1] is empty",
        RANGE_EMPTY_FIX,
    ),
    (
        "range word",
        "parameters: {grid: {x: {range: [0, ten]}}}\n",
        "parameters.grid.x: range [0, 'ten'] needs numbers",
        RANGE_FIX,
    ),
    (
        "range infinite",
        "parameters: {grid: {x: {range: [0, .inf]}}}\n",
        "parameters.grid.x: range [0, inf] needs numbers",
        RANGE_FIX,
    ),
    (
        "range huge",
        "parameters: {grid: {x: {range: [0, HUGE]}}}\n".replace("HUGE", HUGE),
        f"parameters.grid.x: range [0, {HUGE}] gives {HUGE} tasks, {TOO_MANY}",
        COUNT_FIX,
    ),
    (
        "linspace n 0",
        "parameters: {grid: {x: {linspace: [0, 1, 0]}}}\n",
        f"parameters.grid.x: linspace [0, 1, 0] {LINSPACE}",
        "e.g. {linspace: [-4, -1, 4]}",
    ),
    (
        "linspace n -2",
        "parameters: {grid: {x: {linspace: [0, 1, -2]}}}\n",
        f"parameters.grid.x: linspace [0, 1, -2] {LINSPACE}",
        "e.g. {linspace: [-4, -1, 4]}",
    ),
    (
        "linspace n word",
        "parameters: {grid: {x: {linspace: [0, 1, few]}}}\n",
        f"parameters.grid.x: linspace [0, 1, 'few'] {LINSPACE}",
        "e.g. {linspace: [-4, -1, 4]}",
    ),
    (
        "linspace n fraction",
        "parameters: {grid: {x: {linspace: [0, 1, 2.5]}}}\n",
        f"parameters.grid.x: linspace [0, 1, 2.5] {LINSPACE}",
        "e.g. {linspace: [-4, -1, 4]}",
    ),
    (
        "linspace start word",
        "parameters: {grid: {x: {linspace: [zero, 1, 3]}}}\n",
        f"parameters.grid.x: linspace ['zero', 1, 3] {LINSPACE}",
        "e.g. {linspace: [-4, -1, 4]}",
    ),
    (
        "logspace stop word",
        "parameters: {grid: {x: {logspace: [0, one, 3]}}}\n",
        f"parameters.grid.x: logspace [0, 'one', 3] {LINSPACE}",
        "e.g. {logspace: [-4, -1, 4]}",
    ),
    (
        "linspace n huge",
        "parameters: {grid: {x: {linspace: [0, 1, HUGE]}}}\n".replace("HUGE", HUGE),
        f"parameters.grid.x: linspace [0, 1, {HUGE}] gives {HUGE} tasks, {TOO_MANY}",
        COUNT_FIX,
    ),
    (
        "logspace past floats",
        "parameters: {grid: {x: {logspace: [0, 400, 3]}}}\n",
        "parameters.grid.x: logspace [0, 400, 3] goes past 10**308, the largest float",
        "give exponents below 308 (logspace takes powers of 10)",
    ),
    (
        "grid product huge",
        "parameters: {grid: {x: {range: [0, 100000]}, y: {range: [0, 100000]}}}\n",
        f"the sweep (grid x: 100000, y: 100000; zip 1; draws 1; repeats 1) gives 10000000000 tasks, {TOO_MANY}",
        COUNT_FIX,
    ),
    (
        "zip times grid too many",
        "parameters: {grid: {x: {range: [0, 8192]}, y: {range: [0, 4096]}}, zip: {z: [1, 2]}}\n",
        f"the sweep (grid x: 8192, y: 4096; zip 2; draws 1; repeats 1) gives 67108864 tasks, {TOO_MANY}",
        COUNT_FIX,
    ),
]


@pytest.mark.parametrize("name, body, message, fix", SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_a_bad_number_in_the_spec_is_one_line_naming_it_and_exit_3(sweep, name, body, message, fix):
    code, out, err = sweep(body)
    assert (code, out, err) == (3, "", f"hpcx: error: {message}; {fix}\n")


def test_a_sweep_of_as_many_tasks_as_slurm_can_number_passes_the_spec_check():
    from hpcx.submit.sweeps import (  # 8191 x 8193 = 2**26 - 1: checked here, not expanded
        MAX_TASKS,
        parse_spec,
    )

    doc = {"command": ["t"], "parameters": {"grid": {"x": {"range": [0, 8191]}, "y": {"range": [0, 8193]}}}}
    assert 8191 * 8193 == MAX_TASKS == 67108863
    assert len(parse_spec(doc).grid["y"]) == 8193


RESOURCE_CASES = [
    # resources key and value, exit code, words
    ("nodes: 0", 2, ["--nodes 0 is below 1", "use --nodes 1 or more"]),
    ("nodes: -1", 2, ["--nodes -1 is below 1"]),
    ("nodes: two", 2, ["--nodes 'two' is not a whole number", "e.g. --nodes 2"]),
    ("nodes: 1.5", 2, ["--nodes '1.5' is not a whole number"]),
    ("nodes: 100000", 3, ["--nodes 100000 exceeds partition debug's MaxNodes 2", "ask for less"]),
    ("ntasks_per_node: 0", 2, ["--ntasks-per-node 0 is below 1"]),
    ("ntasks_per_node: x", 2, ["--ntasks-per-node 'x' is not a whole number"]),
    ("cpus_per_task: 0", 2, ["--cpus-per-task 0 is below 1", "use --cpus-per-task 1 or more"]),
    ("cpus_per_task: -4", 2, ["--cpus-per-task -4 is below 1"]),
    ("cpus_per_task: all", 2, ["--cpus-per-task 'all' is not a whole number"]),
    ("cpus_per_task: 999", 3, ["999 CPUs per node exceeds partition gpu's 4 CPUs per node"]),
    ("gpus_per_node: -1", 2, ["--gpus-per-node -1 is below 0"]),
    ("gpus_per_node: one", 2, ["--gpus-per-node 'one' is not a whole number"]),
    ("gpus_per_node: 99", 3, ["--gpus-per-node 99 exceeds partition gpu's 2 GPUs per node"]),
    ("mem_per_cpu: 0", 2, ["--mem-per-cpu '0' must be positive"]),  # --mem 0 is sbatch's "all of it"
    ("mem: -1G", 2, ["--mem '-1G' is not a memory size", "e.g. --mem 4000M or 4G"]),
    ("mem: lots", 2, ["--mem 'lots' is not a memory size"]),
    ("mem: 99999G", 3, ["--mem 102398976M exceeds partition gpu's 4000M per node"]),
    ("time: 0", 2, ["--time 0 minutes must be positive"]),
    ("time: -5", 2, ["--time '-5' is not a Slurm time", "e.g. --time 01:30:00"]),
    ("time: soon", 2, ["--time 'soon' is not a Slurm time"]),
    ("time: 99999999", 3, ["exceeds partition batch's MaxTime 2-00:00:00"]),
]


@pytest.mark.parametrize("resource, exit_code, words", RESOURCE_CASES, ids=[c[0] for c in RESOURCE_CASES])
def test_a_bad_number_in_the_resources_is_refused_as_submit_refuses_it(sweep, resource, exit_code, words):
    code, out, err = sweep(GRID + f"resources: {{{resource}}}\n")
    assert code == exit_code and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("hpcx: error: ")
    for w in words:
        assert w in err


OPTION_CASES = [
    # --max-parallel value, exit code, words on the Error line
    ("0", ["'--max-parallel': 0 is not in the range x>=1"]),
    ("-2", ["'--max-parallel': -2 is not in the range x>=1"]),
    ("all", ["'--max-parallel': 'all' is not a valid integer"]),
    ("1.5", ["'--max-parallel': '1.5' is not a valid integer"]),
    ("67108864", ["--max-parallel 67108864 must be a whole number from 1 to 67108863", "e.g. 8"]),
    ("4294967297", ["--max-parallel 4294967297 must be a whole number from 1 to 67108863"]),
]


@pytest.mark.parametrize("value, words", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_a_bad_max_parallel_option_is_a_usage_error(sweep, value, words):
    code, out, err = sweep(GRID, "--max-parallel", value)
    assert code == 2 and out == ""
    assert [line for line in err.splitlines() if "--max-parallel" in line and "Usage:" not in line] != []
    for w in words:
        assert w in err
    code, out, _ = sweep(GRID, "--max-parallel", value, json_out=True)  # --json: one document, same exit code
    doc = json.loads(out)
    assert code == 2 and doc["error"]["exit_code"] == 2 and words[0] in doc["error"]["message"]


@pytest.mark.parametrize(
    "body, args, arrays",
    [
        (GRID + "max_parallel: 1\n", [], ["0-1%1"]),
        (GRID + "max_parallel: 67108863\n", [], ["0-1%67108863"]),
        (GRID + "max_parallel: 5\n", ["--max-parallel", "2"], ["0-1%2"]),  # the option wins over the spec
        (GRID + "seed: -7\n", [], ["0-1"]),
        (GRID + "seed: 0\n", [], ["0-1"]),
        ("parameters: {grid: {x: {range: [-3, 0]}}}\n", [], ["0-2"]),
        ("parameters: {grid: {x: {linspace: [-1, 1, 1]}}}\n", [], ["0"]),
        (RANDOM % "{uniform: [-1, 1]}", [], ["0-1"]),
        (RANDOM % "{randint: [-2, -2]}", [], ["0-1"]),
        (RANDOM % "{loguniform: [1e-5, 1e-2]}", [], ["0-1"]),  # PyYAML reads 1e-5 as text: still a number
        (GRID + "resources: {gpus_per_node: 0, time: 30, mem: 1G}\n", [], ["0-1"]),
    ],
)
def test_numbers_slurm_takes_are_taken(sweep, body, args, arrays):
    code, out, err = sweep(body, *args, json_out=True)
    assert code == 0, err
    assert json.loads(out)["arrays"] == arrays
