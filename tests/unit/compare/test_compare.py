"""`hpcx compare` over run directories written by the real writers: a sweep's task table and per-task
metrics, single runs with --set variables, profile records for report numbers; grouping, JSON, the written
report, errors."""

import json
import math
import xml.etree.ElementTree as ET

import pytest

from hpcx.compare import stats
from hpcx.fsutil import atomic_write, atomic_write_json
from hpcx.rundir.records import RecordWriter, rank_file
from hpcx.runs import create_run
from hpcx.runtime import metrics
from hpcx.submit.sweep_submit import task_table
from hpcx.submit.sweeps import expand, parse_spec

pytest.importorskip("numpy")

# Final losses per (lr, repeat): lr=0.1 is clearly better than lr=0.01.
LOSS = {0.01: [0.52, 0.55, 0.50], 0.1: [0.31, 0.35, 0.30]}


def _log(monkeypatch, run_dir, task, points):
    """Log ``points`` (step, loss) through hpcx.runtime.log as the job would, as rank 0 of task ``task``."""
    monkeypatch.setenv("HPCX_RUN_DIR", str(run_dir))
    if task is None:
        monkeypatch.delenv("HPCX_TASK_ID", raising=False)
    else:
        monkeypatch.setenv("HPCX_TASK_ID", str(task))
    metrics._records.close()  # a new process per task in a real job: the next record opens its own file
    for step, loss in points:
        metrics.log(step, total_steps=20, loss=loss, lr_now=0.1)  # a job that declares its length


def _sweep(runs_root, monkeypatch, losses=LOSS, log=True):
    spec = parse_spec(
        {
            "name": "scan",
            "command": ["python", "train.py", "--lr", "{lr}"],
            "parameters": {"grid": {"lr": list(losses)}, "repeats": 3},
        }
    )
    run = create_run(runs_root)
    tasks = expand(spec)
    atomic_write(run.dir / "tasks.jsonl", task_table(tasks))
    atomic_write_json(
        run.dir / "manifest.json", {"variables": {}, "resources": {"cpus_per_task": {"value": 1}}}
    )
    rep = dict.fromkeys(losses, 0)
    for task in tasks:
        final = losses[task.params["lr"]][rep[task.params["lr"]]]
        rep[task.params["lr"]] += 1
        if log:
            _log(monkeypatch, run.dir, task.id, [(0, 2.0), (10, final + 0.2), (20, final)])
    return run, tasks


def _single(runs_root, monkeypatch, variables, points):
    run = create_run(runs_root)
    atomic_write_json(run.dir / "manifest.json", {"variables": variables, "resources": {}})
    _log(monkeypatch, run.dir, None, points)
    return run


