"""What a sweep spec means, rule by rule: the defaults a spec may leave out, a command written as one string,
the values and names of range/linspace/logspace axes, random draws at their bounds, and the array each chunk
is submitted as. Each test reads a spec the way a user writes it and checks the tasks (or the sbatch array) that
come out."""

import pytest
import yaml

from hpcx.errors import UsageError
from hpcx.submit.sweeps import SweepError, chunks, expand, fill_command, parse_spec, read_task, task_env


def spec(text: str):
    return parse_spec(yaml.safe_load(text))


def commands(text: str) -> list[list[str]]:
    s = spec(text)
    return [fill_command(s.command, t.to_dict()) for t in expand(s)]


# -- chunks as job arrays -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_tasks, max_array, arrays",
    [
        (1, 1001, ["0"]),
        (2, 1001, ["0-1"]),  # a two-task array must run both tasks, not task 0 alone
        (3, 1001, ["0-2"]),
        (1001, 1001, ["0-1000"]),
        (1002, 1001, ["0-1000", "0"]),
        (1003, 1001, ["0-1000", "0-1"]),
        (5, 2, ["0-1", "0-1", "0"]),
    ],
)
def test_each_chunk_is_the_array_of_its_tasks(n_tasks, max_array, arrays):
    parts = chunks(n_tasks, max_array)
    assert [c.array_spec(None) for c in parts] == arrays
    assert [c.offset for c in parts] == list(range(0, n_tasks, max_array))


def test_a_throttle_is_added_to_every_array():
    assert [c.array_spec(3) for c in chunks(3, 2)] == ["0-1%3", "0%3"]


# -- what a spec may leave out -----------------------------------------------------------------------------


def test_name_and_kind_default_to_sweep_and_serial():
    s = spec("command: [t]\n")
    assert (s.name, s.kind) == ("sweep", "serial")
    s = spec("name: scan\nkind: mpi\ncommand: [t]\n")
    assert (s.name, s.kind) == ("scan", "mpi")
    s = spec("name: ''\nkind: null\ncommand: [t]\n")  # empty values are the defaults too
    assert (s.name, s.kind) == ("sweep", "serial")


def test_without_repeats_each_combination_runs_once():
    tasks = expand(spec("command: [t, '{x}']\nparameters: {grid: {x: [1, 2]}}\n"))
    assert [(t.id, t.name, t.params) for t in tasks] == [(0, "x=1", {"x": 1}), (1, "x=2", {"x": 2})]


def test_repeats_run_each_combination_again_with_its_own_seed():
    tasks = expand(spec("command: [t, '{x}']\nparameters: {grid: {x: [1, 2]}, repeats: 3}\n"))
    assert [t.name for t in tasks] == [
        "x=1,rep=0",
        "x=1,rep=1",
        "x=1,rep=2",
        "x=2,rep=0",
        "x=2,rep=1",
        "x=2,rep=2",
    ]
    assert len({t.seed for t in tasks}) == 6


def test_a_sweep_without_parameters_is_one_task():
    (task,) = expand(spec("command: [t, '{seed}']\n"))
    assert (task.id, task.name, task.params) == (0, "task", {})


def test_the_sweep_seed_changes_every_tasks_seed_and_defaults_to_0():
    text = "command: [t]\nparameters: {grid: {x: [1, 2]}}\n"
    default, zero, seven = (
        expand(spec(text)),
        expand(spec(text + "seed: 0\n")),
        expand(spec(text + "seed: 7\n")),
    )
    assert [t.seed for t in default] == [t.seed for t in zero]
    assert all(a.seed != b.seed for a, b in zip(zero, seven))


# -- the command -------------------------------------------------------------------------------------------


