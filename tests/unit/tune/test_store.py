"""A study's files: created once (O_EXCL through link), read by one listing, claimed densely by many workers at
once, a killed worker's trial marked lost by exactly one other, nothing left behind that blocks anyone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcx.rundir.layout import TRIALS_DIR, trial_file
from hpcx.tune import store
from hpcx.tune.store import TrialFiles, publish

REPO = Path(__file__).resolve().parents[3]


def test_publish_creates_a_whole_file_once_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "trial-000001.json"
    assert publish(path, {"a": 1})
    assert not publish(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trial-000001.json"]


def test_publish_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        publish(tmp_path / "x.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o640


def test_claims_are_dense_below_the_budget_and_retries_come_after_it(tmp_path):
    files = TrialFiles(tmp_path)
    assert [files.claim({"params": {"x": i}}, budget=3) for i in range(4)] == [0, 1, 2, None]
    assert files.claim({"params": {"x": 1}}, budget=3, retry_of=1) == 3
    assert files.claim({"params": {"x": 2}}, budget=3, retry_of=2) == 4
    trials = files.trials()
    assert trials[1].params == {"x": 1} and trials[1].doc["retry_of"] is None and trials[1].state == "running"
    assert trials[3].doc["retry_of"] == 1 and trials[3].doc["number"] == 3


def test_one_listing_gives_values_per_rung_ends_and_heartbeats(tmp_path):
    files = TrialFiles(tmp_path)
    for i in range(3):
        files.claim({"params": {"i": i}}, budget=10)
    assert files.record_rung(1, 30, 0.5)
    assert files.record_rung(0, 30, 0.7)
    assert files.record_rung(0, 10, 0.9)
    assert not files.record_rung(0, 10, 0.1)  # the first value at a rung stays
    assert files.finish(1, "stopped", rung=30, reason="r")
    assert not files.finish(1, "complete", value=0.1)  # the first end stays
    files.beat(2)
    (tmp_path / TRIALS_DIR / ".trial-000009.json.1.tmp").write_text("{")  # a killed writer's temporary
    (tmp_path / TRIALS_DIR / "notes.txt").write_text("x")
    trials = files.trials()
    assert list(trials) == [0, 1, 2]
    assert (
        trials[0].rungs == {30: 0.7, 10: 0.9} and trials[1].state == "stopped" and trials[1].end["rung"] == 30
    )
    assert trials[2].alive_at is not None and trials[0].alive_at is None
    assert store.rung_values(trials.values()) == {10: [(0, 0.9)], 30: [(1, 0.5), (0, 0.7)]}
    with pytest.raises(ValueError, match="not one of complete, stopped, failed, lost"):
        files.finish(2, "done")


def test_files_that_never_change_are_read_once_per_process(tmp_path, monkeypatch):
    files = TrialFiles(tmp_path)
    files.claim({"params": {}}, budget=5)
    files.record_rung(0, 1, 1.0)
    reads = []
    real = store._read
    monkeypatch.setattr(store, "_read", lambda p: reads.append(p.name) or real(p))
    files.trials()
    files.beat(0)
    files.trials()
    assert sorted(reads) == ["trial-000000.json", "trial-000000.rung-000001.json"]


CLAIMER = """
import sys, time
from pathlib import Path
from hpcx.tune.store import TrialFiles
files = TrialFiles(Path(sys.argv[1]))
while time.time() < float(sys.argv[2]):
    time.sleep(0.005)
got = []
while True:
    n = files.claim({"params": {"worker": sys.argv[3]}}, budget=int(sys.argv[4]))
    if n is None:
        break
    got.append(n)
print(" ".join(map(str, got)))
"""


def test_32_workers_started_at_once_claim_each_number_exactly_once(tmp_path):
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(tmp_path), str(start), str(w), "200"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for w in range(32)
    ]
    claimed = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        claimed += [int(x) for x in out.split()]
    assert sorted(claimed) == list(range(200))
    trials = TrialFiles(tmp_path).trials()
    assert sorted(trials) == list(range(200)) and all(t.doc["number"] == n for n, t in trials.items())
    assert not [p for p in (tmp_path / TRIALS_DIR).iterdir() if p.name.startswith(".")]


WORKER = """
import sys, time
from pathlib import Path
from hpcx.tune.store import TrialFiles
files = TrialFiles(Path(sys.argv[1]))
n = files.claim({"params": {"x": 1}}, budget=10)
print(n, flush=True)
while True:
    files.beat(n)
    time.sleep(0.1)
