"""Sweep specs: expansion, names, seeds, chunking, and the errors that stop a sweep before anything runs."""

import pytest
import yaml

from hpcx.submit.sweeps import SweepError, chunks, expand, fill_command, parse_spec, task_env, task_seed


def spec(text: str):
    return parse_spec(yaml.safe_load(text))


BASE = "name: s\ncommand: [python, t.py, --lr, '{lr}']\n"


def test_grid_zip_random_repeats_and_exclude_combine():
    s = spec(
        BASE
        + """
parameters:
  grid: {lr: {logspace: [-3, -1, 3]}, model: [a, b]}
  zip: {bs: [32, 64], wu: [1, 2]}
  random: {seed: 3, draws: 2, params: {drop: {uniform: [0, 0.5]}}}
  repeats: 2
exclude: [{model: b, bs: 64}]
"""
    )
    tasks = expand(s)
    assert len(tasks) == 3 * 2 * 2 * 2 * 2 - 3 * 1 * 1 * 2 * 2
    assert [t.id for t in tasks] == list(range(len(tasks)))
    assert tasks[0].params["lr"] == 0.001 and tasks[-1].params["lr"] == 0.1
    assert not any(t.params["model"] == "b" and t.params["bs"] == 64 for t in tasks)
    assert tasks[0].name.startswith("lr=0.001,model=a,bs=32,wu=1,drop=") and tasks[0].name.endswith(",rep=0")
    assert len({t.name for t in tasks}) == len(tasks)  # names identify tasks


def test_random_draws_and_seeds_are_reproducible():
    text = (
        BASE
        + "parameters:\n  grid: {lr: [1, 2]}\n  random: {seed: 9, draws: 3, params: {w: {choice: [8, 16, 32]}, d: {loguniform: [1e-5, 1e-2]}}}\n"
    )
    a, b = expand(spec(text)), expand(spec(text))
    assert [t.to_dict() for t in a] == [t.to_dict() for t in b]
    other = expand(spec(text.replace("seed: 9", "seed: 10")))
    assert [t.params for t in a] != [t.params for t in other]
    assert all(1e-5 <= t.params["d"] <= 1e-2 and t.params["w"] in (8, 16, 32) for t in a)


def test_a_task_keeps_its_seed_when_the_grid_grows():
    small = {t.name: t.seed for t in expand(spec(BASE + "parameters: {grid: {lr: [1, 2]}, repeats: 2}\n"))}
    big = {
        t.name: t.seed for t in expand(spec(BASE + "parameters: {grid: {lr: [0, 1, 2, 3]}, repeats: 2}\n"))
    }
    assert all(big[name] == seed for name, seed in small.items())
    assert len(set(big.values())) == len(big)
    assert task_seed(0, "lr=1", 0) != task_seed(0, "lr=1", 1)


def test_ranges():
    s = spec(
        BASE
        + "parameters: {grid: {lr: {range: [0, 1, 0.25]}, n: {range: [1, 4]}, x: {linspace: [0, 1, 3]}}}\n"
    )
    assert s.grid == {"lr": [0, 0.25, 0.5, 0.75], "n": [1, 2, 3], "x": [0.0, 0.5, 1.0]}


@pytest.mark.parametrize(
    "text, words",
    [
        (BASE + "parameters: {grid: {lr: []}}\n", "parameters.grid.lr is empty"),
        (
            BASE + "parameters: {zip: {a: [1, 2], b: [1]}}\n",
            "same, non-zero length: a has 2 values, b has 1 values",
        ),
        (BASE + "colour: red\n", "unknown key(s) colour"),
        (BASE + "parameters: {gird: {lr: [1]}}\n", "unknown key(s) in parameters: gird"),
        (
            BASE + "parameters: {grid: {lr: [1]}}\nexclude: [{lr: 1}]\n",
            "no tasks left after the exclude rules",
        ),
        (BASE + "parameters: {grid: {lr: [1]}}\nexclude: [{rate: 1}]\n", "exclude[0]"),
        (BASE + "parameters: {grid: {lr: [1]}, zip: {lr: [2]}}\n", "appear in more than one"),
        (BASE + "parameters: {grid: {lr: {range: [1, 0]}}}\n", "is empty"),
        (BASE + "parameters: {random: {draws: 2, params: {a: {normal: [0, 1]}}}}\n", "is not a distribution"),
        ("name: s\nparameters: {grid: {lr: [1]}}\n", "needs a command"),
        (BASE + "parameters: {repeats: 0}\n", "repeats 0 must be"),
        (BASE + "parameters: {grid: {'my-lr': [1]}}\n", "are not identifiers"),
    ],
)
def test_bad_specs_are_one_clear_error_with_exit_3(text, words):
    with pytest.raises(SweepError) as err:
        expand(spec(text))
    assert words in str(err.value) and err.value.exit_code == 3


def test_chunks_stay_below_max_array_size():
    parts = chunks(2500, 1001)
    assert [(c.offset, c.count) for c in parts] == [(0, 1001), (1001, 1001), (2002, 498)]
    assert parts[0].array_spec(10) == "0-1000%10" and parts[2].array_spec(None) == "0-497"
    assert sum(c.count for c in chunks(10_000, 1001)) == 10_000


def test_command_placeholders_and_environment():
    row = {"task": 4, "name": "lr=0.1", "params": {"lr": 0.1, "layers": [1, 2]}, "seed": 7}
    cmd = fill_command(["x", "--lr={lr}", "{seed}", "{unknown}", '{"json": 1}'], row)
    assert cmd == ["x", "--lr=0.1", "7", "{unknown}", '{"json": 1}']
    env = task_env(row)
    assert env == {
        "HPCX_TASK_ID": "4",
        "HPCX_TASK_NAME": "lr=0.1",
        "HPCX_SEED": "7",
        "HPCX_PARAM_LR": "0.1",
        "HPCX_PARAM_LAYERS": "[1, 2]",
    }
