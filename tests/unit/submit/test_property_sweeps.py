"""Sweep expansion, for every spec Hypothesis can make: the task count is grid product x zip length x draws x
repeats minus what the exclude rules drop; task ids are 0 .. n-1; and the job arrays a sweep is submitted as
cover every task exactly once, for any MaxArraySize and throttle (read back with Slurm's --array syntax)."""

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from hpcx.spec import parse_array
from hpcx.submit.sweeps import SweepSpec, chunks, expand, parse_spec

NAMES = st.sampled_from(["a", "b", "c", "lr", "bs", "model", "depth"])
VALUE = st.one_of(st.integers(-50, 50), st.sampled_from(["x", "y", "small", "large"]))


@st.composite
def sweep_docs(draw):
    """A sweep document with a grid, a zip, random draws and repeats (each maybe absent), and exclude rules that
    each name values the sweep takes."""
    names = draw(st.lists(NAMES, unique=True, min_size=0, max_size=5))
    n_grid = draw(st.integers(0, len(names)))
    grid_names, rest = names[:n_grid], names[n_grid:]
    n_zip = draw(st.integers(0, len(rest)))
    zip_names, random_names = rest[:n_zip], rest[n_zip:]
    grid = {n: draw(st.lists(VALUE, unique=True, min_size=1, max_size=4)) for n in grid_names}
    zip_len = draw(st.integers(1, 4))
    zipped = {n: draw(st.lists(VALUE, unique=True, min_size=zip_len, max_size=zip_len)) for n in zip_names}
    params = {}
    if grid:
        params["grid"] = grid
    if zipped:
        params["zip"] = zipped
    if random_names:
        dists = [{"uniform": [0, 1]}, {"randint": [1, 9]}, {"choice": ["p", "q"]}, {"loguniform": [0.001, 1]}]
        params["random"] = {
            "seed": draw(st.integers(0, 99)),
            "draws": draw(st.integers(1, 4)),
            "params": {n: draw(st.sampled_from(dists)) for n in random_names},
        }
    repeats = draw(st.integers(1, 3))
    if repeats > 1 or draw(st.booleans()):
        params["repeats"] = repeats
    swept = {**grid, **zipped}
    rules = []
    for _ in range(draw(st.integers(0, 3)) if swept else 0):
        keys = draw(st.lists(st.sampled_from(sorted(swept)), unique=True, min_size=1, max_size=2))
        if set(keys) <= set(zipped):  # two zip keys: take them from one row, so the rule matches a task
            row = draw(st.integers(0, zip_len - 1))
            rules.append({k: zipped[k][row] for k in keys})
        else:
            rules.append({k: draw(st.sampled_from(swept[k])) for k in keys})
    doc = {
        "name": "p",
        "command": ["t", *(f"{{{n}}}" for n in names)],
        "parameters": params,
        "seed": draw(st.integers(-5, 5)),
    }
    if rules:
        doc["exclude"] = rules
    return doc


def swept_rows(doc):
    """The grid x zip rows of a document, the plain way: each row a dict of the swept values."""
    params = doc["parameters"]
    grid, zipped = params.get("grid", {}), params.get("zip", {})
    grid_rows = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    zip_rows = [dict(zip(zipped, row)) for row in zip(*zipped.values())] or [{}]
    return [{**g, **z} for g in grid_rows for z in zip_rows]


def excluded(row, rules):
    return any(all(row[k] == v for k, v in rule.items()) for rule in rules)


def rules_match(doc) -> bool:
    """Every rule matches some row (a rule over a grid and a zip key can name a pair no row has)."""
    rows = swept_rows(doc)
    return all(any(excluded(r, [rule]) for r in rows) for rule in doc.get("exclude", []))


@settings(max_examples=150, deadline=None)
@given(sweep_docs())
def test_the_task_count_is_the_product_minus_the_excluded_and_ids_are_dense(doc):
    if not rules_match(doc):
        return  # refused with "matches no task" (tests/unit/submit/test_sweeps_rules.py)
    params = doc["parameters"]
    rows = swept_rows(doc)
    kept = [r for r in rows if not excluded(r, doc.get("exclude", []))]
    draws = params["random"]["draws"] if "random" in params else 1
    repeats = params.get("repeats", 1)
    if not kept:
        return  # refused with "no tasks left after the exclude rules"
    product = math.prod(len(v) for v in params.get("grid", {}).values())
    zip_len = len(next(iter(params["zip"].values()))) if "zip" in params else 1
    assert len(rows) == product * zip_len
    tasks = expand(parse_spec(doc))
    assert len(tasks) == (len(rows) - (len(rows) - len(kept))) * draws * repeats
    assert [t.id for t in tasks] == list(range(len(tasks)))
    assert not any(excluded(t.params, doc.get("exclude", [])) for t in tasks)
    swept = [k for k in (*params.get("grid", {}), *params.get("zip", {}))]
    seen = [{k: t.params[k] for k in swept} for t in tasks]
    assert all(seen.count(r) == draws * repeats for r in kept)  # every kept row runs draws x repeats times
    if "random" not in params:  # (two draws may give the same values, and then the same name and seed)
        assert len({t.name for t in tasks}) == len(tasks)  # a name tells tasks apart
        assert len({t.seed for t in tasks}) == len(tasks)


@settings(max_examples=300, deadline=None)
@given(
    n_tasks=st.integers(1, 5000),
    max_array=st.integers(1, 1200),
    throttle=st.one_of(st.none(), st.integers(1, 64)),
)
def test_the_arrays_cover_every_task_exactly_once(n_tasks, max_array, throttle):
    parts = chunks(n_tasks, max_array)
    covered = []
    for part in parts:
        array = parse_array(part.array_spec(throttle))
        assert array.throttle == throttle
        assert array.indices == tuple(range(part.count))  # indices 0 .. count-1, below MaxArraySize
        assert 1 <= part.count <= max_array
        covered += [part.offset + i for i in array.indices]
    assert covered == list(range(n_tasks))
    assert len(parts) == math.ceil(n_tasks / max_array)


@settings(max_examples=60, deadline=None)
@given(sweep_docs(), st.integers(1, 7), st.one_of(st.none(), st.integers(1, 5)))
def test_a_sweeps_tasks_split_into_arrays_lose_none(doc, max_array, throttle):
    if not rules_match(doc) or not any(not excluded(r, doc.get("exclude", [])) for r in swept_rows(doc)):
        return
    spec: SweepSpec = parse_spec(doc)
    tasks = expand(spec)
    ran = [
        tasks[part.offset + i].id
        for part in chunks(len(tasks), max_array)
        for i in parse_array(part.array_spec(throttle)).indices
    ]
    assert ran == [t.id for t in tasks]
