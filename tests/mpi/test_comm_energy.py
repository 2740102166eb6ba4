"""Energy spent in communication, under real mpirun: two ranks wrapped by ``python -m hpcx.run`` with comm
tracing on, a fake powercap counter driven by the test at a known, constant power, and a program in which each
rank in turn waits in MPI calls while the other sleeps, timing its own calls with a stopwatch. The oracle owes
nothing to the records or to the report's formula: at constant power P, with both ranks running, a window's
energy times (seconds in calls) / (rank-seconds) is P x (seconds in calls) / 2, wherever in the window the
calls fall; summed, P x (rank 0's seconds in calls + rank 1's) / 2. The fixed-trace case with every step
worked by hand is tests/unit/reports/test_comm_energy.py."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hpcx.reports.comm import ENERGY_RULE, comm_energy, summarize_comm
from hpcx.rundir.records import read_records
from tests.mpi.mpirun import mpirun
from tests.unit.reports.test_node_steps import RATE_W, _Counter, _fake_powercap

pytest.importorskip("mpi4py")
pytestmark = pytest.mark.mpi

FLUSH_S = 0.2
PROGRAM = """
    import sys, time
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    buf = np.zeros(1, dtype="i")
    in_calls_s = 0.0

    def call(fn, *args, **kwargs):
        # The program's own stopwatch around each MPI call (the tracer's clock is not used)
        global in_calls_s
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        in_calls_s += time.perf_counter() - t0

    def waits_while_other_sleeps(sleeper, rounds):
        # The sleeper naps 10 ms before each Allreduce, so the other rank waits about that long inside it
        for _ in range(rounds):
            if comm.rank == sleeper:
                time.sleep(0.01)
            call(comm.Allreduce, MPI.IN_PLACE, buf, op=MPI.SUM)

    call(comm.Barrier)
    waits_while_other_sleeps(1, 120)               # rank 0 waits about 1.2 s in calls
    time.sleep(0.8)                                # idle: no calls, no records
    waits_while_other_sleeps(0, 60)                # rank 1 waits about 0.6 s
    call(comm.Barrier)
    with open(f"{sys.argv[1]}/in-calls-{comm.rank}.txt", "w") as fh:
        fh.write(repr(in_calls_s))
"""


def test_energy_in_communication_is_the_power_times_the_seconds_each_rank_timed_in_calls(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(PROGRAM))
    profile = tmp_path / "profile"
    counter = _Counter(_fake_powercap(tmp_path / "powercap"))
    counter.start()
    try:
        out = mpirun(
            2,
            "-m",
            "hpcx.run",
            "--interval",
            "0.1",
            "--edge-interval",
            "0.5",
            "--profile-dir",
            str(profile),
            "--",
            sys.executable,
            str(script),
            str(tmp_path),
            timeout_s=180,
            env={
                "HPCX_PROFILE_COMM": "1",
                "HPCX_COMM_FLUSH_S": str(FLUSH_S),
                "HPCX_POWERCAP_ROOT": str(tmp_path / "powercap"),
            },
        )
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

    # Each rank waited while the other slept: rank 0 at least 120 x 10 ms, rank 1 at least 60 x 10 ms.
    in_calls = [float((tmp_path / f"in-calls-{rank}.txt").read_text()) for rank in (0, 1)]
    assert in_calls[0] >= 1.2 and in_calls[1] >= 0.6, in_calls
    got = comm_energy(profile)
    assert got["status"] == "measured" and got["method"] == "derived" and got["rule"] == ENERGY_RULE
    # RATE_W (100 W) x (about 1.2 + 0.6 s) / 2: about 90 J, from the stopwatches and the power alone.
    want = RATE_W * sum(in_calls) / 2
    assert got["energy_j"] == pytest.approx(want, rel=0.1)
    (node,) = got["nodes"].values()
    package = node["counters"]["cpu_package"]
    assert package["energy_j"] == got["energy_j"]
    assert node["ranks"] == [0, 1] and "dram" not in node["counters"]  # the fake tree has no dram zone
    # The node's energy over its windows is the power times their length.
    span_s = sum(b - a for a, b in _windows(profile))
    assert package["node_energy_j"] == pytest.approx(RATE_W * span_s, rel=0.1)
    assert package["share"] == pytest.approx(want / (RATE_W * span_s), rel=0.15)
    assert 0.9 <= got["coverage"] <= 1.0

    summary = summarize_comm(profile, {0: 4.0, 1: 4.0})
    assert summary["energy"] == got  # the report picks it up
    json.dumps(summary)


def _windows(profile: Path) -> list[tuple[float, float]]:
    (node_path,) = profile.glob("node-*.jsonl")
    t = [r["t"] for r in read_records(node_path) if "rapl" in r]
    return list(zip(t, t[1:]))
