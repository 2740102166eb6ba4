"""The study spec of `hpcx tune SPEC.yaml`: every field read as written, every bad input refused before anything is
written, in one message (exit 2) naming the key, the value and the fix; the canonical form that `--resume`
compares, conditional parameters and the rungs where early stopping decides."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hpcx.errors import UsageError
from hpcx.tune.spec import (
    Budget,
    Objective,
    Param,
    Sampler,
    Stopping,
    StudyError,
    StudySpec,
    active,
    grid_size,
    grid_values,
    parse_study,
    rungs_of,
    spec_digest,
)

FULL = """
version: 1
name: lr-search
kind: serial
resources: {time: "04:00:00", cpus_per_task: 4}
command: [python, train.py, --lr, "{lr}", --opt, "{optimizer}", --trial, "{trial}", --seed, "{seed}"]
variables: {conda_env: torch}
space:
  lr: {float: [1.0e-5, 1.0e-1], log: true}
  layers: {int: [1, 8], step: 1}
  width: {int: [16, 256], log: true}
  optimizer: {choice: [adam, sgd]}
  momentum: {float: [0.0, 0.99], when: {optimizer: sgd}}
objectives:
  - {metric: val_loss, direction: minimize}
  - {metric: accuracy, direction: maximize}
budget:
  trials: 64
  resource: {min: 10, max: 810}
  time: "04:00:00"
