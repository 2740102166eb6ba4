"""Live state from the tails of a task's files (hpcx.runs.live): whole records only, the end of a long file only,
at most two opens per task; steps, rate, ETA, attempts and stalled as docs/user.md ("Live status") says."""

from __future__ import annotations

import builtins
import json
import time
from pathlib import Path

import pytest

from hpcx.rundir.layout import metrics_dir, rank_file
from hpcx.runs import live
from hpcx.runs.live import TAIL_BYTES, Tail, best_task, live_state, read_tail, sweep_live, task_live


def _line(step: int, t: float, attempt: int = 0, **values) -> str:
    record = {"v": 2, "type": "metric", "t": t, "rank": 0, "attempt": attempt, "step": step, **values}
    return json.dumps(record, separators=(",", ":")) + "\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _beat(directory: Path, t: float, interval_s: float = 1.0, attempt: int = 0) -> None:
    beat = {"t": t, "rank": 0, "attempt": attempt, "interval_s": interval_s}
    _write(live.heartbeat_file(directory, 0), json.dumps(beat) + "\n")


def test_a_torn_last_line_and_a_cut_first_line_are_skipped(tmp_path):
    lines = [_line(s, 100.0 + s, loss=1.0 / (s + 1)) for s in range(400)]
    path = _write(tmp_path / "rank-00000.jsonl", "".join(lines) + '{"v":2,"type":"metric","t":5')
    tail = read_tail(path, max_bytes=1000)
    steps = [r["step"] for r in tail.records]
    assert steps == list(range(400 - len(steps), 400)) and 0 < len(steps) < 20
    assert not tail.from_start and tail.bytes_read == 1000
    whole = read_tail(path, max_bytes=10**9)
    assert whole.from_start and [r["step"] for r in whole.records] == list(range(400))


def test_a_missing_file_is_none_and_garbage_lines_are_skipped(tmp_path):
    assert read_tail(tmp_path / "nothing.jsonl") is None
    path = _write(tmp_path / "m.jsonl", "not json\n[1,2]\n" + _line(3, 1.0, loss=2.0))
    assert [r["step"] for r in read_tail(path).records] == [3]


def test_a_10000_record_file_costs_two_opens_and_only_its_last_bytes(tmp_path, monkeypatch):
    directory = metrics_dir(tmp_path, 7)
    start = time.time() - 5000.0  # two steps a second until now
    lines = (_line(s, start + s * 0.5, loss=10.0 / (s + 1), lr=0.1, total_steps=20000) for s in range(10000))
    path = _write(rank_file(directory, 0), "".join(lines))
    _beat(directory, time.time())
    assert path.stat().st_size > 50 * TAIL_BYTES
    opened, real_open = [], builtins.open

    def counting_open(file, *args, **kw):
        opened.append(str(file))
        return real_open(file, *args, **kw)

    monkeypatch.setattr(builtins, "open", counting_open)
    reads = []
    real_read_tail = live.read_tail
    monkeypatch.setattr(live, "read_tail", lambda p, *a: reads.append(real_read_tail(p, *a)) or reads[-1])
    state = task_live(tmp_path, 7, "RUNNING")
    monkeypatch.setattr(builtins, "open", real_open)
    assert len(opened) == 2 and opened[0] == str(path)
    assert reads[0].bytes_read == TAIL_BYTES
    assert state["step"] == 9999 and state["total_steps"] == 20000
    assert state["steps_per_s"] == pytest.approx(2.0)
    assert state["eta_s"] == pytest.approx((20000 - 9999) / 2.0)
    assert state["metrics"] == {"loss": pytest.approx(10.0 / 10000), "lr": 0.1}
    assert state["main_metric"] == "loss" and state["stalled"] is False


def test_a_requeued_attempt_says_where_it_resumed_or_unknown_beyond_the_tail(tmp_path):
    first = [_line(s, 100.0 + s, attempt=0, loss=1.0) for s in range(60)]
    second = [_line(s, 500.0 + s, attempt=1, loss=0.5) for s in range(40, 45)]
    path = _write(tmp_path / "rank-00000.jsonl", "".join(first + second))
    state = live_state(read_tail(path), None, "RUNNING", now=600.0)
    assert state["attempt"] == 1 and state["resumed_from"] == 40 and state["step"] == 44
    assert state["steps_per_s"] == pytest.approx(1.0)  # the latest attempt's records only
    long_second = [_line(s, 500.0 + s, attempt=1, loss=0.5) for s in range(40, 2000)]
    path.write_text("".join(first + long_second))
    state = live_state(read_tail(path), None, "RUNNING", now=3000.0)
    assert state["attempt"] == 1 and state["resumed_from"] == "unknown" and state["step"] == 1999
    fresh = live_state(read_tail(_write(tmp_path / "b.jsonl", "".join(first))), None, "RUNNING", 200.0)
    assert fresh["attempt"] == 0 and fresh["resumed_from"] is None
    beat = {"t": 300.0, "attempt": 1, "interval_s": 30.0}  # requeued, started, nothing logged yet
    waiting = live_state(read_tail(tmp_path / "b.jsonl"), beat, "RUNNING", 301.0)
    assert waiting["attempt"] == 1 and waiting["resumed_from"] is None and waiting["step"] == 59


