"""Two job steps on one node (two concurrent sruns in an allocation): each step's collector writes its own node
file, and the merge counts the node's energy once. Real ``python -m hpcx.run`` processes with the step ids
Slurm gives them, against a fake powercap counter that a thread of the test drives at a known rate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hpcx.reports.ranks import summarize_ranks
from hpcx.reports.sections import summarize_nodes
from hpcx.rundir.records import (
    COMBINE_RULE,
    energy_windows,
    node_series,
    read_nodes,
    read_records,
)

RATE_W = 100.0  # the fake package's power: the counter moves 100 J per second of wall time


class _Counter(threading.Thread):
    """Writes the fake zone's energy_uj every 10 ms as RATE_W times the wall time since it started."""

    def __init__(self, zone: Path) -> None:
        super().__init__(daemon=True)
        self.zone, self.t0, self.stop = zone, time.time(), threading.Event()
        self.put()

    def put(self) -> None:
        tmp = self.zone / "energy_uj.tmp"
        tmp.write_text(f"{int((time.time() - self.t0) * RATE_W * 1e6)}\n")
        os.replace(tmp, self.zone / "energy_uj")

    def run(self) -> None:
        while not self.stop.wait(0.01):
            self.put()


def _fake_powercap(root: Path) -> Path:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{10**15}\n")
    return zone


def _step(profile: Path, powercap: Path, step: str, seconds: float) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "SLURM_", "HPCX_"))}
    env.update(SLURM_STEP_ID=step, HPCX_POWERCAP_ROOT=str(powercap))
    argv = [
        sys.executable,
        "-m",
        "hpcx.run",
        "--interval",
        "0.1",
        "--edge-interval",
        "0.3",
        "--profile-dir",
        str(profile),
        "--",
        sys.executable,
        "-c",
        f"import time; time.sleep({seconds})",
    ]
    return subprocess.Popen(argv, env=env)


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory):
    """Step 0 runs 2.5 s; step 1 starts about 1.2 s later on the same node and runs 2.5 s."""
    root = tmp_path_factory.mktemp("steps")
    counter = _Counter(_fake_powercap(root / "powercap"))
    counter.start()
    try:
        first = _step(root / "profile", root / "powercap", "0", 2.5)
        time.sleep(1.2)
        second = _step(root / "profile", root / "powercap", "1", 2.5)
        assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0
    finally:
        counter.stop.set()
        counter.join(timeout=10)
    return root / "profile"


def test_each_step_writes_its_own_node_file(two_steps):
    files = sorted(p.name for p in two_steps.glob("node-*.jsonl"))
    assert len(files) == 2 and files[0].endswith(".step-0.jsonl") and files[1].endswith(".step-1.jsonl")
    starts = [next(read_records(two_steps / f)) for f in files]
    assert [s["step"] for s in starts] == ["0", "1"] and starts[0]["node"] == starts[1]["node"]
    assert all(s["edge_s"] == 0.3 for s in starts)
    # every line of a file is one step's: the two collectors never interleave in one file
    for f in files:
        assert all(json.loads(line)["type"] for line in (two_steps / f).read_text().splitlines())


def test_the_merge_counts_the_overlap_once(two_steps):
    steps = sorted(
        (node_series(read_records(p)) for p in two_steps.glob("node-*.jsonl")), key=lambda n: n["start"]["t"]
    )
    a, b = (s["energy"]["cpu_package"] for s in steps)
    assert a["status"] == b["status"] == "measured" and a["method"] == b["method"] == "counter"

    (node,) = read_nodes(two_steps).values()
    merged = node["energy"]["cpu_package"]
    # By hand from the records: all of step 0's windows, then of step 1's only what lies after step 0's last
    # edge, a straddling window prorated by time. Two edges in the same millisecond (records keep t to 1 ms; the
    # closing edge can follow the last one at once) span no time and count nothing, as in energy_windows.
    edges = [[(s["t"], s["rapl"]["package_j"]) for s in step["samples"] if "rapl" in s] for step in steps]
    a_end = edges[0][-1][0]
    later = sum(
        (eb - ea) * (tb - max(ta, a_end)) / (tb - ta)
        for (ta, ea), (tb, eb) in zip(edges[1], edges[1][1:])
        if tb > a_end and tb > ta
    )
    assert merged["energy_j"] == pytest.approx(a["energy_j"] + later, abs=0.01)
    assert merged["window_s"] == pytest.approx(edges[1][-1][0] - edges[0][0][0], abs=0.01)
    assert merged["energy_j"] < a["energy_j"] + b["energy_j"] - 0.5 * RATE_W  # about 1.3 s counted once
    # the counter moved RATE_W joules a second: the merged figure is that power over the merged window
    assert merged["energy_j"] / merged["window_s"] == pytest.approx(RATE_W, rel=0.1)
    assert (merged["method"], merged["steps"], merged["rule"]) == ("derived", 2, COMBINE_RULE)
    assert 0.8 < merged["coverage"] <= 1
    wins = node["windows"]["cpu_package"]
    assert all(w0[1] <= w1[0] + 1e-9 for w0, w1 in zip(wins, wins[1:]))  # disjoint
    assert [s["start"]["step"] for s in node["steps"]] == ["0", "1"]
    assert node["series"]["t"] == sorted(node["series"]["t"])

    (row,) = summarize_nodes(two_steps)
    assert row["energy"]["cpu_package"] == {k: merged[k] for k in row["energy"]["cpu_package"]}
    assert set(read_nodes(two_steps)) == {row["node"]}


def test_windows_rule_on_hand_made_series():
    """The rule on numbers a person can check: the first step's windows whole, the second's outside them."""
    first = [(0.0, 0.0), (10.0, 100.0), (20.0, 200.0)]
    second = [(15.0, 0.0), (25.0, 50.0), (30.0, 80.0)]
    wins, prorated = energy_windows([first, second])
    assert prorated and wins == [
        (0.0, 10.0, 100.0),
        (10.0, 20.0, 100.0),
        (20.0, 25.0, 25.0),
        (25.0, 30.0, 30.0),
    ]
    assert energy_windows([first]) == ([(0.0, 10.0, 100.0), (10.0, 20.0, 100.0)], False)
    inside = [(12.0, 0.0), (18.0, 9.0)]  # wholly inside the first step's time: adds nothing
    assert energy_windows([first, inside]) == ([(0.0, 10.0, 100.0), (10.0, 20.0, 100.0)], False)


def test_each_step_writes_its_own_rank_file_and_the_rank_is_both(two_steps):
    """Both steps are rank 0 of their own srun: two rank files, one rank whose time counts the overlap once."""
    assert sorted(p.name for p in two_steps.glob("rank-*.jsonl")) == [
        "rank-00000.step-0.jsonl",
        "rank-00000.step-1.jsonl",
    ]
    (combined,) = summarize_ranks(two_steps)
    assert combined["rank"] == 0 and [s["step"] for s in combined["steps"]] == ["0", "1"]
    first, second = combined["steps"]
    assert combined["wall_s"] == pytest.approx(second["start_t"] + second["wall_s"] - first["start_t"])
    overlap = first["start_t"] + first["wall_s"] - second["start_t"]  # about 1.3 s, from the records
    assert overlap > 0 and combined["wall_s"] == pytest.approx(first["wall_s"] + second["wall_s"] - overlap)
