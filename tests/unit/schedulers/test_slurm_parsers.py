"""Parsers for what Slurm prints (unit tests over recorded output; the real thing is in tests/slurm)."""

import pytest

from hpcx.errors import SchedulerError
from hpcx.schedulers.slurm import parse_sacct, parse_sbatch_parsable, parse_squeue


def test_sbatch_parsable_with_and_without_cluster():
    assert parse_sbatch_parsable("123\n") == "123"
    assert parse_sbatch_parsable("456;hpcxtest\n") == "456"
    with pytest.raises(SchedulerError, match="instead of a job id"):
        parse_sbatch_parsable("sbatch: error: Batch job submission failed\n")


def test_squeue_text_raw_wait_status_arrays_and_elapsed():
    text = (
        "7|FAILED|NonZeroExitCode|n1|768|0:30|\n"
        "8_1|RUNNING|None|n2|0|1-02:03:04|\n"
        "8_2|PENDING|JobArrayTaskLimit||0|0:00|\n"
        "10|CANCELLED|None|n1|36608|12:01|\n"
    )
    states = {s.job_id: s for s in parse_squeue(text)}
    assert (states["7"].state, states["7"].exit_code, states["7"].elapsed_s) == ("FAILED", 3, 30)
    assert states["8_1"].elapsed_s == 93784 and not states["8_1"].finished
    assert states["8_2"].reason == "JobArrayTaskLimit" and states["8_2"].nodes is None
    assert states["10"].exit_code == 143 and states["10"].finished


def test_requeued_is_not_finished():
    (state,) = parse_squeue("12|REQUEUED|BeginTime||0|0:05|\n")
    assert not state.finished and state.reason == "BeginTime"


def test_squeue_garbage_is_a_clear_error():
    with pytest.raises(SchedulerError, match="squeue printed a line hpcx cannot read"):
        parse_squeue("<html>oops</html>\n")


def test_array_summary_counts_tasks():
    from hpcx.schedulers.base import summarize_array

    members = parse_squeue(
        "5_0|COMPLETED|None|n1|0|0:01|\n5_1|FAILED|None|n1|256|0:01|\n5_2|RUNNING|None|n2|0|0:01|\n"
    )
    summary = summarize_array("5", members)
    assert summary.state == "RUNNING" and summary.tasks == {"COMPLETED": 1, "FAILED": 1, "RUNNING": 1}
    assert summary.task_states == {0: "COMPLETED", 1: "FAILED", 2: "RUNNING"}


def test_sacct_parsable_lines():
    text = "41|41|COMPLETED|0:0|3|n1|None\n42|42|FAILED|3:0|1|n[1-2]|NonZeroExitCode\n43|43|CANCELLED by 0|0:15|5|n1|None\n"
    states = {s.job_id: s for s in parse_sacct(text)}
    assert states["42"].exit_code == 3 and states["42"].nodes == "n[1-2]"
    assert states["43"].state == "CANCELLED" and states["43"].reason is None