def test_a_command_written_as_one_string_is_split_like_a_shell_line():
    s = spec("command: \"python train.py --lr {lr} --tag 'two words'\"\nparameters: {grid: {lr: [0.1]}}\n")
    assert s.command == ["python", "train.py", "--lr", "{lr}", "--tag", "two words"]
    (task,) = expand(s)
    assert fill_command(s.command, task.to_dict()) == [
        "python",
        "train.py",
        "--lr",
        "0.1",
        "--tag",
        "two words",
    ]


def test_numbers_in_a_command_list_are_words():
    assert spec("command: [sleep, 5, 0.5]\n").command == ["sleep", "5", "0.5"]


@pytest.mark.parametrize("command", ["[]", "''", "null", "[python, [nested]]", "{a: 1}"])
def test_a_command_that_is_not_words_is_refused(command):
    with pytest.raises(SweepError, match="needs a command: a list of words or one string") as err:
        spec(f"command: {command}\n")
    assert err.value.exit_code == 3 and "command: [python, train.py" in err.value.hint


# -- values of the axes as the command sees them -------------------------------------------------------------


def test_a_whole_number_range_gives_whole_numbers():
    assert commands("command: ['--n={n}']\nparameters: {grid: {n: {range: [1, 4]}}}\n") == [
        ["--n=1"],
        ["--n=2"],
        ["--n=3"],
    ]


def test_a_range_with_a_fractional_step_reads_as_written():
    got = commands("command: ['{x}']\nparameters: {grid: {x: {range: [0.1, 0.5, 0.1]}}}\n")
    assert got == [["0.1"], ["0.2"], ["0.3"], ["0.4"]]  # no 0.30000000000000004
    got = commands("command: ['{x}']\nparameters: {grid: {x: {range: [0, 1, 0.25]}}}\n")
    assert got == [["0.0"], ["0.25"], ["0.5"], ["0.75"]]


def test_large_whole_numbers_in_a_range_keep_every_digit():
    got = commands("command: ['{x}']\nparameters: {grid: {x: {range: [1000000000001, 1000000000004]}}}\n")
    assert got == [["1000000000001"], ["1000000000002"], ["1000000000003"]]
    got = commands(
        "command: ['{x}']\nparameters: {grid: {x: {range: [9007199254740993, 9007199254740995]}}}\n"
    )
    assert got == [["9007199254740993"], ["9007199254740994"]]


def test_a_range_with_a_negative_step_counts_down():
    assert commands("command: ['{x}']\nparameters: {grid: {x: {range: [3, 0, -1]}}}\n") == [
        ["3"],
        ["2"],
        ["1"],
    ]


def test_linspace_and_logspace_include_both_ends():
    s = spec(
        "command: [t]\nparameters: {grid: {a: {linspace: [0, 1, 5]}, b: {logspace: [-2, 1, 4]}, "
        "c: {linspace: [2, 3, 1]}}}\n"
    )
    assert s.grid == {"a": [0.0, 0.25, 0.5, 0.75, 1.0], "b": [0.01, 0.1, 1.0, 10.0], "c": [2.0]}
    tasks = expand(s)
    assert tasks[0].name == "a=0,b=0.01,c=2" and tasks[-1].name == "a=1,b=10,c=2"
    assert [fill_command(["{b}"], t.to_dict()) for t in tasks[:4]] == [["0.01"], ["0.1"], ["1.0"], ["10.0"]]


def test_names_show_floats_to_four_digits_and_other_values_as_written():
    tasks = expand(
        spec("command: [t]\nparameters: {grid: {lr: [0.000123456, 3.0], opt: [adam], deep: [true]}}\n")
    )
    assert [t.name for t in tasks] == ["lr=0.0001235,opt=adam,deep=True", "lr=3,opt=adam,deep=True"]


# -- random draws ------------------------------------------------------------------------------------------


def test_randint_draws_both_of_its_bounds():
    tasks = expand(
        spec("command: [t]\nparameters: {random: {seed: 1, draws: 200, params: {n: {randint: [1, 3]}}}}\n")
    )
    assert {t.params["n"] for t in tasks} == {1, 2, 3}