def test_sweep_tasks_group_by_parameters_with_seeds_as_replicates(hpcx, runs_root, monkeypatch):
    run, tasks = _sweep(runs_root, monkeypatch)
    doc = hpcx.json("compare", "--sweep", run.id, "--metric", "loss")
    assert doc["hpcx"] == 1 and doc["kind"] == "compare" and doc["schema"] == "hpcx.compare/1"
    # Pinned keys (docs/compare.md; scripts rely on them).
    assert set(doc) == {
        "hpcx",
        "kind",
        "schema",
        "metric",
        "settings",
        "runs",
        "groups",
        "comparisons",
        "left_out",
        "notes",
    }
    assert set(doc["groups"][0]) == {
        "name",
        "params",
        "left_out",
        "n",
        "mean",
        "std",
        "median",
        "iqm",
        "min",
        "max",
        "ci",
        "replicates",
    }
    assert set(doc["comparisons"][0]) == {
        "a",
        "b",
        "difference",
        "ci",
        "welch",
        "mann_whitney",
        "p_adjusted",
        "cohens_d",
        "cliffs_delta",
        "seeds_needed",
    }
    assert doc["metric"] == {"name": "loss", "source": "logged", "reduce": "last", "unit": None}
    assert [g["name"] for g in doc["groups"]] == ["lr=0.01", "lr=0.1"] and doc["runs"] == [run.id]
    low = doc["groups"][0]
    assert low["n"] == 3 and low["mean"] == pytest.approx(stats.mean(LOSS[0.01]))
    assert (
        low["std"] == pytest.approx(stats.std(LOSS[0.01]))
        and low["ci"]["low"] <= low["mean"] <= low["ci"]["high"]
    )
    assert [(r["task"], r["seed"], r["value"]) for r in low["replicates"]] == [
        (t.id, t.seed, v) for t, v in zip([t for t in tasks if t.params["lr"] == 0.01], LOSS[0.01])
    ]
    (row,) = doc["comparisons"]
    assert (row["a"], row["b"]) == ("lr=0.01", "lr=0.1")
    assert row["difference"] == pytest.approx(stats.mean(LOSS[0.01]) - stats.mean(LOSS[0.1]))
    assert row["welch"]["p"] == pytest.approx(stats.welch(LOSS[0.01], LOSS[0.1]).pvalue)
    assert row["mann_whitney"] == {
        "u": 9.0,
        "p": pytest.approx(0.1),
        "method": "exact",
        "p_adjusted": pytest.approx(0.1),
    }
    assert row["cliffs_delta"] == 1.0 and row["p_adjusted"] == row["welch"]["p"]  # one comparison
    assert row["seeds_needed"]["n"] == 2 and row["ci"]["low"] > 0

    text = hpcx("compare", run.id, "--metric", "loss").stdout  # a sweep given as RUN means its tasks too
    assert "lr=0.01" in text and "WELCH P" in text and "SEEDS" in text
    # 3 seeds a group: the default interval is t (bootstrap would cover ~80%), and nothing warns about it ...
    assert "95% t intervals" in text and "too narrow" not in text
    # ... while an explicit bootstrap with so few replicates says why it is too narrow.
    forced = hpcx("compare", "--sweep", run.id, "--metric", "loss", "--ci", "percentile").stdout
    assert "95% percentile intervals" in forced and "too narrow" in forced


def test_reductions_and_a_resumed_step(hpcx, runs_root, monkeypatch):
    points = [(0, 3.0), (1, 1.0), (2, 2.0), (1, 0.5), (2, 1.5)]  # resumed from step 0: steps 1, 2 again
    runs = [
        _single(runs_root, monkeypatch, {"seed": str(s)}, [(k, v + s) for k, v in points]) for s in range(3)
    ]
    ids = [r.id for r in runs]
    for how, want in (("last", 1.5), ("min", 0.5), ("max", 3.0), ("mean", (3.0 + 0.5 + 1.5) / 3)):
        group = hpcx.json("compare", *ids, "--metric", "loss", "--reduce", how)["groups"][0]
        assert group["name"] == "all"
        assert [r["value"] for r in group["replicates"]] == pytest.approx([want, want + 1, want + 2])


def test_single_runs_group_by_their_variables_against_a_baseline(hpcx, runs_root, monkeypatch):
    values = {"sgd": [1.0, 1.2, 1.1, 0.9], "adam": [0.8, 0.85, 0.7, 0.75], "lion": [1.05, 0.95, 1.1, 1.0]}
    ids = [
        _single(runs_root, monkeypatch, {"opt": opt, "seed": str(i), "data": "/d"}, [(5, v)]).id
        for opt, vs in values.items()
        for i, v in enumerate(vs)
    ]
    doc = hpcx.json("compare", *ids, "--metric", "metric.loss", "--baseline", "opt=sgd", "--by", "opt")
    assert [g["name"] for g in doc["groups"]] == ["opt=sgd", "opt=adam", "opt=lion"]
    assert doc["settings"]["baseline"] == "opt=sgd" and doc["settings"]["by"] == ["opt"]
    assert [(c["a"], c["b"]) for c in doc["comparisons"]] == [
        ("opt=adam", "opt=sgd"),
        ("opt=lion", "opt=sgd"),
    ]
    raw = [c["welch"]["p"] for c in doc["comparisons"]]
    assert [c["p_adjusted"] for c in doc["comparisons"]] == pytest.approx(stats.holm(raw))
    assert doc["groups"][0]["replicates"][0] == {
        "run_id": ids[0],
        "task": None,
        "seed": "0",
        "value": 1.0,
        "source": {"file": "metrics/rank-00000.jsonl", "field": "loss", "how": "last of 1 logged step(s)"},
    }
    adjusted = stats.holm([c["mann_whitney"]["p"] for c in doc["comparisons"]])
    assert [c["mann_whitney"]["p_adjusted"] for c in doc["comparisons"]] == pytest.approx(adjusted)
    bh = hpcx.json("compare", *ids, "--metric", "loss", "--correction", "bh", "--detect", "0.5")
    assert [c["p_adjusted"] for c in bh["comparisons"]] == pytest.approx(
        stats.benjamini_hochberg([c["welch"]["p"] for c in bh["comparisons"]])
    )
    assert len(bh["comparisons"]) == 3 and {c["seeds_needed"]["difference"] for c in bh["comparisons"]} == {
        0.5
    }


