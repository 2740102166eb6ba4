"""A rank killed with SIGKILL in the middle of writing a record leaves a torn last line; the requeued attempt
appends to the same file. Its first record (its ``start``) must not be glued onto the torn line and lost with
it: the writer starts on a new line, and readers skip the torn line only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from hpcx.reports.ranks import summarize_ranks
from hpcx.rundir.records import RecordWriter, rank_file, read_records

REPO = Path(__file__).resolve().parents[3]

# Attempt 1, as hpcx.run writes a rank file (lines buffered, synced): a start and two samples reach the disk,
# then the kill comes when the kernel has taken only the first half of the third sample's line.
KILLED_MID_LINE = """
import json, os, signal, sys
from hpcx.rundir.records import RecordWriter, rank_file

writer = RecordWriter(rank_file(sys.argv[1], 0), line_flush=False)
writer.write({"type": "start", "t": 100.0, "rank": 0, "node": "n1", "attempt": 0, "argv": ["attempt-1"]})
writer.write({"type": "sample", "t": 101.0, "rank": 0, "rss_mb": 10.0, "cpu_s": 0.5})
writer.write({"type": "sample", "t": 102.0, "rank": 0, "rss_mb": 11.0, "cpu_s": 1.0})
writer.sync()
line = json.dumps({"v": 2, "type": "sample", "t": 103.0, "rank": 0, "rss_mb": 12.0, "cpu_s": 1.5})
os.write(writer._fh.fileno(), line[: len(line) // 2].encode())
os.kill(os.getpid(), signal.SIGKILL)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "HPCX_", "OMPI_", "PMI"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
    return env


def _kill_mid_line(profile: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_MID_LINE, str(profile)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    path = rank_file(profile, 0)
    assert not path.read_bytes().endswith(b"\n")  # the torn tail the next attempt finds
    return path


def test_a_requeued_attempt_after_a_kill_mid_line_keeps_its_first_record(tmp_path):
    path = _kill_mid_line(tmp_path)
    # Attempt 2: a new process appends to the same file.
    second = """
import sys
from hpcx.rundir.records import RecordWriter, rank_file
writer = RecordWriter(rank_file(sys.argv[1], 0))
writer.write({"type": "start", "t": 200.0, "rank": 0, "node": "n1", "attempt": 1, "argv": ["attempt-2"]})
writer.write({"type": "sample", "t": 201.0, "rank": 0, "rss_mb": 20.0, "cpu_s": 0.5})
writer.write({"type": "end", "t": 202.0, "rank": 0, "exit_code": 0, "wall_s": 2.0, "cpu_s": 1.0,
              "peak_rss_mb": 20.0})
writer.close()
"""
    proc = subprocess.run(
        [sys.executable, "-c", second, str(tmp_path)], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert proc.returncode == 0, proc.stderr

    # 3 whole records of attempt 1, the torn one skipped, all 3 of attempt 2.
    records = list(read_records(path))
    assert [(r["type"], r["t"]) for r in records] == [
        ("start", 100.0),
        ("sample", 101.0),
        ("sample", 102.0),
        ("start", 200.0),
        ("sample", 201.0),
        ("end", 202.0),
    ]
    assert len(path.read_text().splitlines()) == 7  # the torn line stays alone on its line
    (rank,) = summarize_ranks(tmp_path)  # as `hpcx report` reads it: attempt 2's start (t 200), its end
    assert (rank["attempt"], rank["start_t"], rank["exit_code"], rank["finished"]) == (1, 200.0, 0, True)
    assert [p[1] for p in rank["timeline"]] == [20.0] and rank["samples"] == 1  # the last attempt only


def test_hpcx_run_requeued_after_a_kill_mid_line_reports_the_new_attempt(tmp_path):
    """The same through the job's entry point: the requeued ``python -m hpcx.run`` appends to the rank file,
    and the profile read by ``hpcx report`` is the new attempt's, start, samples and end."""
    path = _kill_mid_line(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "hpcx.run",
        "--interval",
        "0.1",
        "--profile-dir",
        str(tmp_path),
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(0.3)",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stderr

    starts = [r for r in read_records(path) if r["type"] == "start"]
    assert [s["argv"][-1] for s in starts] == ["attempt-1", "import time; time.sleep(0.3)"]
    (rank,) = summarize_ranks(tmp_path)
    assert rank["start_t"] == starts[-1]["t"] > 200.0  # the new attempt's start, whose argv is checked above
    assert rank["exit_code"] == 0 and rank["finished"]
    assert all(rank["start_t"] + p[0] > 200.0 for p in rank["timeline"])  # none of attempt 1's (t 101, 102)


def test_a_writer_on_a_file_that_ends_whole_adds_no_blank_line(tmp_path):
    path = tmp_path / "rank-00000.jsonl"
    for t in (1.0, 2.0):
        writer = RecordWriter(path)
        writer.write({"type": "sample", "t": t})
        writer.close()
    assert path.read_text() == '{"v":2,"type":"sample","t":1.0}\n{"v":2,"type":"sample","t":2.0}\n'


def test_a_reader_skips_only_the_torn_part_of_a_line_an_older_writer_glued(tmp_path):
    # Written before writers looked at the tail: the requeued start glued to the torn sample.
    start = {"v": 2, "type": "start", "t": 200.0, "rank": 0, "node": "n1", "rapl": {"v": 1, "type": "x"}}
    path = tmp_path / "rank-00000.jsonl"
    path.write_text(
        '{"v":2,"type":"start","t":100.0,"rank":0,"node":"n1"}\n'
        '{"v":2,"type":"sample","t":103.0,"rss_mb":1'
        + json.dumps(start, separators=(",", ":"))
        + "\n"
        + '{"v":2,"type":"sample","t":201.0,"rank":0,"rss_mb":20.0}\n'
        + '{"v":2,"type":"sample","t":202.0,"nested":{"v":1,"type":"y"'  # torn at the end: skipped
    )
    assert [(r["type"], r["t"]) for r in read_records(path)] == [
        ("start", 100.0),
        ("start", 200.0),
        ("sample", 201.0),
    ]