"""


def test_a_worker_killed_mid_trial_is_marked_lost_once_and_blocks_nobody(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        number = int(proc.stdout.readline())
        time.sleep(0.5)
        files = TrialFiles(tmp_path)
        assert files.mark_lost(bound_s=1.0) == []  # beating: not lost
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    time.sleep(1.2)
    marked = files.mark_lost(bound_s=1.0)
    assert [t.number for t in marked] == [number]
    assert TrialFiles(tmp_path).mark_lost(bound_s=1.0) == []  # another worker finds it marked already
    trials = files.trials()
    assert trials[number].state == "lost" and trials[number].end["silent_s"] >= 1.0
    assert files.claim({"params": {"x": 1}}, budget=10, retry_of=number) == 10
    assert files.claim({"params": {"x": 2}}, budget=10) == 1  # the study goes on


def test_a_trial_just_created_without_a_beat_yet_is_not_lost(tmp_path):
    files = TrialFiles(tmp_path)
    files.claim({"params": {}}, budget=2)
    assert files.mark_lost(bound_s=30.0) == []
    assert [t.number for t in files.mark_lost(bound_s=30.0, now=time.time() + 31)] == [0]


def test_trial_file_names_are_the_contracts(tmp_path):
    assert trial_file(tmp_path, 7).name == "trial-000007.json"
    assert trial_file(tmp_path, 7, rung=81).name == "trial-000007.rung-000081.json"
    assert trial_file(tmp_path, 7, part="end").name == "trial-000007.end.json"
    with pytest.raises(ValueError):
        trial_file(tmp_path, 7, part="other")


def test_records_are_compact_sorted_json_lines_with_their_keys(tmp_path):
    files = TrialFiles(tmp_path / "deep" / "study")  # the folders are made as needed
    assert files.create(5, {"params": {"b": 2, "a": 1}, "number": 5})
    assert not files.create(5, {"params": {}})
    assert trial_file(files.run_dir, 5).read_text() == '{"number":5,"params":{"a":1,"b":2}}\n'
    files.finish(5, "complete", values=[1.5])
    end = json.loads(trial_file(files.run_dir, 5, part="end").read_text())
    assert end["trial"] == 5 and end["state"] == "complete" and end["values"] == [1.5] and end["ended_at"] > 0
    files.record_rung(5, 9, 0.5)
    rung = json.loads(trial_file(files.run_dir, 5, rung=9).read_text())
    assert rung["trial"] == 5 and rung["rung"] == 9 and rung["value"] == 0.5 and rung["t"] > 0
    files.beat(5)
    beat = json.loads(trial_file(files.run_dir, 5, part="alive").read_text())
    assert beat["trial"] == 5 and beat["pid"] == os.getpid() and beat["t"] > 0


def test_a_damaged_or_foreign_file_does_not_break_the_listing(tmp_path):
    files = TrialFiles(tmp_path)
    files.claim({"params": {"x": 1}}, budget=5)
    (tmp_path / TRIALS_DIR / "trial-000003.json").write_text("[1, 2]\n")  # JSON, but no record
    (tmp_path / TRIALS_DIR / "trial-000004.json").write_text("{torn")
    trials = files.trials()
    assert trials[0].params == {"x": 1}
    assert trials[3].doc == {} and trials[4].doc == {}


def test_a_number_taken_after_the_listing_is_skipped_not_retried_forever(tmp_path, monkeypatch):
    files = TrialFiles(tmp_path)
    TrialFiles(tmp_path).claim({"params": {}}, budget=5)  # another worker took 0 ...
    monkeypatch.setattr(TrialFiles, "trials", lambda self: {})  # ... after this one listed the folder
    assert files.claim({"params": {}}, budget=5) == 1


def test_a_worker_marks_at_most_as_many_lost_trials_as_it_takes_on(tmp_path):
    files = TrialFiles(tmp_path)
    for _ in range(3):
        files.claim({"params": {}}, budget=5)
    later = time.time() + 100
    assert [t.number for t in files.mark_lost(bound_s=10, now=later, limit=1)] == [0]
    assert [t.number for t in files.mark_lost(bound_s=10, now=later, limit=1)] == [1]
    assert [t.number for t in files.mark_lost(bound_s=10, now=later)] == [2]
