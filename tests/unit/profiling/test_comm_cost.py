"""Tracing's cost per call, measured on the job's node when tracing starts: the measurement sees a known added
cost, calibration leaves the program's own totals untouched, and the report multiplies each process's calls by
the cost it measured (the benchmark's figure only for kinds nobody measured, and it says so)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcx.profiling.comm import HOOK_DIR
from hpcx.profiling.comm_cost import measure
from hpcx.reports.comm import tracing_cost
from hpcx.reports.timelines import TRACED_CALL_US, profiler_cost
from hpcx.rundir.layout import process_file
from hpcx.rundir.records import RecordWriter


def _spin(us: float) -> None:
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


def test_the_measurement_sees_what_the_wrapper_adds():
    added = measure(lambda: None, lambda: _spin(30))
    assert 20 < added < 90, added
    assert measure(lambda: _spin(5), lambda: None) == 0.0  # never below zero


PROGRAM = """
import array
from mpi4py import MPI
a, b = array.array("d", [1.0]), array.array("d", [0.0])
for _ in range(7):
    MPI.COMM_WORLD.Bcast(a, root=0)
"""


def test_mpi_is_calibrated_at_import_and_the_programs_totals_hold_only_its_calls(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "SLURM_", "HPCX_"))}
    env.update(HPCX_PROFILE_DIR=str(tmp_path), HPCX_PROFILE_COMM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(HOOK_DIR), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = tmp_path.glob("comm-rank-00000-p*.jsonl")
    record = json.loads(path.read_text().splitlines()[-1])
    assert set(record["cost_us"]) == {"mpi"} and record["cost_us"]["mpi"] >= 0
    assert [(e["call"], e["calls"]) for e in record["entries"]] == [("Bcast", 7)]  # no calibration Allreduce


def _comm(profile: Path, rank: int, pid: int, entries: list, cost: dict | None, t: float = 1.0) -> None:
    w = RecordWriter(process_file(profile, "comm", rank, pid))
    record = {"type": "comm", "t": t, "rank": rank, "pid": pid, "wall_s": 10.0, "seconds": 1.0}
    w.write({**record, "entries": entries, **({"cost_us": cost} if cost is not None else {})})
    w.close()


def _e(lib: str, call: str, calls: int) -> dict:
    return {
        "lib": lib,
        "call": call,
        "bucket": 8,
        "ranks": 2,
        "calls": calls,
        "bytes": 8 * calls,
        "seconds": 0.1,
    }


def test_each_processs_calls_times_the_cost_it_measured(tmp_path):
    _comm(
        tmp_path,
        0,
        1,
        [_e("mpi", "Allreduce", 1000), _e("torch", "ddp_bucket_allreduce", 10)],
        {"mpi": 2.0, "ddp": 6.0},
    )
    _comm(
        tmp_path,
        1,
        2,
        [_e("mpi", "Allreduce", 1000), _e("torch", "all_reduce", 100)],
        {"mpi": 4.0, "torch": 1.0},
    )
    cost = tracing_cost(tmp_path)
    assert cost["calls"] == 2110 and cost["unmeasured_calls"] == 0
    assert cost["added_s"] == pytest.approx((1000 * 2.0 + 10 * 6.0 + 1000 * 4.0 + 100 * 1.0) / 1e6)
    assert cost["cost_us"] == {"ddp": 6.0, "mpi": 3.0, "torch": 1.0}
    ranks = [
        {"rank": r, "wall_s": 10.0, "cpus_allowed": 1, "sampler_cpu_s": 0.1, "sampler_rss_mb": 30.0}
        for r in (0, 1)
    ]
    doc = profiler_cost(ranks, tmp_path, 2110)
    assert doc["comm_added_s"] == cost["added_s"]
    assert doc["comm_method"] == (
        "measured at start-up on the job's nodes (ddp 6.00 us, mpi 3.00 us, torch 1.00 us per call, median of "
        "the processes)"
    )


def test_unmeasured_kinds_fall_back_to_the_benchmarks_figure_and_say_how_many(tmp_path):
    _comm(tmp_path, 0, 1, [_e("mpi", "Allreduce", 100), _e("torch", "all_reduce", 50)], {"mpi": 2.0})
    doc = profiler_cost([], tmp_path, 150)
    assert doc["comm_added_s"] == pytest.approx(100 * 2.0 / 1e6 + 50 * TRACED_CALL_US / 1e6)
    assert doc["comm_method"].endswith(f"; 50 calls of unmeasured kinds at {TRACED_CALL_US} us (estimated)")


def test_records_from_before_calibration_are_estimated_as_before(tmp_path):
    _comm(tmp_path, 0, 1, [_e("mpi", "Allreduce", 100)], None)
    doc = profiler_cost([], tmp_path, 100)
    assert doc["comm_added_s"] == 100 * TRACED_CALL_US / 1e6
    assert (
        doc["comm_method"]
        == f"estimated ({TRACED_CALL_US} us per traced call, benchmarks/mpi_call_added_us.py)"
    )
    assert profiler_cost([], tmp_path, 0)["comm_method"] is None
    assert tracing_cost(tmp_path / "none") is None


def test_the_torch_calibration_runs_once_and_not_from_inside_itself(monkeypatch):
    import torch  # noqa: F401  (the calibration uses a real tensor)

    from hpcx.profiling import comm_cost
    from hpcx.profiling.comm_torch import _torch_wrapper

    calls = []
    real = comm_cost.measure
    monkeypatch.setattr(comm_cost, "measure", lambda d, t: calls.append(1) or real(d, t))
    monkeypatch.setattr(comm_cost, "tried", set())
    monkeypatch.setattr(comm_cost, "costs_us", {})
    comm_cost.calibrate_torch(_torch_wrapper)
    comm_cost.calibrate_torch(_torch_wrapper)
    assert calls == [1] and comm_cost.tried == {"torch"} and comm_cost.costs_us["torch"] >= 0


def test_a_requeued_jobs_earlier_attempt_adds_nothing_to_the_last(tmp_path):
    # attempt 1's process (its file ended at t=1) and attempt 2's (t=50); the last attempt started at t=20
    _comm(tmp_path, 0, 1, [_e("mpi", "Allreduce", 100_000)], {"mpi": 2.0})
    _comm(tmp_path, 0, 2, [_e("mpi", "Allreduce", 100)], {"mpi": 2.0}, t=50.0)
    doc = profiler_cost([], tmp_path, 100, since={0: 20.0})
    assert doc["comm_added_s"] == pytest.approx(100 * 2.0 / 1e6)
    assert profiler_cost([], tmp_path, 100_100)["comm_added_s"] == pytest.approx(100_100 * 2.0 / 1e6)
