"""`hpcx compare` counts only the tasks that completed: a sweep whose lr=0.1 tasks failed after logging a
loss compares the others, and says per group how many were left out and why; --include-failed keeps them.
The tasks' states come from their own profile records here (no Slurm); tests/slurm/test_readme_sweep.py
has Slurm's."""

from __future__ import annotations

from hpcx.rundir.records import RecordWriter, rank_file
from tests.unit.compare.test_compare import _sweep

LOSS = {0.01: [0.52, 0.55, 0.50], 0.1: [0.31, 0.35, 0.30], 1.0: [9.1, 9.5, 9.3]}


def _ranks(run, tasks, failing_lr):
    """Each task's rank 0 record as hpcx.run writes it: exit 1 for the failing rate's tasks."""
    for task in tasks:
        w = RecordWriter(rank_file(run.dir / "profile" / f"task-{task.id:05d}", 0))
        w.write({"type": "start", "t": 1000.0, "rank": 0, "node": "n1", "attempt": 0})
        code = 1 if task.params["lr"] == failing_lr else 0
        w.write(
            {
                "type": "end",
                "t": 1002.0,
                "rank": 0,
                "exit_code": code,
                "wall_s": 2.0,
                "cpu_s": 1.0,
                "peak_rss_mb": 10.0,
            }
        )
        w.close()


def test_failed_tasks_are_left_out_and_counted(hpcx, runs_root, monkeypatch):
    run, tasks = _sweep(runs_root, monkeypatch, losses=LOSS)
    _ranks(run, tasks, failing_lr=1.0)
    doc = hpcx.json("compare", "--sweep", run.id, "--metric", "loss")
    assert [(g["name"], g["n"], g["left_out"]) for g in doc["groups"]] == [
        ("lr=0.01", 3, 0),
        ("lr=0.1", 3, 0),
    ]
    assert sorted((r["group"], r["task"], r["state"]) for r in doc["left_out"]) == [
        ("lr=1", t.id, "FAILED") for t in tasks if t.params["lr"] == 1.0
    ]
    text = hpcx("compare", "--sweep", run.id, "--metric", "loss").stdout
    assert text.splitlines()[0].startswith(
        f"loss (rank 0's last value): 6 replicates in 2 groups (tasks of sweep run {run.id}; 3 not completed, left out)"
    )
    assert (
        "note: lr=1: 3 replicates left out (3 FAILED; only completed tasks and runs count, --include-failed "
        "keeps them)"
    ) in text
    kept = hpcx.json("compare", "--sweep", run.id, "--metric", "loss", "--include-failed")
    assert [(g["name"], g["n"]) for g in kept["groups"]] == [("lr=0.01", 3), ("lr=0.1", 3), ("lr=1", 3)]
    assert kept["left_out"] == [] and not any("left out" in n for n in kept["notes"])


def test_a_group_with_some_failed_tasks_keeps_the_rest(hpcx, runs_root, monkeypatch):
    run, tasks = _sweep(runs_root, monkeypatch, losses=LOSS)
    _ranks(run, tasks[:1], failing_lr=tasks[0].params["lr"])  # one task failed; the rest have no records
    doc = hpcx.json("compare", "--sweep", run.id, "--metric", "loss")
    first = doc["groups"][0]
    assert (first["n"], first["left_out"]) == (2, 1) and [g["n"] for g in doc["groups"][1:]] == [3, 3]


def test_headline_of_single_runs(hpcx, runs_root, monkeypatch):
    from tests.unit.compare.test_compare import _single

    for lr, seed, loss in ((0.1, 1, 0.3), (0.1, 2, 0.31), (0.2, 1, 0.5), (0.2, 2, 0.52)):
        _single(runs_root, monkeypatch, {"lr": lr, "seed": seed}, [(1, loss)])
    ids = [p.name for p in sorted(runs_root.iterdir()) if (p / "manifest.json").exists()]
    text = hpcx("compare", *ids, "--metric", "loss").stdout
    assert text.splitlines()[0].startswith("loss (rank 0's last value): 4 replicates in 2 groups (4 runs);")
