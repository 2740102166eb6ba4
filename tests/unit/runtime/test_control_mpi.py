"""The stop agreement over real Open MPI (mpirun -n 2, mpi4py): every rank gets the same answer, with the same
reason, at the same step, even when one rank saw a preemption signal while the other saw the stop request."""

from __future__ import annotations

import json

import pytest

from tests.mpi.mpirun import mpirun

pytestmark = pytest.mark.mpi

WORKER = """
import json, os, signal, sys
from pathlib import Path
from mpi4py import MPI
from hpcx.fsutil import atomic_write_json
from hpcx.rundir.layout import stop_request_file
from hpcx.runtime import preempt

comm = MPI.COMM_WORLD
state = preempt.install()
scenario, every, at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
step = 0
while step < 40:
    step += 1
    if step == at and comm.rank == 0 and scenario in ("request", "both"):  # `hpcx stop`, seen by rank 0 only
        path = stop_request_file(os.environ["HPCX_RUN_DIR"])
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"version": 1, "id": "r7", "by": "bob", "at": "2026-12-07T10:00:00+00:00"})
    if step == at and comm.rank == 1 and scenario in ("preempt", "both"):  # Slurm's warning, rank 1 only
        signal.raise_signal(signal.SIGUSR2)
    if preempt.should_stop(state, comm, step=step, every=every):
        break
by = (state.stop_request or {}).get("by")
result = {"rank": comm.rank, "step": step, "reason": state.reason, "by": by}
# A file per rank: mpirun may run two ranks' stdout lines together.
Path(os.environ["HPCX_RUN_DIR"], f"result-{comm.rank}.json").write_text(json.dumps(result))
"""


def _run(tmp_path, scenario: str, every: int, at: int) -> list[dict]:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    env = {"HPCX_RUN_DIR": str(tmp_path), "HPCX_CONTROL_INTERVAL_S": "0"}
    proc = mpirun(2, str(worker), scenario, str(every), str(at), env=env, timeout_s=120)
    assert proc.returncode == 0, proc.stderr
    return [json.loads((tmp_path / f"result-{rank}.json").read_text()) for rank in (0, 1)]


def test_a_request_seen_by_rank_0_stops_both_ranks_at_the_same_step(tmp_path):
    rows = _run(tmp_path, "request", every=1, at=3)
    assert [(r["step"], r["reason"], r["by"]) for r in rows] == [(3, "stop", "bob")] * 2
    ack = json.loads((tmp_path / "control" / "stopped.json").read_text())
    assert (ack["step"], ack["ranks"], ack["request_id"], ack["requested_by"]) == (3, 2, "r7", "bob")


def test_a_stop_request_wins_over_a_preemption_on_another_rank(tmp_path):
    rows = _run(tmp_path, "both", every=1, at=5)
    assert [(r["step"], r["reason"], r["by"]) for r in rows] == [(5, "stop", "bob")] * 2


def test_a_preemption_alone_is_agreed_as_a_preemption(tmp_path):
    rows = _run(tmp_path, "preempt", every=1, at=4)
    assert [(r["step"], r["reason"]) for r in rows] == [(4, "preempt")] * 2
    assert not (tmp_path / "control" / "stopped.json").exists()


def test_with_every_the_ranks_stop_at_the_next_boundary(tmp_path):
    rows = _run(tmp_path, "request", every=4, at=5)
    assert [(r["step"], r["reason"]) for r in rows] == [
        (8, "stop")
    ] * 2  # within `every` steps of the request
