"""One rule for one state of many jobs, and one set of the states of a job that has not ended: `hpcx status`
(squeue's lines of an array, a sweep's task counts) and `hpcx report` (sacct's rows) say the same, whichever
order Slurm lists the tasks in. Slurm's own texts go through hpcx's real parsers."""

from __future__ import annotations

import pytest

from hpcx.reports.accounting import summarize_accounting
from hpcx.schedulers.base import ACTIVE_STATES, overall_state, summarize_array
from hpcx.schedulers.slurm import parse_squeue

MIXES = [
    (["PENDING", "SUSPENDED"], "RUNNING"),  # a task holds its nodes
    (["REQUEUED", "COMPLETED"], "PENDING"),  # a task will run again
    (["PENDING", "COMPLETED", "FAILED"], "PENDING"),
    (["RUNNING", "REQUEUED"], "RUNNING"),
    (["TIMEOUT", "FAILED", "COMPLETED"], "FAILED"),
    (["SUSPENDED", "SUSPENDED"], "SUSPENDED"),  # the one state they share
]


def _status(states: list[str]) -> str:
    text = "".join(f"12_{i}|{s}|None|n1|0|0:01|\n" for i, s in enumerate(states))
    return summarize_array("12", parse_squeue(text)).state


def _report(states: list[str]) -> str:
    rows = [{"JobID": f"12_{i}", "State": s, "ExitCode": "0:0", "Elapsed": "00:00:01", "TotalCPU": "00:00.5",
             "MaxRSS": "", "AllocTRES": "cpu=1,mem=1G,node=1", "NodeList": "n1", "Start": "Unknown",
             "End": "Unknown", "Reason": "None"} for i, s in enumerate(states)]  # fmt: skip
    return summarize_accounting({"rows": rows})["state"]


@pytest.mark.parametrize("states, expected", MIXES)
def test_status_and_report_give_one_state_for_a_mix(states, expected):
    for order in (states, states[::-1]):
        counts = {s: order.count(s) for s in order}  # a sweep's tasks, as status counts them
        assert (_status(order), overall_state(counts), _report(order)) == (expected,) * 3


def test_compare_leaves_out_every_job_that_has_not_ended_as_such():
    from hpcx.compare import _left_out_why

    assert {_left_out_why(s) for s in ACTIVE_STATES | {"UNFINISHED"}} == {"still running or pending"}
    assert _left_out_why("TIMEOUT") == "TIMEOUT"