def test_uniform_and_loguniform_stay_within_their_bounds():
    s = spec(
        "command: [t]\nparameters: {random: {seed: 2, draws: 300, params: {u: {uniform: [2, 3]}, "
        "l: {loguniform: [0.001, 0.1]}, c: {choice: [a, b]}}}}\n"
    )
    tasks = expand(s)
    us, ls = [t.params["u"] for t in tasks], [t.params["l"] for t in tasks]
    assert all(2 <= u <= 3 for u in us) and max(us) - min(us) > 0.9
    assert all(0.001 <= v <= 0.1 for v in ls) and min(ls) < 0.002 and max(ls) > 0.05
    assert sum(v < 0.01 for v in ls) > 100  # log-uniform: a third of the draws fall in each decade
    assert {t.params["c"] for t in tasks} == {"a", "b"}


def test_the_random_seed_defaults_to_the_sweep_seed():
    base = "command: [t]\nparameters: {random: {draws: 4, params: {u: {uniform: [0, 1]}}}}\n"
    with_seed = "command: [t]\nparameters: {random: {seed: 5, draws: 4, params: {u: {uniform: [0, 1]}}}}\n"
    by_sweep = [t.params for t in expand(spec(base + "seed: 5\n"))]
    assert by_sweep == [t.params for t in expand(spec(with_seed))]
    assert by_sweep != [t.params for t in expand(spec(base + "seed: 6\n"))]


# -- exclude -----------------------------------------------------------------------------------------------


def test_an_exclude_rule_drops_only_the_tasks_that_match_all_its_keys():
    tasks = expand(
        spec("command: [t]\nparameters: {grid: {a: [1, 2], b: [x, y]}}\nexclude: [{a: 2, b: y}]\n")
    )
    assert [t.params for t in tasks] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}]
    assert [t.id for t in tasks] == [0, 1, 2]


def test_an_exclude_rule_compares_booleans_only_with_booleans():
    tasks = expand(
        spec("command: [t]\nparameters: {grid: {f: [true, false], n: [1, 0]}}\nexclude: [{f: true}]\n")
    )
    assert [t.params for t in tasks] == [{"f": False, "n": 1}, {"f": False, "n": 0}]
    with pytest.raises(SweepError, match=r"exclude\[0\] \{'n': True\} matches no task: n takes 1, 0"):
        expand(spec("command: [t]\nparameters: {grid: {n: [1, 0]}}\nexclude: [{n: true}]\n"))


def test_an_exclude_rule_with_a_word_for_a_number_matches_nothing():
    with pytest.raises(SweepError, match=r"matches no task: lr takes 0.1, 0.2"):
        expand(spec("command: [t]\nparameters: {grid: {lr: [0.1, 0.2]}}\nexclude: [{lr: fast}]\n"))


def test_a_rule_that_matches_nothing_lists_at_most_eight_of_the_values():
    with pytest.raises(SweepError) as err:
        expand(spec("command: [t]\nparameters: {grid: {n: {range: [0, 12]}}}\nexclude: [{n: 99}]\n"))
    assert "n takes 0, 1, 2, 3, 4, 5, 6, 7, ... (12 values)" in str(err.value)
    with pytest.raises(SweepError) as err:
        expand(spec("command: [t]\nparameters: {grid: {n: {range: [0, 8]}}}\nexclude: [{n: 99}]\n"))
    assert "n takes 0, 1, 2, 3, 4, 5, 6, 7" in str(err.value) and "..." not in str(err.value)


@pytest.mark.parametrize("rule", ["[x]", "[{}]", "[{lr: 1, nope: 2}]"])
def test_an_exclude_rule_must_name_swept_parameters(rule):
    with pytest.raises(SweepError, match=r"exclude\[0\] .* must map swept parameter names to values") as err:
        spec(f"command: [t]\nparameters: {{grid: {{lr: [1]}}}}\nexclude: {rule}\n")
    assert err.value.hint == "swept parameters: lr"


