"""Memory cross-check under real mpirun: each rank touches a known, different amount; hpcx's per-rank peak
agrees with it and with GNU ``/usr/bin/time -v`` within 5%, and the node's sensors are read by one rank."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hpcx.reports.ranks import summarize_ranks
from hpcx.rundir.records import rank_files, read_nodes, read_records
from tests.mpi.mpirun import mpirun

pytestmark = pytest.mark.mpi

# Rank r touches (r + 1) * STEP_MB and holds it; it prints its RSS before allocating, so the expected peak is
# that baseline (the interpreter) plus the allocation.
ALLOC = """
import json, os, sys, time

def status_mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

rank = int(os.environ.get("HPCX_RANK", "0"))
base = status_mb("VmRSS:")
mb = int(sys.argv[1]) * (rank + 1)
buf = b"\\x01" * (mb * 2**20)  # bytes() writes every page, so all of it is resident
time.sleep(float(sys.argv[2]))
# one write per line: the ranks share the launcher's stdout, and print() writes the text and its newline apart
doc = {"rank": rank, "base_mb": base, "alloc_mb": mb, "hwm_mb": status_mb("VmHWM:")}
os.write(1, (json.dumps(doc) + "\\n").encode())
"""
STEP_MB = 100


def write_alloc(directory: Path) -> Path:
    path = directory / "alloc_known.py"
    path.write_text(ALLOC)
    return path


def expected_mb(stdout: str) -> dict[int, float]:
    """Per rank, the interpreter's RSS before the allocation plus the allocation, from the program's lines."""
    docs = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"rank"')]
    return {d["rank"]: d["base_mb"] + d["alloc_mb"] for d in docs}


def own_records(profile: Path, rank: int) -> dict[str, dict]:
    """The rank's start and end records as its one file holds them (mpirun runs no Slurm job step)."""
    (path,) = rank_files(profile)[rank]
    return {rec["type"]: rec for rec in read_records(path) if rec["type"] in ("start", "end")}


def gnu_time_max_rss_mb(program: Path, rank: int, hold_s: float) -> float:
    """``/usr/bin/time -v``'s "Maximum resident set size" of the same program as rank ``rank``."""
    env = {**os.environ, "HPCX_RANK": str(rank)}
    out = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, str(program), str(STEP_MB), str(hold_s)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 1024


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="GNU time is not installed (scripts/setup)")
def test_two_ranks_known_allocations_within_5_percent_and_one_node_file(tmp_path):
    program = write_alloc(tmp_path)
    profile = tmp_path / "profile"
    out = mpirun(
        2,
        "-m",
        "hpcx.run",
        "--interval",
        "0.2",
        "--profile-dir",
        str(profile),
        "--",
        sys.executable,
        str(program),
        str(STEP_MB),
        "1.5",
        timeout_s=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    expected = expected_mb(out.stdout)
    assert sorted(expected) == [0, 1]

    ranks = {r["rank"]: r for r in summarize_ranks(profile)}  # as the report reads them
    assert sorted(ranks) == [0, 1]
    for rank, want in expected.items():
        end = own_records(profile, rank)["end"]
        sampled = max(point[1] for point in ranks[rank]["timeline"])  # [t, rss_mb, cpu_s]
        assert end["peak_rss_mb"] == pytest.approx(want, rel=0.05), (rank, end, want)
        assert ranks[rank]["peak_rss_mb"] == pytest.approx(want, rel=0.05), (rank, ranks[rank], want)
        assert sampled == pytest.approx(want, rel=0.05), (rank, sampled, want)  # the timeline saw it too
        gnu = gnu_time_max_rss_mb(program, rank, 0.3)
        assert end["peak_rss_mb"] == pytest.approx(gnu, rel=0.05), (rank, end["peak_rss_mb"], gnu)

    # Both ranks share this host: one of them (local rank 0) read the node, into one file.
    assert len(list(profile.glob("node-*.jsonl"))) == 1
    (node,) = read_nodes(profile).values()
    assert node["start"]["rank"] == 0 and node["end"] is not None
    starts = {r: own_records(profile, r)["start"] for r in (0, 1)}
    assert [starts[r]["node_collector"] for r in (0, 1)] == [True, False]
    assert node["sources"]["memory"]["status"] == "measured"
