"""Logged metric records read as series (hpcx.runs.metric_points): each step from the latest attempt that logged
it, the record's own keys never taken for metrics, non-finite values as hpcx.runtime.log writes them."""

from __future__ import annotations

import math

from hpcx.runs.metric_points import RECORD_KEYS, Point, is_step, latest_per_step, logged_number


def _m(step, attempt=0, t=1.0, **values):
    return {"v": 2, "type": "metric", "t": t, "rank": 0, "attempt": attempt, "step": step, **values}


def test_each_step_keeps_its_latest_attempts_value_whatever_the_file_order():
    records = [
        _m(1, 0, 10.0, loss=1.0),
        _m(2, 0, 11.0, loss=0.9),
        _m(2, 1, 50.0, loss=0.8),  # the requeued attempt logs step 2 again
        _m(3, 1, 51.0, loss=0.7),
        _m(3, 0, 12.0, loss=5.0),  # an older attempt's record appended late: it does not win
        _m(3, 1, 52.0, loss=0.6),  # within one attempt the later record wins
    ]
    assert latest_per_step(records) == {
        "loss": [Point(1, 1.0, 10.0), Point(2, 0.8, 50.0), Point(3, 0.6, 52.0)]
    }


def test_only_metric_records_with_a_whole_step_and_only_metric_keys_count():
    records = [
        {"type": "progress", "t": 1.0, "total_steps": 9, "step": 0},
        _m(True, loss=1.0),  # a bool is no step
        _m(1.5, loss=1.0),
        {
            "type": "metric",
            "step": 4,
            "attempt": "x",
            "loss": 2.0,
            "acc": True,
            "note": "n",
            "total_steps": 8,
        },
        _m(5, 0, 3.0, lr=0.1, total_steps=8),
        {"type": "metric", "step": 6, "loss": 3.0},  # no attempt: the first (0)
        _m(6, 0, 4.0, loss=3.5),  # the same attempt, later: it wins
    ]
    got = latest_per_step(records)
    assert list(got) == ["loss", "lr"]  # in the order first logged; acc (a bool) and note are no numbers
    assert got["loss"] == [Point(4, 2.0, 0.0), Point(6, 3.5, 4.0)]  # no time: 0; a bad attempt counts as 0
    later = latest_per_step([records[3], _m(4, 0, 5.0, loss=2.5)])
    assert later["loss"] == [
        Point(4, 2.5, 5.0)
    ]  # the bad attempt was the first attempt's: the later record wins
    assert got["lr"] == [Point(5, 0.1, 3.0)]
    assert RECORD_KEYS == {
        "v",
        "type",
        "t",
        "rank",
        "attempt",
        "step",
        "total_steps",
        "trial",
    }  # trial: hpcx tune


def test_logged_numbers():
    assert logged_number(3) == 3.0 and isinstance(logged_number(3), float) and logged_number(0.5) == 0.5
    assert math.isnan(logged_number("nan")) and logged_number("NaN") != logged_number("NaN")
    assert (
        logged_number("inf") == math.inf
        and logged_number("+inf") == math.inf
        and logged_number("-inf") == -math.inf
    )
    assert logged_number(True) is None and logged_number("1.5") is None and logged_number(None) is None
    assert is_step(0) and is_step(7) and not is_step(True) and not is_step(1.0) and not is_step("1")
