"""`hpcx compare` on a real sweep: 2 configurations x 3 seeds on the test cluster, each task logging its loss
through hpcx.runtime.log, compared by `hpcx compare --sweep RUN --metric loss`."""

import json
import time

import pytest

from hpcx.compare import stats

pytestmark = pytest.mark.slurm

# The loss depends on lr and, a little, on the task's seed: lr=0.1 is lower by about 0.9.
LOG = (
    "import os, hpcx.runtime as r; s = int(os.environ['HPCX_SEED']); "
    "r.log(0, loss=2.0); r.log(1, loss={lr} + s % 97 / 1000)"
)
SPEC = f"""
name: cmp
kind: serial
resources: {{time: "00:02:00"}}
command: [python, -c, "{LOG}"]
parameters:
  grid: {{lr: [1.0, 0.1]}}
  repeats: 3
"""


def test_compare_a_sweeps_seeds(slurm_hpcx, runs_root, tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SPEC)
    doc = slurm_hpcx.json("sweep", str(spec))
    assert doc["tasks"] == 6
    deadline = time.monotonic() + 180
    while not (row := slurm_hpcx.json("status", doc["run_id"])["runs"][0])["finished"]:
        assert time.monotonic() < deadline, f"sweep not finished: {row}"
        time.sleep(1)
    assert row["tasks"] == {"COMPLETED": 6}, row

    cmp = slurm_hpcx.json("compare", "--sweep", doc["run_id"], "--metric", "loss", "--baseline", "lr=1")
    tasks = [
        json.loads(line) for line in (runs_root / doc["run_id"] / "tasks.jsonl").read_text().splitlines()
    ]
    assert [g["name"] for g in cmp["groups"]] == ["lr=1", "lr=0.1"] and [g["n"] for g in cmp["groups"]] == [
        3,
        3,
    ]
    for group, lr in zip(cmp["groups"], (1.0, 0.1)):
        want = [(t["task"], t["seed"], lr + t["seed"] % 97 / 1000) for t in tasks if t["params"]["lr"] == lr]
        got = [(r["task"], r["seed"], r["value"]) for r in group["replicates"]]
        assert got == [(t, s, pytest.approx(v)) for t, s, v in want]
    (row,) = cmp["comparisons"]
    assert (row["a"], row["b"]) == ("lr=0.1", "lr=1") and row["difference"] == pytest.approx(-0.9, abs=0.1)
    values = [[r["value"] for r in g["replicates"]] for g in cmp["groups"]]
    assert (
        row["welch"]["p"] == pytest.approx(stats.welch(values[1], values[0]).pvalue)
        and row["welch"]["p"] < 0.01
    )
    text = slurm_hpcx("compare", "--sweep", doc["run_id"], "--metric", "loss").stdout
    assert "lr=0.1" in text and "WELCH P" in text
