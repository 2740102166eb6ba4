"""Parsers for what Slurm prints (unit tests over recorded output; the real thing is in tests/slurm)."""

import json

import pytest

from hpcx.errors import SchedulerError
from hpcx.schedulers.slurm import parse_sacct, parse_sbatch_parsable, parse_squeue_json, parse_squeue_text


def test_sbatch_parsable_with_and_without_cluster():
    assert parse_sbatch_parsable("123\n") == "123"
    assert parse_sbatch_parsable("456;hpcxtest\n") == "456"
    with pytest.raises(SchedulerError, match="instead of a job id"):
        parse_sbatch_parsable("sbatch: error: Batch job submission failed\n")


def test_squeue_json_22_05_raw_wait_status_and_arrays():
    doc = {
        "meta": {},
        "errors": [],
        "jobs": [
            {
                "job_id": 7,
                "job_state": "FAILED",
                "exit_code": 768,
                "state_reason": "NonZeroExitCode",
                "nodes": "n1",
                "start_time": 100,
                "end_time": 130,
            },
            {
                "job_id": 9,
                "array_job_id": 8,
                "array_task_id": 1,
                "job_state": "RUNNING",
                "exit_code": 0,
                "nodes": "n2",
            },
            {"job_id": 10, "job_state": "CANCELLED", "exit_code": 15},
        ],
    }
    states = {s.job_id: s for s in parse_squeue_json(json.dumps(doc))}
    assert states["7"].exit_code == 3 and states["7"].state == "FAILED" and states["7"].elapsed_s == 30
    assert states["8_1"].state == "RUNNING" and not states["8_1"].finished
    assert states["10"].exit_code == 0 and states["10"].finished


def test_squeue_json_newer_wrapped_numbers():
    doc = {
        "jobs": [
            {
                "job_id": 5,
                "job_state": ["COMPLETED"],
                "exit_code": {"status": ["SUCCESS"], "return_code": {"set": True, "number": 0}},
                "start_time": {"set": True, "number": 10},
                "end_time": {"set": True, "number": 12},
                "array_job_id": {"set": True, "number": 0},
                "array_task_id": {"set": False, "number": 0},
            }
        ]
    }
    (state,) = parse_squeue_json(json.dumps(doc))
    assert (state.job_id, state.state, state.exit_code, state.elapsed_s) == ("5", "COMPLETED", 0, 2)


def test_requeued_is_not_finished():
    (state,) = parse_squeue_text("12|REQUEUED|BeginTime|\n")
    assert not state.finished and state.reason == "BeginTime"


def test_squeue_garbage_is_a_clear_error():
    with pytest.raises(SchedulerError, match="not JSON"):
        parse_squeue_json("<html>oops")


def test_sacct_parsable_lines():
    text = "41|41|COMPLETED|0:0|3|n1|None\n42|42|FAILED|3:0|1|n[1-2]|NonZeroExitCode\n43|43|CANCELLED by 0|0:15|5|n1|None\n"
    states = parse_sacct(text)
    assert states["42"].exit_code == 3 and states["42"].nodes == "n[1-2]"
    assert states["43"].state == "CANCELLED" and states["43"].reason is None
