"""Sweep specs that would run something else than written are refused before anything is submitted: undefined
placeholders, exclude rules that match nothing, placeholders in resources; `--dry-run` shows the resolved
commands. (The spec is parsed here; the CLI runs with the builtin local site.)"""

import json

import pytest
import yaml

from hpcx.submit.sweeps import SweepError, expand, fill_command, parse_spec


def tasks(text: str):
    return expand(parse_spec(yaml.safe_load(text)))


def test_a_placeholder_nothing_defines_is_an_error_naming_it_and_the_defined_ones():
    with pytest.raises(SweepError) as err:
        tasks(
            "name: s\ncommand: [python, t.py, 'lr={lr}', 'bs={batch_size}']\nparameters: {grid: {lr: [0.1, 0.01]}}\n"
        )
    message = f"{err.value} {err.value.hint}"
    assert "'bs={batch_size}' uses {batch_size}, which no parameter defines" in message
    assert "defined: {lr}, {seed}, {task}, {task_name}" in message and err.value.exit_code == 3


def test_a_literal_brace_is_doubled_and_the_shells_braces_stay():
    spec = parse_spec(
        yaml.safe_load(
            "name: s\ncommand: [bash, -c, 'echo {{batch_size}} {lr} ${HOME} {{ {\"k\": 1}']\nparameters: {grid: {lr: [0.5]}}\n"
        )
    )
    (task,) = expand(spec)
    assert fill_command(spec.command, task.to_dict()) == [
        "bash",
        "-c",
        'echo {batch_size} 0.5 ${HOME} { {"k": 1}',
    ]


GRID = "name: s\ncommand: [t, '{lr}', '{bs}']\nparameters: {grid: {lr: [0.1, 0.01]}, zip: {bs: [32, 64]}}\n"


def test_an_exclude_rule_that_matches_no_task_is_an_error_naming_it():
    with pytest.raises(SweepError) as err:
        tasks(GRID + "exclude: [{lr: 0.3}]\n")
    assert "exclude[0] {'lr': 0.3} matches no task: lr takes 0.1, 0.01" in str(err.value)
    assert err.value.exit_code == 3


def test_exclude_values_compare_as_the_grids_values_do():
    # "0.1" (a YAML string) is the value the command sees for lr 0.1: the rule drops that task.
    left = tasks(GRID + 'exclude: [{lr: "0.1", bs: 64}]\n')
    assert [t.params for t in left] == [{"lr": 0.1, "bs": 32}, {"lr": 0.01, "bs": 32}, {"lr": 0.01, "bs": 64}]
    with pytest.raises(SweepError, match=r"exclude\[1\]"):
        tasks(GRID + 'exclude: [{lr: 0.01}, {lr: "0.1", bs: 65}]\n')
    with pytest.raises(SweepError, match="matches no task"):  # true is not 1
        tasks("name: s\ncommand: [t, '{x}']\nparameters: {grid: {x: [1, 2]}}\nexclude: [{x: true}]\n")


def test_the_smaller_array_limit_wins():
    from hpcx.submit.sweep_submit import max_array_size

    assert max_array_size(5000, {"MaxArraySize": 1001}) == 1001
    assert max_array_size(3, {"MaxArraySize": 1001}) == 3
    assert max_array_size(None, {"MaxArraySize": 500}) == 500
    assert max_array_size(200, {}) == 200
    assert max_array_size(None, {}) == 1001


def write(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return str(path)


def test_dry_run_prints_each_tasks_resolved_command(hpcx, tmp_path):
    spec = write(
        tmp_path,
        "name: s\ncommand: [python, t.py, '--lr={lr}', --seed, '{seed}']\n"
        "parameters: {grid: {lr: {range: [1, 13]}}}\n",
    )
    out = hpcx("sweep", spec, "--dry-run").stdout
    assert "commands of the first 5 of 12 task(s):" in out
    assert "     0  python t.py --lr=1 --seed " in out and "     4  python t.py --lr=5 --seed " in out
    assert "--lr=6 " not in out
    doc = json.loads(hpcx("--json", "sweep", spec, "--dry-run").stdout)
    assert [t["command"][2] for t in doc["tasks"]] == [f"--lr={i}" for i in range(1, 13)]
    assert all(t["command"][4] == str(t["seed"]) for t in doc["tasks"])


def test_a_placeholder_in_resources_says_resources_cannot_vary(hpcx, tmp_path, runs_root):
    spec = write(
        tmp_path, "name: s\nresources: {nodes: '{n}'}\ncommand: [t]\nparameters: {grid: {n: [1, 2]}}\n"
    )
    proc = hpcx("sweep", spec, check=False)
    assert proc.returncode == 3
    assert "resources.nodes '{n}' uses {n}, but resources cannot vary within a sweep" in proc.stderr
    assert "run one sweep per nodes" in proc.stderr
    assert list(runs_root.iterdir()) == []


def test_unknown_placeholder_from_the_cli_submits_nothing(hpcx, tmp_path, runs_root):
    spec = write(tmp_path, "name: s\ncommand: [t, 'bs={batch_size}']\nparameters: {grid: {lr: [1]}}\n")
    proc = hpcx("sweep", spec, check=False)
    assert proc.returncode == 3 and "{batch_size}" in proc.stderr and "defined: {lr}" in proc.stderr
    assert list(runs_root.iterdir()) == []