sampler: {name: tpe, seed: 1, n_startup_trials: 8, multivariate: true}
stopping: {rule: asha, eta: 3, rungs: [10, 30, 90, 270]}
workers: 4
seed: 7
max_parallel: 2
"""

MINIMAL: dict[str, Any] = {
    "name": "s",
    "command": ["python", "t.py", "{lr}"],
    "space": {"lr": {"float": [0.001, 0.1]}},
    "objectives": {"metric": "loss"},
    "budget": {"trials": 8, "resource": {"min": 1, "max": 27}},
}


def study(**changes: Any) -> StudySpec:
    """The minimal spec with top-level keys replaced (None removes one)."""
    doc = copy.deepcopy(MINIMAL)
    doc.update(changes)
    return parse_study({k: v for k, v in doc.items() if v is not None})


def refusal(**changes: Any) -> str:
    """The one-line message (with its hint) that refuses the minimal spec so changed; exit 2."""
    with pytest.raises(StudyError) as err:
        study(**changes)
    assert err.value.exit_code == 2 and isinstance(err.value, UsageError)
    return str(err.value)


def space(**params: Any) -> dict[str, Any]:
    return {"space": params, "command": ["t"]}


def test_every_field_of_a_full_spec_is_read_as_written() -> None:
    spec = parse_study(yaml.safe_load(FULL))
    assert (spec.version, spec.name, spec.kind, spec.seed) == (1, "lr-search", "serial", 7)
    assert (spec.workers, spec.max_parallel) == (4, 2)
    assert spec.resources == {"time": "04:00:00", "cpus_per_task": 4}
    assert spec.variables == {"conda_env": "torch"}
    assert spec.command[3] == "{lr}" and spec.command[-1] == "{seed}"
    by_name = {p.name: p for p in spec.space}
    assert by_name["lr"] == Param("lr", "float", 1e-5, 0.1, log=True)
    assert by_name["layers"] == Param("layers", "int", 1, 8, step=1)
    assert by_name["width"] == Param("width", "int", 16, 256, log=True, step=1)
    assert by_name["optimizer"] == Param("optimizer", "choice", choices=("adam", "sgd"))
    assert by_name["momentum"] == Param("momentum", "float", 0.0, 0.99, when={"optimizer": ("sgd",)})
    assert spec.objectives == (Objective("val_loss", "minimize"), Objective("accuracy", "maximize"))
    assert spec.budget == Budget(64, 10, 810, "04:00:00") and spec.budget.time_min == 240
    assert spec.sampler == Sampler("tpe", 1, {"n_startup_trials": 8, "multivariate": True})
    assert spec.stopping == Stopping("asha", 3, (10, 30, 90, 270))


def test_what_a_spec_leaves_out_takes_its_default() -> None:
    spec = parse_study({**MINIMAL, "budget": {"trials": 3}, "seed": 11})
    assert (spec.version, spec.kind, spec.resources, spec.variables, spec.max_parallel) == (
        1,
        "serial",
        {},
        {},
        None,
    )
    assert spec.objectives == (Objective("loss", "minimize"),)  # one mapping is a list of one
    assert spec.sampler == Sampler("tpe", 11, {})  # the study's seed when the sampler has none
    assert spec.stopping == Stopping("none") and rungs_of(spec.stopping, spec.budget) == ()
    assert spec.budget == Budget(3, None, None, None) and spec.budget.time_min is None
    assert spec.workers == 3  # 4 workers, but no more than there are trials
    assert study().workers == 4 and study().seed == 0


def test_workers_per_trial_is_one_array_task_per_trial() -> None:
    spec = study(workers="per-trial")
    assert spec.workers is None and spec.to_dict()["workers"] == "per-trial"
    assert study(workers=8).workers == 8 and study(workers=1).workers == 1


def test_the_space_is_in_suggest_order_whatever_the_key_order() -> None:
    params = {
        "z": {"float": [0, 1], "when": {"b": "x"}},
        "b": {"choice": ["x", "y"], "when": {"a": 1}},
        "a": {"choice": [1, 2]},
        "c": {"int": [0, 3]},
    }
    spec = study(**space(**params))
    assert [p.name for p in spec.space] == ["a", "b", "c", "z"]  # by name; parents before their children
    params = {"a": {"choice": ["x", "y"], "when": {"z": 2}}, "z": {"choice": [1, 2]}}
    assert [p.name for p in study(**space(**params)).space] == ["z", "a"]


def test_a_float_written_as_pyyaml_reads_1e_minus_3_is_a_number() -> None:
    (lr,) = study(**yaml.safe_load("space: {lr: {float: [1e-3, 1], log: true}}")).space
    assert (lr.low, lr.high) == (0.001, 1.0) and isinstance(lr.high, float)


def test_the_canonical_form_reads_back_equal_and_is_json() -> None:
    spec = parse_study(yaml.safe_load(FULL))
    text = json.dumps(spec.to_dict(), sort_keys=True)
    assert parse_study(json.loads(text)) == spec
    assert spec_digest(parse_study(json.loads(text))) == spec_digest(spec)
    assert len(spec_digest(spec)) == 64 and int(spec_digest(spec), 16) >= 0


def _reversed(value: Any) -> Any:
    """The same document with every mapping's keys in the opposite order."""
    if isinstance(value, dict):
        return {k: _reversed(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed(v) for v in value]
    return value


def test_the_canonical_form_does_not_depend_on_key_order() -> None:
    doc = yaml.safe_load(FULL)
    doc["space"]["momentum"]["when"] = {"optimizer": ["sgd"]}
    first, second = parse_study(doc), parse_study(_reversed(doc))
    assert json.dumps(first.to_dict()) == json.dumps(second.to_dict())
    assert spec_digest(first) == spec_digest(second)
    assert list(first.to_dict()) == sorted(first.to_dict()) and list(first.to_dict()["space"]) == sorted(
        p.name for p in first.space
    )


def test_condition_values_are_canonical_in_the_parents_order() -> None:
    params = {"o": {"choice": ["a", "b", "c"]}, "m": {"float": [0, 1], "when": {"o": ["c", "a"]}}}
    spec = study(**space(**params))
    assert [p.name for p in spec.space] == ["o", "m"] and spec.space[1].when == {"o": ("a", "c")}
    params["m"]["when"] = {"o": ["a", "c"]}
    assert spec_digest(study(**space(**params))) == spec_digest(spec)


CHANGES = [
    {"name": "t"},
    {"kind": "mpi"},
    {"command": ["python", "u.py", "{lr}"]},
    {"resources": {"time": "01:00:00"}},
    {"variables": {"a": "b"}},
    {"space": {"lr": {"float": [0.001, 0.2]}}},
    {"space": {"lr": {"float": [0.001, 0.1], "log": True}}},
    {"space": {"lr": {"float": [0.001, 0.1]}, "x": {"choice": [1]}}},
    {"objectives": {"metric": "loss", "direction": "maximize"}},
    {"objectives": {"metric": "acc"}},
    {"budget": {"trials": 9, "resource": {"min": 1, "max": 27}}},
    {"budget": {"trials": 8, "resource": {"min": 1, "max": 28}}},
    {"budget": {"trials": 8, "resource": {"min": 1, "max": 27}, "time": "10"}},
    {"sampler": "random"},
    {"sampler": {"name": "tpe", "seed": 1}},
    {"sampler": {"name": "tpe", "n_startup_trials": 3}},
    {"stopping": "asha"},
    {"stopping": {"rule": "asha", "eta": 2}},
    {"stopping": {"rule": "asha", "rungs": [1, 5]}},
    {"stopping": {"rule": "median", "warmup": 1}},
    {"workers": 2},
    {"workers": "per-trial"},
    {"seed": 1},
    {"max_parallel": 3},
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: json.dumps(c))
def test_the_digest_changes_when_any_value_changes(change: dict[str, Any]) -> None:
    assert spec_digest(study(**change)) != spec_digest(study())


def test_the_order_of_choices_is_part_of_the_spec() -> None:
    one = study(**space(o={"choice": ["a", "b"]}))
    assert spec_digest(one) != spec_digest(study(**space(o={"choice": ["b", "a"]})))


@given(
    low=st.floats(-1e6, 1e6, allow_nan=False),
    width=st.floats(1e-3, 1e6, allow_nan=False),
    log=st.booleans(),
)
def test_any_valid_float_range_reads_back_from_its_canonical_json(
    low: float, width: float, log: bool
) -> None:
    low = abs(low) + 1e-9 if log else low
    high = low + width
    spec = study(**space(x={"float": [low, high], "log": log}))
    again = parse_study(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and spec_digest(again) == spec_digest(spec)
    assert (again.space[0].low, again.space[0].high, again.space[0].log) == (low, high, log)


@given(
    st.permutations(
        ["version", "name", "kind", "command", "space", "objectives", "budget", "sampler", "seed"]
    )
)
def test_any_key_order_gives_one_digest(order: list[str]) -> None:
    doc = {**MINIMAL, "version": 1, "kind": "serial", "sampler": "gp", "seed": 3}
    assert spec_digest(parse_study({k: doc[k] for k in order})) == spec_digest(parse_study(doc))


def test_a_conditional_parameter_is_active_only_when_every_parent_takes_a_listed_value() -> None:
    spec = study(
        **space(
            opt={"choice": ["adam", "sgd", "rmsprop"]},
            nesterov={"choice": [True, False], "when": {"opt": "sgd"}},
            momentum={"float": [0, 0.99], "when": {"opt": ["sgd", "rmsprop"]}},
            dampening={"float": [0, 1], "when": {"opt": "sgd", "nesterov": False}},
        )
    )
    by = {p.name: p for p in spec.space}
    assert active(by["opt"], {})
    assert active(by["momentum"], {"opt": "rmsprop"}) and active(by["momentum"], {"opt": "sgd"})
    assert not active(by["momentum"], {"opt": "adam"}) and not active(by["momentum"], {})
    assert active(by["dampening"], {"opt": "sgd", "nesterov": False})
    assert not active(by["dampening"], {"opt": "sgd", "nesterov": True})
    assert not active(by["dampening"], {"opt": "rmsprop", "nesterov": False})
    assert not active(by["dampening"], {"opt": "sgd"})  # a parent with no value: inactive
    assert not active(by["dampening"], {"opt": "sgd", "nesterov": 0})  # false is not 0


def test_rungs_are_min_times_eta_to_the_k_below_max_or_as_listed() -> None:
    budget = Budget(8, 10, 810)
    assert rungs_of(Stopping("asha", 3), budget) == (10, 30, 90, 270)
    assert rungs_of(Stopping("hyperband", 3), Budget(8, 10, 811)) == (10, 30, 90, 270, 810)
    assert rungs_of(Stopping("asha", 2), Budget(8, 1, 9)) == (1, 2, 4, 8)
    assert rungs_of(Stopping("asha", 3, (10, 50)), budget) == (10, 50)
    assert rungs_of(Stopping("median", 3, (), 0), Budget(8, 1, 3)) == (1,)
    assert rungs_of(Stopping(), budget) == ()
    with pytest.raises(StudyError, match=r"no rung in budget.resource \[10, 10\)"):
        rungs_of(Stopping("asha", 3), Budget(8, 10, 10))
    spec = study(
        stopping={"rule": "asha", "eta": 4}, budget={"trials": 8, "resource": {"min": 2, "max": 100}}
    )
    assert rungs_of(spec.stopping, spec.budget) == (2, 8, 32)
    assert spec.stopping.rungs == () and spec.to_dict()["stopping"] == {"rule": "asha", "eta": 4}
    spec = study(stopping="median")
    assert spec.stopping == Stopping("median", 3, (), 0) and rungs_of(spec.stopping, spec.budget) == (1, 3, 9)


def test_a_grid_counts_its_configurations() -> None:
    spec = study(
        **space(o={"choice": ["a", "b", "c"]}, n={"int": [1, 8], "step": 3}, w={"int": [1, 4], "log": True}),
        sampler="grid",
        budget={"trials": 2},  # fewer trials than configurations: the dry run says so, nothing refuses it
    )
    assert [grid_values(p) for p in spec.space] == [(1, 4, 7), ("a", "b", "c"), (1, 2, 3, 4)]
    assert grid_size(spec.space) == 36
    assert grid_size(study().space) is None


@pytest.mark.parametrize("name", ["random", "grid", "tpe", "gp", "nsga2"])
def test_every_sampler_takes_several_objectives(name: str) -> None:
    two = [{"metric": "loss"}, {"metric": "time_s", "direction": "minimize"}]
    spec = study(sampler={"name": name}, objectives=two, **space(x={"int": [1, 3]}))
    assert spec.sampler.name == name and len(spec.objectives) == 2


def test_sampler_options_pass_on() -> None:
    nsga2 = {
        "name": "nsga2",
        "population_size": 2,
        "crossover_prob": 0.5,
        "mutation_prob": 0,
        "swapping_prob": 1,
    }
    assert study(sampler=nsga2).sampler.options == {k: v for k, v in nsga2.items() if k != "name"}
    gp = {"name": "gp", "seed": 0, "n_startup_trials": 0, "deterministic_objective": True}
    assert study(sampler=gp).sampler == Sampler(
        "gp", 0, {"n_startup_trials": 0, "deterministic_objective": True}
    )


def test_placeholders_trial_and_seed_are_defined_and_a_string_command_is_split() -> None:
    spec = study(command="python t.py --lr {lr} --trial {trial} --seed {seed} --x {{lr}}")
    assert spec.command == (
        "python",
        "t.py",
        "--lr",
        "{lr}",
        "--trial",
        "{trial}",
        "--seed",
        "{seed}",
        "--x",
        "{{lr}}",
    )


# (changes to the minimal spec, texts its refusal must contain: the key path, the value, the limit, the fix)
REFUSED: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"trails": 3}, ("unknown key(s) trails in the study spec", "known keys: budget, command,", "workers")),
    ({"version": 2}, ("version 2 of the study spec is newer", "version 1 at most", "upgrade hpcx")),
    ({"version": "1"}, ("version '1' must be a whole number >= 1", "write version: 1")),
    ({"name": None}, ("the study spec needs name:", "e.g. name: lr-search")),
    ({"budget": None}, ("the study spec needs budget:", "trials: 64")),
    ({"name": "lr search"}, ("name 'lr search' is not a plain name", "letters, digits")),
    ({"name": 12}, ("name 12 is not a plain name",)),
    ({"kind": "a/b"}, ("kind 'a/b' is not a plain name",)),
    ({"command": []}, ("command [] needs a list of words or one string", "e.g. command: [python, train.py")),
    ({"command": ["t", True]}, ("command word True is not text", "quote the word")),
    ({"command": ["t", ["a"]]}, ("command word ['a'] is not one word",)),
    ({"command": "t 'x"}, ('command "t \'x" cannot be split into words: No closing quotation',)),
    (
        {"command": ["t", "{lr}", "--depth={depth}"]},
        ("'--depth={depth}' uses {depth}, which no parameter defines", "defined: {lr}, {seed}, {trial}"),
    ),
    ({"space": {}}, ("space has no parameters", "e.g. lr: {float:")),
    ({"space": [1]}, ("space is a mapping, found list [1]",)),
    (
        space(lr={"float": [0.0, 0.1], "log": True}),
        (
            "space.lr: a log range through zero: float [0.0, 0.1] with log: true needs low > 0",
            "raise low above 0",
        ),
    ),
    (
        space(lr={"float": [-1, 0.1], "log": True}),
        ("a log range through zero: float [-1.0, 0.1]", "e.g. [1.0e-5, 0.1], or drop log: true"),
    ),
    (space(lr={"float": [0.1, 0.01]}), ("space.lr: float [0.1, 0.01] needs low < high", "swap the bounds")),
    (space(lr={"float": [0.1, 0.1]}), ("float [0.1, 0.1] needs low < high",)),
    (space(lr={"float": ["a", 1]}), ("space.lr: float ['a', 1] needs [low, high], two numbers",)),
    (space(lr={"float": [0, math.inf]}), ("needs [low, high], two numbers",)),
    (space(lr={"float": [0, 1], "log": "yes"}), ("space.lr.log 'yes' is true or false", "e.g. log: true")),
    (
        space(lr={"float": [0, 1], "step": 0.1}),
        ("unknown key(s) step in space.lr", "known keys: float, log, when"),
    ),
    (
        space(n={"int": [1.5, 8]}),
        ("space.n: int [1.5, 8] needs [low, high], two whole numbers", "{int: [1, 8]}"),
    ),
    (space(n={"int": [8, 1]}), ("space.n: int [8, 1] needs low < high",)),
    (
        space(n={"int": [0, 8], "log": True}),
        ("a log range through zero: int [0, 8]", "needs low >= 1", "[1, 8]"),
    ),
    (space(n={"int": [1, 8], "step": 0}), ("space.n.step 0 must be a whole number from 1 to 7",)),
    (
        space(n={"int": [1, 8], "step": 8}),
        ("space.n.step 8 must be a whole number from 1 to 7", "leaves one value"),
    ),
    (space(n={"int": [1, 8], "step": 2, "log": True}), ("step 2 with log: true", "step 1 only", "drop step")),
    (space(o={"choice": []}), ("space.o: a space with no values: choice []", "give at least one value")),
    (space(o={"choice": "adam"}), ("space.o: choice 'adam' needs a list of values",)),
    (
        space(o={"choice": [[1], 2]}),
        ("choice [[1], 2] needs a list of values: text, numbers, true or false",),
    ),
    (space(o={"choice": ["a", None]}), ("needs a list of values", 'quote a YAML null as "null"')),
    (space(o={"choice": [1, True]}), ("space.o: choice [1, True] gives 1 and True, one value to Optuna",)),
    (space(o={"choice": ["a", "b", "a"]}), ("gives 'a' and 'a'", "give each value once")),
    (
        space(o={"float": [0, 1], "int": [1, 2]}),
        ("needs exactly one of float, int or choice, found float, int",),
    ),
    (space(o={"low": 1}), ("space.o {'low': 1} needs exactly one of float, int or choice, found none",)),
    (space(o=[0, 1]), ("space.o is a mapping, found list [0, 1]",)),
    (space(**{"bad-name": {"int": [1, 2]}}), ("parameter name 'bad-name' is not an identifier",)),
    (space(seed={"int": [1, 2]}), ("parameter name 'seed' is the trial's own {seed}", "not seed or trial")),
    (
        space(m={"float": [0, 1], "when": {"opt": "sgd"}}),
        ("space.m.when.opt: 'opt' is not in the space", "choice parameters: none"),
    ),
    (
        space(m={"float": [0, 1], "when": {"lr": 0.1}}, lr={"float": [0, 1]}, o={"choice": [1]}),
        (
            "space.m.when.lr: 'lr' is a float parameter; a condition names a choice parameter",
            "choice parameters: o",
        ),
    ),
    (
        space(m={"float": [0, 1], "when": {"o": "sgd"}}, o={"choice": ["adam", "sdg"]}),
        ("space.m.when.o: 'sgd' is not one of o's choices ['adam', 'sdg']", "add 'sgd' to its choices"),
    ),
    (
        space(a={"choice": [1, 2], "when": {"b": 1}}, b={"choice": [1, 2], "when": {"a": 1}}),
        ("the conditions form a cycle: a -> b -> a", "cannot depend on itself"),
    ),
    (space(a={"choice": [1, 2], "when": {"a": 1}}), ("space.a.when: the conditions form a cycle: a -> a",)),
    (space(m={"float": [0, 1], "when": {}}), ("space.m.when {} names no parent parameter",)),
    (space(m={"float": [0, 1], "when": {"o": []}}, o={"choice": [1]}), ("space.m.when.o [] needs a value",)),
    (
        {
            "command": ["t", "{m}"],
            "space": {"m": {"float": [0, 1], "when": {"o": 1}}, "o": {"choice": [1, 2]}},
        },
        ("uses {m}, but m is conditional", "read m in the program"),
    ),
    ({"objectives": []}, ("objectives [] needs one or more {metric, direction}",)),
    (
        {"objectives": {"metric": "loss", "direction": "min"}},
        ("objectives[0].direction 'min' is minimize or maximize",),
    ),
    ({"objectives": {"direction": "minimize"}}, ("objectives[0].metric None must name a logged metric",)),
    ({"objectives": [{"metric": "a"}, {"metric": "a"}]}, ("objectives[1].metric 'a' appears twice",)),
    (
        {"objectives": {"metric": "a", "goal": 1}},
        ("unknown key(s) goal in objectives[0]", "known keys: direction, metric"),
    ),
    (
        {"budget": {"trials": 0}},
        ("budget.trials 0 must be a whole number from 1 to 67108863", "e.g. trials: 64"),
    ),
    ({"budget": {"trials": True}}, ("budget.trials True must be a whole number",)),
    ({"budget": 8}, ("budget is a mapping, found int 8",)),
    (
        {"budget": {"trials": 8, "steps": 3}},
        ("unknown key(s) steps in budget", "known keys: resource, time, trials"),
    ),
    (
        {"budget": {"trials": 8, "resource": {"min": 0, "max": 10}}},
        ("budget.resource min 0 and max 10 must be whole numbers with 1 <= min <= max", "resource: {min: 10"),
    ),
    (
        {"budget": {"trials": 8, "resource": {"min": 5, "max": 4}}},
        ("budget.resource min 5 and max 4 must be",),
    ),
    ({"budget": {"trials": 8, "resource": {"min": 5, "top": 4}}}, ("unknown key(s) top in budget.resource",)),
    (
        {"budget": {"trials": 8, "time": "4h"}},
        ("budget.time '4h' is not a positive Slurm time", '"04:00:00"'),
    ),
    ({"budget": {"trials": 8, "time": "0"}}, ("budget.time '0' is not a positive Slurm time",)),
    ({"sampler": "cmaes"}, ("sampler 'cmaes' is not one hpcx offers", "random, grid, tpe, gp, nsga2")),
    (
        {"sampler": {"name": "random", "n_startup_trials": 5}},
        ("unknown key(s) n_startup_trials in sampler random", "known keys: name, seed"),
    ),
    (
        {"sampler": {"name": "tpe", "n_startup_trials": -1}},
        ("sampler.n_startup_trials -1 must be a whole number >= 0",),
    ),
    (
        {"sampler": {"name": "tpe", "n_ei_candidates": 0}},
        ("sampler.n_ei_candidates 0 must be a whole number >= 1",),
    ),
    (
        {"sampler": {"name": "nsga2", "population_size": 1}},
        (
            "sampler.population_size 1 must be a whole number >= 2",
            "e.g. sampler: {name: nsga2, population_size: 50}",
        ),
    ),
    (
        {"sampler": {"name": "nsga2", "crossover_prob": 1.5}},
        ("sampler.crossover_prob 1.5 must be a number from 0 to 1",),
    ),
    (
        {"sampler": {"name": "nsga2", "swapping_prob": "0.5"}},
        ("sampler.swapping_prob '0.5' must be a number",),
    ),
    (
        {"sampler": {"name": "gp", "deterministic_objective": 1}},
        ("sampler.deterministic_objective 1 must be true or false",),
    ),
    (
        {"sampler": {"name": "tpe", "group": True, "multivariate": False}},
        ("sampler.group true needs multivariate TPE", "set multivariate: true"),
    ),
    ({"sampler": "grid"}, ("sampler grid cannot enumerate float parameter(s) lr", "{choice: [...]}")),
    (
        {"sampler": {"name": "tpe", "seed": -1}},
        ("sampler.seed -1 must be a whole number from 0 to 4294967295",),
    ),
    ({"sampler": {"name": "tpe", "seed": 2**32}}, ("sampler.seed 4294967296 must be a whole number from 0",)),
    ({"sampler": ["tpe"]}, ("sampler is a mapping, found list",)),
    ({"stopping": "sha"}, ("stopping 'sha' is not a rule hpcx offers", "none, asha, hyperband, median")),
    (
        {"stopping": "asha", "budget": {"trials": 8}},
        ("stopping asha needs budget.resource", "resource: {min: 10, max: 810}}, or set stopping: none"),
    ),
    (
        {"stopping": "hyperband", "budget": {"trials": 8, "resource": {"min": 10, "max": 10}}},
        (
            "a budget below one rung: budget.resource min 10 and max 10",
            "raise max above min",
            "stopping: none",
        ),
    ),
    ({"stopping": {"rule": "asha", "eta": 1}}, ("stopping.eta 1 must be a whole number >= 2", "e.g. eta: 3")),
    ({"stopping": {"rule": "asha", "eta": 2.5}}, ("stopping.eta 2.5 must be a whole number >= 2",)),
    (
        {"stopping": {"rule": "asha", "rungs": [3, 3]}},
        (
            "stopping.rungs [3, 3] must be whole numbers, increasing, from budget.resource min 1 to below max 27",
        ),
    ),
    ({"stopping": {"rule": "asha", "rungs": [1, 27]}}, ("stopping.rungs [1, 27] must be", "leave rungs out")),
    ({"stopping": {"rule": "asha", "rungs": [0, 3]}}, ("stopping.rungs [0, 3] must be",)),
    ({"stopping": {"rule": "asha", "rungs": []}}, ("stopping.rungs [] must be",)),
    (
        {"stopping": {"rule": "hyperband", "rungs": [1]}},
        ("unknown key(s) rungs in stopping hyperband", "known keys: eta, rule"),
    ),
    ({"stopping": {"rule": "none", "eta": 3}}, ("unknown key(s) eta in stopping none", "known keys: rule")),
    (
        {"stopping": "hyperband", "objectives": [{"metric": "a"}, {"metric": "b"}]},
        ("stopping hyperband ranks one objective, but the study has 2", "use stopping: asha"),
    ),
    (
        {"stopping": "median", "objectives": [{"metric": "a"}, {"metric": "b"}]},
        ("stopping median ranks one objective",),
    ),
    (
        {"stopping": {"rule": "median", "warmup": 3}},
        ("stopping.warmup 3 must be a whole number from 0 to 2", "3 rung(s) [1, 3, 9]", "add rungs"),
    ),
    (
        {"workers": 0},
        ("workers 0 must be a whole number from 1 to budget.trials 8, or per-trial", "workers: 4"),
    ),
    ({"workers": 9}, ("workers 9 must be a whole number from 1 to budget.trials 8",)),
    ({"workers": "many"}, ("workers 'many' must be",)),
    ({"max_parallel": 0}, ("max_parallel 0 must be a whole number from 1 to 67108863",)),
    ({"seed": -1}, ("seed -1 must be a whole number from 0 to 4294967295", "e.g. seed: 7")),
    ({"seed": 1.5}, ("seed 1.5 must be a whole number",)),
    ({"resources": ["time"]}, ("resources is a mapping, found list",)),
    ({"resources": {"nodes": [1, 2]}}, ("resources.nodes [1, 2] must be one value",)),
    (
        {"resources": {"time": "01:00:00"}, "budget": {"trials": 8, "time": "02:00:00"}},
        (
            "resources.time '01:00:00' and budget.time '02:00:00' give a worker two wall times",
            "give the worker's",
        ),
    ),
    ({"variables": ["a"]}, ("variables is a mapping, found list",)),
]


@pytest.mark.parametrize("changes,texts", REFUSED, ids=lambda v: json.dumps(v) if isinstance(v, dict) else "")
def test_a_bad_input_is_refused_in_one_message_naming_value_and_fix(
    changes: dict[str, Any], texts: tuple[str]
) -> None:
    message = refusal(**changes)
    assert "\n" not in message
    for text in texts:
        assert text in message


def test_a_spec_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(StudyError, match="the study spec is a mapping, found list") as err:
        parse_study(["name"])
    assert err.value.exit_code == 2


def test_the_same_wall_time_in_two_spellings_is_one() -> None:
    spec = study(resources={"time": "240"}, budget={"trials": 8, "time": "04:00:00"})
    assert spec.budget.time == "04:00:00" and spec.resources == {"time": "240"}
    assert study(budget={"trials": 8, "time": "1-0"}).budget.time == "1-00:00:00"