# -- the task table and a task's environment ---------------------------------------------------------------


def test_a_task_reads_its_own_row_of_the_table(tmp_path):
    from hpcx.submit.sweep_submit import task_table

    tasks = expand(spec("command: [t]\nparameters: {grid: {x: [a, b, c]}}\n"))
    table = tmp_path / "tasks.jsonl"
    table.write_text(task_table(tasks))
    assert read_task(str(table), 2) == tasks[2].to_dict() and read_task(str(table), 0)["params"] == {"x": "a"}
    with pytest.raises(UsageError, match="has no task 3"):
        read_task(str(table), 3)
    table.write_text(table.read_text().replace('"task":1', '"task":7'))
    with pytest.raises(UsageError, match="line 1 holds task 7"):
        read_task(str(table), 1)


def test_a_tasks_environment_carries_strings_as_they_are_and_other_values_as_json():
    env = task_env({"task": 0, "name": "n", "seed": 1, "params": {"s": "a b", "f": True, "n": None}})
    assert (env["HPCX_PARAM_S"], env["HPCX_PARAM_F"], env["HPCX_PARAM_N"]) == ("a b", "true", "null")


def test_task_name_and_task_id_placeholders():
    s = spec("command: [t, '{task}', '{task_name}', '{{x}}']\nparameters: {grid: {x: [1, 2]}}\n")
    assert [fill_command(s.command, t.to_dict()) for t in expand(s)] == [
        ["t", "0", "x=1", "{x}"],
        ["t", "1", "x=2", "{x}"],
    ]


# -- refusals: one line with the value, what was expected and the fix ------------------------------------------

GRID_FIX = "use a list, or {range: [start, stop, step]}, {linspace: [a, b, n]}, {logspace: [a, b, n]}"
DIST_FIX = "use {uniform: [a, b]}, {loguniform: [a, b]}, {randint: [a, b]} or {choice: [...]}"
RULE_FIX = "fix the value (it must be one the sweep takes) or remove the rule"
ZIP = "parameters.zip lists must have the same, non-zero length"
ZIP_FIX = "e.g. zip: {lr: [0.1, 0.01], bs: [32, 64]} (lr 0.1 runs with bs 32)"


