"""Stop requests inside the job: where the ranks look, how often, what they acknowledge, and that a stopped job is
never requeued (hpcx.runtime.control and preempt.should_stop/requeue, in one process)."""

from __future__ import annotations

import datetime
import json
import os
import signal
import stat
from pathlib import Path

import pytest

from hpcx.fsutil import atomic_write_json
from hpcx.rundir.layout import stop_request_file, stopped_file
from hpcx.runtime import control, preempt


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A run directory this process belongs to, as hpcx.run's environment says; no Slurm job."""
    for name in ("HPCX_TASK_ID", "SLURM_ARRAY_TASK_ID", "HPCX_TASK_OFFSET", "SLURM_JOB_ID", "HPCX_DEADLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HPCX_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("HPCX_CONTROL_INTERVAL_S", "0")
    return tmp_path


@pytest.fixture
def state(run_dir):
    made = preempt.install()
    yield made
    made.uninstall()


def _request(run_dir: Path, task: int | None = None, by: str = "alice", rid: str = "r1") -> Path:
    path = stop_request_file(run_dir, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, {"version": 1, "id": rid, "by": by, "at": "2026-12-07T10:00:00+00:00"})


def test_outside_a_run_there_is_nothing_to_watch(monkeypatch):
    monkeypatch.delenv("HPCX_RUN_DIR", raising=False)
    assert control.watch_from_env() is None


def test_a_task_looks_at_its_own_request_first_then_the_whole_runs(run_dir, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    monkeypatch.setenv("HPCX_TASK_OFFSET", "10")  # a sweep's later chunk: task 12
    watch = control.watch_from_env()
    assert watch.task == 12
    assert watch.files == (run_dir / "control/task-00012/stop.json", run_dir / "control/stop.json")
    assert watch.ack == run_dir / "control/task-00012/stopped.json"
    monkeypatch.setenv("HPCX_TASK_ID", "3")  # hpcx.run's word wins
    assert control.watch_from_env().task == 3


def test_should_stop_sees_a_request_acknowledges_it_and_stays_stopped(run_dir, state):
    assert not preempt.should_stop(state, step=1)
    _request(run_dir)
    assert preempt.should_stop(state, step=2)
    assert state.stopped and state.stop_request["by"] == "alice" and state.stop_step == 2
    ack = json.loads(stopped_file(run_dir).read_text())
    assert {k: ack[k] for k in ("request_id", "requested_by", "step", "ranks", "task")} == {
        "request_id": "r1",
        "requested_by": "alice",
        "step": 2,
        "ranks": 1,
        "task": None,
    }
    assert ack["stopped_at"].endswith("+00:00")
    stopped_file(run_dir).unlink()
    assert preempt.should_stop(state, step=3)  # decided once: no second look, no second acknowledgement
    assert not stopped_file(run_dir).exists()


def test_a_task_stops_for_its_own_request_not_for_another_tasks(run_dir, monkeypatch):
    monkeypatch.setenv("HPCX_TASK_ID", "4")
    state = preempt.install()
    try:
        _request(run_dir, task=5)
        assert not preempt.should_stop(state, step=1)
        _request(run_dir, task=4)
        assert preempt.should_stop(state, step=2)
        assert json.loads(stopped_file(run_dir, 4).read_text())["task"] == 4
    finally:
        state.uninstall()


def test_a_stop_request_wins_over_a_preemption_signal(run_dir, state):
    signal.raise_signal(signal.SIGUSR2)
    assert state.received == [signal.SIGUSR2]
    _request(run_dir)
    assert preempt.should_stop(state, step=7)
    assert state.reason == "stop" and state.stopped


def test_a_preemption_without_a_request_is_not_a_stop(run_dir, state):
    signal.raise_signal(signal.SIGUSR2)
    assert preempt.should_stop(state, step=7)
    assert state.reason == "preempt" and not state.stopped and state.stop_request is None
    assert not stopped_file(run_dir).exists()


def test_requeue_never_requeues_a_stopped_job(run_dir, state, tmp_path, monkeypatch):
    calls = _fake_scontrol(tmp_path, monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    said = []
    _request(run_dir)
    assert preempt.should_stop(state, step=9)
    assert preempt.requeue(log=said.append) is False
    assert not calls.exists(), "scontrol requeue was called for a stopped job"
    assert said == [
        "hpcx: not requeuing: stopped at step 9 on request of alice (hpcx stop); a new run resumes from the "
        "saved checkpoint"
    ]


def test_requeue_still_requeues_a_preempted_job(run_dir, state, tmp_path, monkeypatch):
    calls = _fake_scontrol(tmp_path, monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    signal.raise_signal(signal.SIGUSR2)
    assert preempt.should_stop(state, step=9)
    assert preempt.requeue(log=lambda _: None) is True
    assert calls.read_text().split() == ["requeue", "4242"]


def _fake_scontrol(tmp_path: Path, monkeypatch) -> Path:
    """An scontrol on PATH that records its arguments in the returned file."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol-calls"
    bin_dir.mkdir()
    fake = bin_dir / "scontrol"
    fake.write_text(f'#!/bin/sh\necho "$@" > {calls}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return calls


def test_an_acknowledged_request_is_passed_over_when_the_job_runs_again(run_dir):
    _request(run_dir, rid="old")
    atomic_write_json(stopped_file(run_dir), {"request_id": "old", "step": 20})
    watch = control.watch_from_env()
    assert watch.request() is None  # a job requeued by hand after its stop goes on
    _request(run_dir, rid="new")
    assert watch.request()["id"] == "new"


def test_a_request_that_does_not_parse_still_asks_to_stop(run_dir):
    path = stop_request_file(run_dir)
    path.parent.mkdir(parents=True)
    path.write_text('{"id": "x", "by"')
    assert control.watch_from_env().request() == {"id": None, "by": None, "at": None, "unreadable": True}


def test_a_fast_loop_stats_the_request_files_about_once_a_second(run_dir, monkeypatch):
    monkeypatch.setenv("HPCX_CONTROL_INTERVAL_S", "1")
    clock = [1000.0]
    monkeypatch.setattr(control.time, "monotonic", lambda: clock[0])
    state = preempt.install()
    looked = []
    real_stat = os.stat
    monkeypatch.setattr(control.os, "stat", lambda p, *a, **k: looked.append(p) or real_stat(p, *a, **k))
    try:
        for step in range(1, 2001):  # 2,000 boundaries in 0.99 s
            clock[0] += 0.99 / 2000
            assert not preempt.should_stop(state, step=step, every=1)
        assert len(looked) == 1
        _request(run_dir)
        clock[0] += 0.02
        assert preempt.should_stop(state, step=2001)  # the next look, a second after the first, sees it
        assert [p for p in looked if str(p).endswith(".json")] == [stop_request_file(run_dir)] * 2
    finally:
        state.uninstall()


def test_between_every_boundaries_nothing_is_looked_at(run_dir, state, monkeypatch):
    _request(run_dir)
    looked = []
    monkeypatch.setattr(control.os, "stat", lambda p, *a, **k: looked.append(p))
    assert not preempt.should_stop(state, step=5, every=4)
    assert looked == []


def test_the_acknowledgement_says_which_request_who_when_at_which_step_and_which_job(run_dir, monkeypatch):
    # an array task of a requeued job: Slurm's names for it, as `hpcx status` shows the task
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "700")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_JOB_ID", "703")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    watch = control.watch_from_env({"HPCX_RUN_DIR": str(run_dir), "HPCX_TASK_ID": "3"}, interval_s=0)
    request = {"id": "r9", "by": "bob", "at": "2026-12-07T10:00:00+00:00"}
    path = control.acknowledge(watch, request, 41, 4)
    assert path == stopped_file(run_dir, 3)
    doc = json.loads(path.read_text())
    stopped_at = doc.pop("stopped_at")
    when = datetime.datetime.fromisoformat(stopped_at)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert when.utcoffset() == datetime.timedelta(0) and abs((now - when).total_seconds()) < 60
    assert doc == {
        "version": 1,
        "request_id": "r9",
        "requested_by": "bob",
        "requested_at": "2026-12-07T10:00:00+00:00",
        "step": 41,
        "task": 3,
        "ranks": 4,
        "job_id": "700_3",
        "restart": 2,
    }
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID")
    monkeypatch.delenv("SLURM_RESTART_COUNT")
    doc = json.loads(control.acknowledge(watch, request, None, 1).read_text())
    assert (doc["job_id"], doc["restart"], doc["step"]) == ("703", 0, None)  # a plain job: its own id


@pytest.mark.parametrize(
    ("env", "task"),
    [
        ({"HPCX_TASK_ID": "5"}, 5),
        ({"HPCX_TASK_ID": "5", "SLURM_ARRAY_TASK_ID": "1", "HPCX_TASK_OFFSET": "100"}, 5),  # hpcx.run's wins
        ({"SLURM_ARRAY_TASK_ID": "7"}, 7),
        ({"SLURM_ARRAY_TASK_ID": "7", "HPCX_TASK_OFFSET": "1000"}, 1007),  # a later chunk of a sweep
        ({"SLURM_ARRAY_TASK_ID": "7", "HPCX_TASK_OFFSET": "x"}, 7),
        ({"HPCX_TASK_ID": "", "SLURM_ARRAY_TASK_ID": ""}, None),
        ({}, None),
    ],
)
def test_the_task_a_job_is(env, task):
    assert control.task_from_env(env) == task


def test_the_look_interval_comes_from_the_environment_and_requests_that_do_not_parse(run_dir):
    watch = control.watch_from_env({"HPCX_RUN_DIR": str(run_dir), "HPCX_CONTROL_INTERVAL_S": "2.5"})
    assert watch.interval_s == 2.5 and watch.files == (stop_request_file(run_dir),) and watch.task is None
    assert control.watch_from_env({"HPCX_RUN_DIR": str(run_dir)}).interval_s == control.DEFAULT_INTERVAL_S
    unreadable = {"id": None, "by": None, "at": None, "unreadable": True}
    path = stop_request_file(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    for text in ("[1, 2]", "not json", '"a string"'):
        path.write_text(text)
        assert control.read_request(path) == unreadable
    path.write_text('{"id": "r1", "by": "al"}')
    assert control.read_request(path) == {"id": "r1", "by": "al"}
    assert control.read_request(run_dir / "absent.json") == unreadable


def test_a_request_is_looked_at_again_only_after_the_interval(run_dir, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(control.time, "monotonic", lambda: clock[0])
    watch = control.watch_from_env({"HPCX_RUN_DIR": str(run_dir)}, interval_s=1.0)
    assert watch.request() is None  # nothing there: looked at 100.0
    _request(run_dir)
    clock[0] = 100.9
    assert watch.request() is None  # within the interval: not looked at
    clock[0] = 101.0
    assert watch.request()["id"] == "r1"
    clock[0] = 101.5
    assert watch.request() is None
    control.acknowledge(watch, {"id": "r1", "by": "alice"}, 3, 1)
    clock[0] = 102.0
    assert watch.request() is None  # acknowledged: passed over from now on


def test_a_tasks_watch_goes_on_to_the_whole_runs_request_past_a_missing_or_answered_one(run_dir):
    env = {"HPCX_RUN_DIR": str(run_dir), "HPCX_TASK_ID": "2", "HPCX_CONTROL_INTERVAL_S": "5"}
    watch = control.watch_from_env(env, interval_s=0)
    assert watch.interval_s == 0  # the caller's interval wins over the environment's
    _request(run_dir, None, by="carol", rid="whole")
    assert watch.request()["id"] == "whole"  # the task's own file does not exist: the run's is next
    _request(run_dir, 2, by="dave", rid="mine")
    assert watch.request()["id"] == "mine"  # the task's own comes first
    control.acknowledge(watch, {"id": "mine", "by": "dave"}, 7, 1)
    assert watch.request()["id"] == "whole"  # answered: passed over, the run's still asks
    assert watch.request()["id"] == "whole"  # and again, the answered one now known without reading it
