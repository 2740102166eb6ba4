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
    rows = [
        {
            "JobID": f"12_{i}",
            "State": s,
            "ExitCode": "0:0",
            "Elapsed": "00:00:01",
            "TotalCPU": "00:00.5",
            "MaxRSS": "",
            "AllocTRES": "cpu=1,mem=1G,node=1",
            "NodeList": "n1",
            "Start": "Unknown",
            "End": "Unknown",
            "Reason": "None",
        }
        for i, s in enumerate(states)
    ]
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


# One job as squeue (raw wait status: the code in the high byte, the signal in the low bits) and as sacct
# (code:signal) lists it, and the exit code status and report show for it.
EXITS = [
    ("COMPLETED", "0", "0:0", 0),
    ("FAILED", "768", "3:0", 3),
    ("FAILED", "11", "0:11", 139),  # killed by a signal: 128 + signal, as the shell says it
    ("FAILED", "265", "1:9", 137),
    ("TIMEOUT", "36608", "0:0", None),  # Slurm ended it: its numbers say nothing of the program
    ("CANCELLED", "15", "0:15", None),
    ("OUT_OF_MEMORY", "32512", "0:125", None),
    ("RUNNING", "0", "0:0", None),  # not ended: no exit code yet
    ("PENDING", "", "0:0", None),
]


def _sacct_row(job_id: str, state: str, code: str) -> dict[str, str]:
    return {
        "JobID": job_id,
        "State": state,
        "ExitCode": code,
        "Elapsed": "00:00:01",
        "TotalCPU": "00:00.5",
        "MaxRSS": "",
        "AllocTRES": "cpu=1,mem=1G,node=1",
        "NodeList": "n1",
        "Start": "Unknown",
        "End": "Unknown",
        "Reason": "None",
    }


def _status_code(lines: str, job_id: str = "7") -> int | None:
    from hpcx.schedulers.base import exit_code_of

    row = summarize_array(job_id, parse_squeue(lines)).to_dict()
    return exit_code_of(row["state"], row["exit_code"])  # what `hpcx status` shows (cli/views.job_states)


@pytest.mark.parametrize("state, wait_status, sacct_code, expected", EXITS)
def test_one_exit_code_from_squeue_sacct_and_the_report(state, wait_status, sacct_code, expected):
    from hpcx.schedulers.base import exit_code_of
    from hpcx.schedulers.slurm import parse_sacct

    assert _status_code(f"7|{state}|None|n1|{wait_status}|0:01|\n") == expected
    (acct,) = parse_sacct(f"7|7|{state}|{sacct_code}|1|n1|None\n")
    assert exit_code_of(acct.state, acct.to_dict()["exit_code"]) == expected
    assert summarize_accounting({"rows": [_sacct_row("7", state, sacct_code)]})["exit_code"] == expected


def test_an_arrays_exit_code_is_the_same_in_status_and_report():
    # A task failed with 3 and Slurm cancelled another (wait status 15): the program's 3 in both.
    lines = "7_0|FAILED|None|n1|768|0:01|\n7_1|CANCELLED|None|n1|15|0:01|\n7_2|COMPLETED|None|n1|0|0:01|\n"
    rows = [
        _sacct_row("7_0", "FAILED", "3:0"),
        _sacct_row("7_1", "CANCELLED", "0:15"),
        _sacct_row("7_2", "COMPLETED", "0:0"),
    ]
    assert _status_code(lines) == summarize_accounting({"rows": rows})["exit_code"] == 3
