"""Energy in communication where it cannot be measured (no energy counter, no rank file, no comm records):
unavailable with the reason, never 0; and the cumulative-seconds rule on records a person can check. The
measured case runs under real mpirun in tests/mpi/test_comm_energy.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcx.reports.comm import comm_curves, comm_energy
from hpcx.rundir.records import RecordWriter, node_file, rank_file


def _write(path: Path, records: list[dict]) -> None:
    writer = RecordWriter(path)
    for record in records:
        writer.write(record)
    writer.close()


def _profile(tmp_path: Path, rapl: dict, edges: list[tuple[float, float]] | None = None) -> Path:
    _write(
        rank_file(tmp_path, 0),
        [
            {"type": "start", "t": 100.0, "rank": 0, "node": "n1", "local_rank": 0},
            {"type": "end", "t": 120.0, "rank": 0, "exit_code": 0},
        ],
    )
    samples = [
        {"type": "sample", "t": t, "node": "n1", "edge": True, "rapl": {"package_j": e}}
        for t, e in edges or []
    ]
    _write(
        node_file(tmp_path, "n1"),
        [
            {"type": "start", "t": 100.0, "node": "n1"},
            {"type": "source", "t": 100.0, "node": "n1", "name": "rapl", **rapl},
            *samples,
            {"type": "end", "t": 120.0, "node": "n1"},
        ],
    )
    comm = [(105.0, 5.0, 0.0), (110.0, 10.0, 2.0), (115.0, 15.0, 2.0), (120.0, 20.0, 7.0)]
    _write(
        tmp_path / "comm-rank-00000-p1.jsonl",
        [{"type": "comm", "t": t, "rank": 0, "wall_s": w, "seconds": s, "entries": []} for t, w, s in comm],
    )
    return tmp_path


def test_no_energy_counter_is_unavailable_with_the_reason_never_zero(tmp_path):
    profile = _profile(tmp_path, {"status": "unavailable", "reason": "no RAPL zones under /x (a VM)"})
    got = comm_energy(profile)
    assert got["status"] == "unavailable" and "energy_j" not in got
    assert "n1" in got["reason"] and "no RAPL zones under /x (a VM)" in got["reason"]
    node = got["nodes"]["n1"]
    assert (
        node["status"] == "unavailable" and "energy_j" not in node and "no energy counter" in node["reason"]
    )
    json.dumps(got)


def test_no_comm_records_and_no_rank_file_are_unavailable(tmp_path):
    assert "no communication records" in comm_energy(tmp_path)["reason"]
    profile = _profile(
        tmp_path,
        {"status": "measured", "zones": {"intel-rapl:0": "package-0"}},
        [(100.0, 0.0), (110.0, 1000.0), (120.0, 2000.0)],
    )
    rank_file(profile, 0).unlink()
    got = comm_energy(profile)
    assert got["status"] == "unavailable" and got["unplaced_ranks"] == [0]


def test_windows_times_share_by_hand(tmp_path):
    # Comm seconds: 0 at 100 s (tracing start = t - wall_s), 0 at 105, 2 at 110, 2 at 115, 7 at 120. The last
    # step (5 s in 5 s) is allowed; two windows of 10 s, 1000 J each, one rank alive all the time:
    # [100, 110]: 2 s of 10 -> 200 J; [110, 120]: 5 s of 10 -> 500 J.
    profile = _profile(
        tmp_path,
        {"status": "measured", "zones": {"intel-rapl:0": "package-0"}},
        [(100.0, 0.0), (110.0, 1000.0), (120.0, 2000.0)],
    )
    got = comm_energy(profile)
    assert got["status"] == "measured" and got["energy_j"] == pytest.approx(700.0)
    counters = got["nodes"]["n1"]["counters"]
    assert counters["cpu_package"] == {"energy_j": 700.0, "node_energy_j": 2000.0, "share": 0.35}
    assert got["nodes"]["n1"]["comm_s"] == pytest.approx(7.0) and got["coverage"] == 1.0


def test_a_call_longer_than_the_record_interval_is_spread_back_at_most_one_second_per_second(tmp_path):
    # 9 s of calls arrive in one 5-s step (a 9-s Barrier that ended at 120): 4 s of it belongs before 115.
    _write(
        tmp_path / "comm-rank-00003-p9.jsonl",
        [
            {"type": "comm", "t": t, "rank": 3, "wall_s": t - 100.0, "seconds": s, "entries": []}
            for t, s in ((105.0, 0.0), (110.0, 1.0), (115.0, 1.0), (120.0, 10.0))
        ],
    )
    (curve,) = comm_curves(tmp_path)[3]
    assert curve == [(100.0, 0.0), (105.0, 0.0), (110.0, 1.0), (115.0, 5.0), (120.0, 10.0)]


def test_two_ranks_uneven_power_and_edges_between_records_by_hand(tmp_path):
    """A fixed trace worked by hand. Node n1, RAPL edges (t, package J): (100, 0) (108, 400) (111, 1000)
    (120, 1450): windows W1 [100, 108] 400 J, W2 [108, 111] 600 J, W3 [111, 120] 450 J (50, 200, 50 W).
    Rank 0 runs 100-120; its comm records (t, cumulative s): tracing from 100, (106, 2) (110, 2) (118, 6). At
    the edges 100: 0, 108: 2 (flat from 106 to 110), 111: 2 + 4 x 1/8 = 2.5, 120: 6 (after its last record):
    2, 0.5 and 3.5 s in calls in W1, W2, W3.
    Rank 1 runs 104-116; tracing from 104, (108, 3) (110, 3) (112, 6) (116, 7). The 3 s counted between 110
    and 112 are more than the 2 s that passed, so 1 s of it moves before 110: (110, 3) becomes (110, 4). At
    the edges 100: 0 (before tracing), 108: 3, 111: 4 + 2 x 1/2 = 5, 120: 7: 3, 2 and 2 s in W1, W2, W3.
    Rank-seconds alive: W1 8 + 4 = 12, W2 3 + 3 = 6, W3 9 + 5 = 14. In calls: W1 5, W2 2.5, W3 5.5.
    Energy in calls: 400 x 5/12 + 600 x 2.5/6 + 450 x 5.5/14 = 166.667 + 250 + 176.786 = 593.452 J of
    1450 J (share 0.4093); 13 s in calls, all inside the windows (coverage 1)."""
    for rank, (start, end) in enumerate([(100.0, 120.0), (104.0, 116.0)]):
        _write(
            rank_file(tmp_path, rank),
            [
                {"type": "start", "t": start, "rank": rank, "node": "n1", "local_rank": rank},
                {"type": "end", "t": end, "rank": rank, "exit_code": 0},
            ],
        )
    edges = [(100.0, 0.0), (108.0, 400.0), (111.0, 1000.0), (120.0, 1450.0)]
    _write(
        node_file(tmp_path, "n1"),
        [
            {"type": "start", "t": 100.0, "node": "n1"},
            {
                "type": "source",
                "t": 100.0,
                "node": "n1",
                "name": "rapl",
                "status": "measured",
                "zones": {"intel-rapl:0": "package-0"},
            },
            *(
                {"type": "sample", "t": t, "node": "n1", "edge": True, "rapl": {"package_j": e}}
                for t, e in edges
            ),
            {"type": "end", "t": 120.0, "node": "n1"},
        ],
    )
    for rank, pid, traced_from, points in [
        (0, 11, 100.0, [(106.0, 2.0), (110.0, 2.0), (118.0, 6.0)]),
        (1, 12, 104.0, [(108.0, 3.0), (110.0, 3.0), (112.0, 6.0), (116.0, 7.0)]),
    ]:
        _write(
            tmp_path / f"comm-rank-{rank:05d}-p{pid}.jsonl",
            [
                {"type": "comm", "t": t, "rank": rank, "wall_s": t - traced_from, "seconds": s, "entries": []}
                for t, s in points
            ],
        )

    got = comm_energy(tmp_path)
    assert got["status"] == "measured" and got["energy_j"] == 593.452 and got["coverage"] == 1.0
    node = got["nodes"]["n1"]
    assert node["counters"]["cpu_package"] == {"energy_j": 593.452, "node_energy_j": 1450.0, "share": 0.4093}
    assert node["comm_s"] == 13.0 and node["ranks"] == [0, 1]
