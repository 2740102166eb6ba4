"""STOPPED: a job or task that ended COMPLETED after acknowledging `hpcx stop` reads STOPPED, with who asked and
the step, in status rows, a sweep's counts and overall state, and the report; a run never stopped costs one stat."""

from __future__ import annotations

import json

from hpcx.reports import build_report
from hpcx.reports.terminal import render_text
from hpcx.rundir.layout import stopped_file
from hpcx.runs.stop import stopped_states
from hpcx.schedulers.base import ended_state
from tests.unit.reports.test_report import make_run, sacct


def _ack(run_dir, task, step=9, by="alice"):
    path = stopped_file(run_dir, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"request_id": "r1", "requested_by": by, "step": step, "stopped_at": "2026-12-07T21:00:00+00:00"}
    path.write_text(json.dumps({**doc, "task": task}))


def test_only_completed_tasks_with_an_acknowledgement_read_stopped(tmp_path):
    states = {0: "COMPLETED", 1: "COMPLETED", 2: "FAILED", 3: "CANCELLED"}
    assert stopped_states(tmp_path, states) == states  # no control/ at all
    _ack(tmp_path, 1)
    _ack(tmp_path, 2)  # failed after acknowledging (its save failed): stays FAILED
    assert stopped_states(tmp_path, states) == {0: "COMPLETED", 1: "STOPPED", 2: "FAILED", 3: "CANCELLED"}
    stopped_file(tmp_path, 0).parent.mkdir(parents=True)
    stopped_file(tmp_path, 0).write_text('{"requested_by": "al')  # torn: not an acknowledgement
    assert stopped_states(tmp_path, {0: "COMPLETED"}) == {0: "COMPLETED"}
    _ack(tmp_path, None)
    assert stopped_states(tmp_path, {None: "COMPLETED"}) == {None: "STOPPED"}


def test_a_stopped_sweep_reads_stopped_overall():
    assert ended_state(["STOPPED", "CANCELLED", "COMPLETED"]) == "STOPPED"
    assert ended_state(["STOPPED", "STOPPED"]) == "STOPPED"
    assert ended_state(["STOPPED", "FAILED", "CANCELLED"]) == "FAILED"
    assert ended_state(["CANCELLED", "COMPLETED"]) == "CANCELLED"


def test_the_report_of_a_stopped_job_says_who_and_at_which_step(tmp_path):
    run = make_run(tmp_path)
    acct = sacct(
        ("42", "COMPLETED", "0:0", "00:10:00", "0:04:48", "", "cpu=1,mem=1G,node=1", "n1", "s", "e", "j")
    )
    assert build_report(run, acct)["summary"]["stopped"] is None
    _ack(run.dir, None, step=120, by="bob")
    doc = build_report(run, acct)
    s = doc["summary"]
    assert (s["state"], s["exit_code"], s["failure"]) == ("STOPPED", 0, None)
    assert s["stopped"] == {"requested_by": "bob", "step": 120, "stopped_at": "2026-12-07T21:00:00+00:00"}
    assert "state=STOPPED" in doc["line"]
    assert "stopped on request of bob at step 120" in render_text(doc)
    failed = sacct(
        ("42", "FAILED", "1:0", "00:10:00", "0:04:48", "", "cpu=1,mem=1G,node=1", "n1", "s", "e", "j")
    )
    assert build_report(run, failed)["summary"]["state"] == "FAILED"  # a stop that then failed is a failure