@pytest.mark.parametrize(
    "text, line",
    [
        ("parameters: {grid: {x: []}}", "parameters.grid.x is empty; give at least one value"),
        ("parameters: {grid: {x: a}}", f"parameters.grid.x: 'a' is not a list of values; {GRID_FIX}"),
        (
            "parameters: {grid: {x: {range: [0, 3], linspace: [0, 1, 2]}}}",
            f"parameters.grid.x: {{'range': [0, 3], 'linspace': [0, 1, 2]}} is not a list of values; {GRID_FIX}",
        ),
        (
            "parameters: {grid: {x: {linspace: abc}}}",
            f"parameters.grid.x: {{'linspace': 'abc'}} is not a list of values; {GRID_FIX}",
        ),
        (
            "parameters: {grid: {x: {steps: [0, 1, 3]}}}",
            f"parameters.grid.x: {{'steps': [0, 1, 3]}} is not a list of values; {GRID_FIX}",
        ),
        (
            "parameters: {grid: {x: {range: [1, 2, 3, 4]}}}",
            f"parameters.grid.x: {{'range': [1, 2, 3, 4]}} is not a list of values; {GRID_FIX}",
        ),
        (
            "parameters: {grid: {my-x: [1], 2y: [1]}}",
            "parameter name(s) 'my-x', '2y' are not identifiers; use letters, digits and _ (they become $HPCX_PARAM_<NAME>)",
        ),
        (
            "parameters: {grid: {a: [1], b: [2]}, zip: {a: [1], b: [2]}}",
            "parameter(s) a, b appear in more than one of grid/zip/random; give each parameter in one of them",
        ),
        ("parameters: {zip: {a: 5}}", f"{ZIP}: a has no list of values; {ZIP_FIX}"),
        ("parameters: {zip: {a: 5, b: [1]}}", f"{ZIP}: a has no list of values, b has 1 values; {ZIP_FIX}"),
        ("parameters: {zip: {a: []}}", f"{ZIP}: a has 0 values; {ZIP_FIX}"),
        ("parameters: {zip: {a: [1, 2], b: [1]}}", f"{ZIP}: a has 2 values, b has 1 values; {ZIP_FIX}"),
        (
            "parameters: {random: {draws: 2, params: {x: {uniform: [0, 1], randint: [1, 2]}}}}",
            f"parameters.random.params.x: {{'uniform': [0, 1], 'randint': [1, 2]}} is not a distribution; {DIST_FIX}",
        ),
        (
            "parameters: {random: {draws: 2, params: {x: normal}}}",
            f"parameters.random.params.x: 'normal' is not a distribution; {DIST_FIX}",
        ),
        (
            "parameters: {random: {draws: 2, params: {x: {choice: []}}}}",
            f"parameters.random.params.x: {{'choice': []}} is not a distribution; {DIST_FIX}",
        ),
        (
            "parameters: {random: {draws: 2, params: {x: {uniform: [0, 1]}}, sed: 3, drawz: 2}}",
            "parameters.random needs draws (>= 1), params and optionally seed (not drawz, sed); "
            "e.g. random: {seed: 7, draws: 8, params: {dropout: {uniform: [0, 0.5]}}}",
        ),
        (
            "parameters: {random: {draws: 2}}",
            "parameters.random needs draws (>= 1), params and optionally seed; "
            "e.g. random: {seed: 7, draws: 8, params: {dropout: {uniform: [0, 0.5]}}}",
        ),
        (
            "parameters: {grid: {n: {range: [0, 9]}}}\nexclude: [{n: 99}]",
            f"exclude[0] {{'n': 99}} matches no task: n takes 0, 1, 2, 3, 4, 5, 6, 7, ... (9 values); {RULE_FIX}",
        ),
        (
            "parameters: {grid: {n: {range: [0, 8]}}}\nexclude: [{n: 99}]",
            f"exclude[0] {{'n': 99}} matches no task: n takes 0, 1, 2, 3, 4, 5, 6, 7; {RULE_FIX}",
        ),
        (
            "parameters: {grid: {a: [1, 2], b: [x, y]}}\nexclude: [{a: 1, b: z}]",
            f"exclude[0] {{'a': 1, 'b': 'z'}} matches no task: a takes 1, 2; b takes 'x', 'y'; {RULE_FIX}",
        ),
        (
            "parameters: {grid: {layers: [[1, 2], [3]]}}\nexclude: [{layers: '[3]'}]",  # a list is not its text
            f"exclude[0] {{'layers': '[3]'}} matches no task: layers takes [1, 2], [3]; {RULE_FIX}",
        ),
        (
            "parameters: {grid: {x: [1]}}\nexclude: [{x: 1}]",
            "sweep 's' has no tasks left after the exclude rules; loosen exclude, or add values",
        ),
    ],
)
def test_a_spec_that_cannot_be_expanded_is_one_exact_line(text, line):
    with pytest.raises(SweepError) as err:
        expand(spec(f"name: s\ncommand: [t]\n{text}\n"))
    assert str(err.value) == line and err.value.exit_code == 3


def test_an_undefined_placeholder_names_the_defined_ones_and_the_literal_brace():
    with pytest.raises(SweepError) as err:
        spec("command: [t, '{y}']\nparameters: {grid: {x: [1]}}\n")
    assert str(err.value) == (
        "command word '{y}' uses {y}, which no parameter defines; defined: {x}, {seed}, "
        "{task}, {task_name}; write {{ for a literal brace ({{name}} gives {name})"
    )


# -- more values as the command sees them ------------------------------------------------------------------


