"""Energy spent in communication, under real mpirun: two ranks wrapped by ``python -m hpcx.run`` with comm
tracing on, a fake powercap counter driven by the test at a known power, and a program that alternates
computing, traced MPI calls and sleeping. The attributed energy is checked against a hand computation from
the records (edge windows x the ranks' share of time in calls, interpolated at the edges)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hpcx.records import read_records
from hpcx.reports.comm import ENERGY_RULE, comm_energy, summarize_comm
from tests.mpi.mpirun import mpirun
from tests.unit.test_node_steps import RATE_W, _Counter, _fake_powercap

pytest.importorskip("mpi4py")
pytestmark = pytest.mark.mpi

FLUSH_S = 0.2
PROGRAM = """
    import time
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    go = np.zeros(1, dtype="i")

    def communicate(seconds):
        # Allreduce until both ranks' clocks say stop (the MIN keeps the call counts matched)
        end = time.monotonic() + seconds
        while True:
            go[0] = time.monotonic() < end
            comm.Allreduce(MPI.IN_PLACE, go, op=MPI.MIN)
            if not go[0]:
                return

    comm.Barrier()
    end = time.monotonic() + 1.0
    while time.monotonic() < end:                  # computing: no calls
        sum(range(2000))
    communicate(1.2)
    time.sleep(0.8)                                # idle: no calls, no records
    communicate(0.6)
    comm.Barrier()
"""


def _hand_curve(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One process's cumulative seconds in calls from its records, rising at most 1 s per second."""
    records = [r for r in read_records(path) if r["type"] == "comm"]
    t = [records[0]["t"] - records[0]["wall_s"]] + [r["t"] for r in records]
    s = [0.0] + [r["seconds"] for r in records]
    for i in range(len(s) - 2, -1, -1):
        s[i] = max(s[i], s[i + 1] - (t[i + 1] - t[i]))
    return np.array(t), np.array(s)


def _hand_energy(profile: Path) -> tuple[float, float]:
    """(energy in communication, node energy) by hand: every RAPL edge window of the one node file, times
    the two ranks' seconds in calls within it over their seconds alive within it."""
    (node_path,) = profile.glob("node-*.jsonl")
    edges = [(r["t"], r["rapl"]["package_j"]) for r in read_records(node_path) if "rapl" in r]
    curves = [_hand_curve(p) for p in sorted(profile.glob("comm-rank-*.jsonl"))]
    lives = []
    for p in sorted(profile.glob("rank-*.jsonl")):
        recs = list(read_records(p))
        lives.append((recs[0]["t"], next(r["t"] for r in recs if r["type"] == "end")))
    attributed = total = 0.0
    for (a, ea), (b, eb) in zip(edges, edges[1:]):
        comm = sum(np.interp(b, t, s) - np.interp(a, t, s) for t, s in curves)
        alive = sum(max(0.0, min(b, end) - max(a, start)) for start, end in lives)
        attributed += (eb - ea) * min(comm / alive, 1.0)
        total += eb - ea
    return attributed, total


def test_energy_in_communication_matches_the_hand_computation(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(PROGRAM))
    profile = tmp_path / "profile"
    counter = _Counter(_fake_powercap(tmp_path / "powercap"))
    counter.start()
    try:
        out = mpirun(2, "-m", "hpcx.run", "--interval", "0.1", "--edge-interval", "0.5", "--profile-dir",
                     str(profile), "--", sys.executable, str(script), timeout_s=180,
                     env={"HPCX_PROFILE_COMM": "1", "HPCX_COMM_FLUSH_S": str(FLUSH_S),
                          "HPCX_POWERCAP_ROOT": str(tmp_path / "powercap")})  # fmt: skip
    finally:
        counter.stop.set()
        counter.join(timeout=10)
    assert out.returncode == 0, out.stderr[-3000:]

    # The writer: a record every FLUSH_S while calls are made, one after they stop, none while idle.
    for path in profile.glob("comm-rank-*.jsonl"):
        t = [r["t"] for r in read_records(path) if r["type"] == "comm"]
        gaps = np.diff(t)
        assert len(t) >= 6 and gaps.min() > 0
        assert max(g for g in gaps if g < 0.5) < 3 * FLUSH_S  # regular while active (CI may be slow)

    got = comm_energy(profile)
    want, node_total = _hand_energy(profile)
    assert got["status"] == "measured" and got["method"] == "derived" and got["rule"] == ENERGY_RULE
    assert got["energy_j"] == pytest.approx(want, abs=0.01)
    (node,) = got["nodes"].values()
    package = node["counters"]["cpu_package"]
    assert package["energy_j"] == pytest.approx(want, abs=0.01)
    assert package["node_energy_j"] == pytest.approx(node_total, abs=0.01)
    assert node["ranks"] == [0, 1] and "dram" not in node["counters"]  # the fake tree has no dram zone
    # About 1.8 of the program's 3.6 s are calls, and the counter runs at RATE_W: the share is about half.
    assert 0.2 < package["share"] < 0.8
    assert node_total == pytest.approx(RATE_W * sum(w[1] - w[0] for w in _windows(profile)), rel=0.1)
    assert 0.9 <= got["coverage"] <= 1.0

    summary = summarize_comm(profile, {0: 4.0, 1: 4.0})
    assert summary["energy"] == got  # the report picks it up
    json.dumps(summary)


def _windows(profile: Path) -> list[tuple[float, float]]:
    (node_path,) = profile.glob("node-*.jsonl")
    t = [r["t"] for r in read_records(node_path) if "rapl" in r]
    return list(zip(t, t[1:]))