def test_report_numbers_of_sweep_tasks(hpcx, runs_root, monkeypatch):
    run, tasks = _sweep(runs_root, monkeypatch, log=False)
    for task in tasks:
        wall = 10.0 + task.params["lr"] * 100 + task.id % 3
        writer = RecordWriter(rank_file(run.dir / "profile" / f"task-{task.id:05d}", 0))
        writer.write({"type": "start", "t": 1000.0, "rank": 0, "node": "n1", "attempt": 0, "cpus_allowed": 1})
        writer.write(
            {
                "type": "end",
                "t": 1000.0 + wall,
                "rank": 0,
                "exit_code": 0,
                "wall_s": wall,
                "cpu_s": wall / 2,
                "peak_rss_mb": 100.0 + task.id,
            }
        )
        writer.close()
    doc = hpcx.json("compare", "--sweep", run.id, "--metric", "wall_s", "--ci", "t")
    assert doc["metric"] == {"name": "wall_s", "source": "report", "reduce": None, "unit": "s"}
    assert [r["value"] for r in doc["groups"][1]["replicates"]] == [20.0, 21.0, 22.0]
    assert [r["source"]["file"] for r in doc["groups"][1]["replicates"]] == [
        f"profile/task-{t.id:05d}/" for t in tasks if t.params["lr"] == 0.1
    ]
    eff = hpcx.json("compare", "--sweep", run.id, "--metric", "report.cpu_efficiency")
    assert {r["value"] for g in eff["groups"] for r in g["replicates"]} == {0.5}
    energy = hpcx("compare", "--sweep", run.id, "--metric", "energy_j", check=False)
    assert energy.returncode == 2 and "its report has no energy_j" in energy.stderr