def test_a_range_of_one_value_and_a_linspace_of_two():
    assert commands("command: ['{x}']\nparameters: {grid: {x: {range: [5, 6]}}}\n") == [["5"]]
    assert commands("command: ['{x}']\nparameters: {grid: {x: {linspace: [1, 3, 2]}}}\n") == [
        ["1.0"],
        ["3.0"],
    ]


def test_a_range_step_written_in_e_notation_is_a_number():
    # PyYAML reads 25e-2 as the text '25e-2' (YAML 1.1 floats need a dot): it is still the step 0.25.
    got = commands("command: ['{x}']\nparameters: {grid: {x: {range: [0, 1, 25e-2]}}}\n")
    assert got == [["0.0"], ["0.25"], ["0.5"], ["0.75"]]


def test_a_sweeps_seeds_stay_the_same_from_one_hpcx_version_to_the_next():
    """The seeds recorded for a sweep come back when it is run again, with this or a later hpcx: they are
    part of what a task is. (A change here makes every earlier sweep's results unreproducible by rerun.)"""
    tasks = expand(spec("command: [t]\nparameters: {grid: {lr: [1, 0.1]}, repeats: 2}\nseed: 7\n"))
    assert [(t.name, t.seed) for t in tasks] == [
        ("lr=1,rep=0", 2090241117),
        ("lr=1,rep=1", 55651602),
        ("lr=0.1,rep=0", 892848881),
        ("lr=0.1,rep=1", 1383775812),
    ]
    (one,) = expand(spec("command: [t]\nparameters: {grid: {lr: [1]}}\n"))
    assert one.seed == 851492742


YAML_WORD = (
    "not text: YAML read true/false/yes/no/on/off/null (or an empty word) as a value; quote the word to "
    'pass it as text, e.g. command: ["true"] or [train.py, --flag, "yes"]'
)
NEEDS_COMMAND = 'the sweep spec needs a command: a list of words or one string; e.g. command: [python, train.py, --lr, "{lr}"]'


@pytest.mark.parametrize(
    "text, line",
    [
        (
            "- a\n- b\n",
            "a sweep spec is a mapping, found list; give name:, command: and parameters: keys (see `hpcx sweep --help`)",
        ),
        (
            "command: [t]\ncolour: red\nsize: 2\n",
            "unknown key(s) colour, size in the sweep spec; known keys: command, exclude, "
            "inputs, kind, max_parallel, name, parameters, resources, seed, variables, version",
        ),
        (
            "command: [t]\nparameters: {gird: {x: [1]}, zipp: {}}\n",
            "unknown key(s) in parameters: gird, zipp; known: grid, random, repeats, zip",
        ),
        (
            "command: [t]\nparameters: [grid]\n",
            "parameters is a mapping, found list; e.g. parameters: {grid: {lr: [0.1, 0.01]}, repeats: 2}",
        ),
        ("command: [t, true]\n", f"command word True is YAML's boolean, {YAML_WORD}"),
        ("command: [t, null]\n", f"command word None is YAML's null, {YAML_WORD}"),
        ("command: [t, [x]]\n", NEEDS_COMMAND),
        ("command: []\n", NEEDS_COMMAND),
    ],
)
def test_a_document_that_is_not_a_sweep_spec_is_one_exact_line(text, line):
    with pytest.raises(SweepError) as err:
        spec(text)
    assert str(err.value) == line and err.value.exit_code == 3


@pytest.mark.parametrize(
    "params, hint",
    [
        ("{grid: {lr: [1]}, zip: {bs: [2]}}", "swept parameters: lr, bs"),
        ("{repeats: 2}", "swept parameters: none"),
    ],
)
def test_an_exclude_rule_naming_no_swept_parameter_lists_those_there_are(params, hint):
    with pytest.raises(SweepError) as err:
        spec(f"command: [t]\nparameters: {params}\nexclude: [{{depth: 3}}]\n")
    assert str(err.value) == f"exclude[0] {{'depth': 3}} must map swept parameter names to values; {hint}"