def test_a_requeued_attempt_whose_file_starts_in_the_tail_is_known(tmp_path):
    path = _write(tmp_path / "m.jsonl", "".join(_line(s, 1.0 + s, attempt=2, acc=0.1) for s in range(5, 9)))
    state = live_state(read_tail(path), None, "RUNNING", now=10.0)
    assert state["attempt"] == 2 and state["resumed_from"] == 5


def test_no_declared_total_means_no_eta_and_one_record_no_rate(tmp_path):
    path = _write(tmp_path / "m.jsonl", _line(3, 10.0, acc=0.5, loss_aux=1.0))
    state = live_state(read_tail(path), None, "RUNNING", now=12.0)
    assert state["total_steps"] is None and state["eta_s"] is None and state["steps_per_s"] is None
    assert state["main_metric"] == "acc" and state["main_value"] == 0.5
    assert state["last_log_age_s"] == 2.0
    assert state["heartbeat_age_s"] is None and state["stalled"] is False


def test_a_progress_record_declares_the_total_before_any_step(tmp_path):
    progress = json.dumps({"v": 2, "type": "progress", "t": 1.0, "rank": 0, "attempt": 0, "total_steps": 50})
    state = live_state(read_tail(_write(tmp_path / "m.jsonl", progress + "\n")), None, "RUNNING", 2.0)
    assert state["total_steps"] == 50 and state["step"] is None and state["metrics"] == {}


@pytest.mark.parametrize(
    ("age_s", "state", "stalled"),
    [(2.0, "RUNNING", False), (3.5, "RUNNING", True), (3.5, "COMPLETED", False), (100.0, "PENDING", False)],
)
def test_a_running_job_without_a_heartbeat_for_three_intervals_is_stalled(tmp_path, age_s, state, stalled):
    now = 1000.0
    _beat(tmp_path, now - age_s, interval_s=1.0)
    got = live_state(None, live.read_heartbeat(live.heartbeat_file(tmp_path, 0)), state, now)
    assert (
        got["stalled"] is stalled and got["heartbeat_age_s"] == age_s and got["heartbeat_interval_s"] == 1.0
    )
    assert got["stalled_reason"] == ("no heartbeat" if stalled else None)


@pytest.mark.parametrize(
    ("quiet_s", "state", "reason"),
    [(5.0, "RUNNING", None), (25.0, "RUNNING", "no new step"), (25.0, "COMPLETED", None)],
)
def test_a_program_that_stops_logging_while_hpcx_run_beats_is_stalled(tmp_path, quiet_s, state, reason):
    # a step a second for 30 s, then nothing for quiet_s; the heartbeat (1 s) stays young: a hung collective
    now = 1000.0
    path = _write(
        tmp_path / "rank-00000.jsonl", "".join(_line(s, now - quiet_s - 30 + s, loss=1.0) for s in range(31))
    )
    _beat(tmp_path, now - 0.5, interval_s=1.0)
    got = live_state(read_tail(path), live.read_heartbeat(live.heartbeat_file(tmp_path, 0)), state, now)
    assert (got["stalled"], got["stalled_reason"]) == (reason is not None, reason)
    assert got["last_log_age_s"] == quiet_s
    from hpcx.cli.views import beat_text

    assert beat_text(got) == ("stalled, no step 25s" if reason else "0s")


def test_a_task_with_neither_file_has_no_live_state(tmp_path):
    assert task_live(tmp_path, 3, "RUNNING") is None


def _live(value, metric="loss", stalled=False):
    return {"main_metric": metric, "metrics": {metric: value}, "stalled": stalled, "step": 1}


def test_the_best_task_is_the_lowest_loss_or_the_highest_accuracy():
    assert best_task({0: _live(0.5), 1: _live(0.2), 2: None, 3: _live("nan")}) == 1
    assert best_task({0: _live(0.5, "val_acc"), 1: _live(0.9, "val_acc"), 2: _live(0.9, "val_acc")}) == 1
    assert best_task({0: None}) is None


def test_a_sweep_shows_its_best_task_and_its_stalled_tasks():
    doc = sweep_live({0: _live(0.5, stalled=True), 1: _live(0.2), 2: None})
    assert doc["best_task"] == 1 and doc["metrics"]["loss"] == 0.2
    assert doc["stalled_tasks"] == [0]
    assert sweep_live({0: None, 1: None}) is None


def test_the_tail_of_an_empty_file_has_no_records(tmp_path):
    assert read_tail(_write(tmp_path / "m.jsonl", "")) == Tail([], True, 0)