def test_out_writes_markdown_json_and_plots(hpcx, runs_root, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    run, _ = _sweep(
        runs_root, monkeypatch, losses={0.01: [0.5, 0.55, 0.52], 0.1: [0.3, 0.33, 0.31], 1.0: [0.9, 1.3, 1.1]}
    )
    out = tmp_path / "cmp"
    doc = hpcx.json(
        "compare", "--sweep", run.id, "--metric", "loss", "--stat", "iqm", "--ci", "bca", "--out", str(out)
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "compare.html",
        "compare.json",
        "compare.md",
        "curves.pdf",
        "curves.svg",
        "differences.pdf",
        "differences.svg",
        "groups.pdf",
        "groups.svg",
    ]
    assert json.loads((out / "compare.json").read_text())["groups"] == doc["groups"]
    md = (out / "compare.md").read_text()
    assert "| lr=0.01 | lr=0.1 |" in md and "![groups.svg](groups.svg)" in md
    assert f"| lr=0.01 | {run.id} | 0 |" in md and "metrics/task-00000/rank-00000.jsonl" in md
    assert len(doc["comparisons"]) == 3 and doc["settings"]["ci"]["method"] == "bca"
    svg = ET.parse(out / "groups.svg").getroot()
    assert svg.tag.endswith("svg") and (out / "groups.pdf").read_bytes().startswith(b"%PDF")
    first = (out / "differences.svg").read_bytes()
    hpcx("compare", "--sweep", run.id, "--metric", "loss", "--stat", "iqm", "--ci", "bca", "--out", str(out))
    assert (out / "differences.svg").read_bytes() == first  # same comparison, same bytes


def _error(hpcx, *args):
    proc = hpcx("compare", *args, check=False)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc
    return proc.stderr


def test_errors_name_the_value_and_the_fix(hpcx, runs_root, monkeypatch):
    run, tasks = _sweep(runs_root, monkeypatch)
    (run.dir / "metrics" / "task-00004" / "rank-00000.jsonl").unlink()
    assert "no run 'nope'" in _error(hpcx, "nope", "--metric", "loss")
    err = _error(hpcx, "--sweep", run.id, "--metric", "loss")
    assert f"not found in 1 of 6 replicates: {run.id}/task-4 (no metrics logged by rank 0)" in err
    assert "--skip-missing" in err
    assert "rank 0 logged loss, lr_now)" in _error(
        hpcx, "--sweep", run.id, "--metric", "acc"
    )  # not total_steps
    kept = hpcx.json("compare", "--sweep", run.id, "--metric", "loss", "--skip-missing")
    assert [g["n"] for g in kept["groups"]] == [3, 2] and "task-4" in kept["notes"][0]
    single = _single(runs_root, monkeypatch, {"seed": "1"}, [(1, 0.4)])
    assert "not a sweep" in _error(hpcx, "--sweep", single.id, "--metric", "loss")
    assert "fewer than 2 replicates: all (n=1)" in _error(hpcx, single.id, "--metric", "loss")
    assert "--baseline 'lr=5' matches no group" in _error(
        hpcx, run.id, "--metric", "loss", "--skip-missing", "--baseline", "lr=5"
    )
    assert "--by model: no run has such a parameter" in _error(
        hpcx, run.id, "--metric", "loss", "--by", "model"
    )
    assert "compare needs runs" in _error(hpcx, "--metric", "loss")
    assert "--ci t is an interval for the mean" in _error(
        hpcx, run.id, "--metric", "loss", "--skip-missing", "--ci", "t", "--stat", "median"
    )


def test_nan_and_constant_groups_give_json_nulls(hpcx, runs_root, monkeypatch):
    run, _ = _sweep(runs_root, monkeypatch, losses={0.01: [0.5, 0.5, 0.5], 0.1: [0.5, 0.5, 0.5]})
    doc = hpcx.json("compare", run.id, "--metric", "loss")
    (row,) = doc["comparisons"]
    assert row["welch"]["p"] is None and row["cohens_d"] is None and row["seeds_needed"]["n"] is None
    assert row["mann_whitney"]["p"] == 1.0 and not math.isnan(doc["groups"][0]["ci"]["low"])


def test_help_lists_compare(hpcx):
    assert "compare" in hpcx("--help").stdout
    assert "--baseline" in hpcx("compare", "--help").stdout


def test_report_numbers_of_single_runs_name_their_source(hpcx, runs_root):
    """A run with report/report.json is read from it; one without has its report built from the profile."""
    ids = []
    for seed, wall in enumerate([30.0, 32.0]):
        run = create_run(runs_root)
        atomic_write_json(run.dir / "manifest.json", {"variables": {"seed": str(seed)}, "resources": {}})
        atomic_write_json(run.dir / "report" / "report.json", {"summary": {"wall_s": wall}, "nodes": []})
        ids.append(run.id)
    run = create_run(runs_root)
    atomic_write_json(run.dir / "manifest.json", {"variables": {"seed": "2"}, "resources": {}})
    writer = RecordWriter(rank_file(run.dir / "profile", 0))
    writer.write({"type": "start", "t": 1000.0, "rank": 0, "node": "n1", "attempt": 0, "cpus_allowed": 1})
    writer.write(
        {
            "type": "end",
            "t": 1031.0,
            "rank": 0,
            "exit_code": 0,
            "wall_s": 31.0,
            "cpu_s": 20.0,
            "peak_rss_mb": 100.0,
        }
    )
    writer.close()
    ids.append(run.id)
    (group,) = hpcx.json("compare", *ids, "--metric", "wall_s")["groups"]
    assert [(r["run_id"], r["value"]) for r in group["replicates"]] == list(zip(ids, [30.0, 32.0, 31.0]))
    assert [r["source"] for r in group["replicates"]] == [
        {"file": "report/report.json", "field": "summary.wall_s", "how": "as written by hpcx report"}
    ] * 2 + [
        {
            "file": "profile/",
            "field": "summary.wall_s",
            "how": "report built from the profile records (no report/report.json)",
        }
    ]
    assert not (run.dir / "report" / "report.json").exists()  # built, not written
