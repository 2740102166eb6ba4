"""The dashboard's curve refresh reads only what a metrics file gained since the page's cursor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcx.rundir.layout import metrics_dir, rank_file
from hpcx.ui import series


def record(step: int, attempt: int = 0, **values) -> str:
    return json.dumps(
        {"type": "metric", "t": 1.0 + step, "rank": 0, "attempt": attempt, "step": step, **values}
    )


def write(path: Path, lines: list[str], mode: str = "w") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "r1"


def test_first_refresh_reads_every_point_and_the_cursor_ends_at_the_last_whole_line(run_dir):
    path = rank_file(metrics_dir(run_dir), 0)
    write(path, [record(1, loss=2.0, acc=0.1), record(2, loss=1.5)])
    out = series.refresh(series.files_of(run_dir, None), {})
    assert out["series"] == {"": {"loss": [[1, 2.0], [2, 1.5]], "acc": [[1, 0.1]]}}
    assert out["cursor"] == {"": path.stat().st_size}
    assert out["reset"] == []


def test_a_refresh_gets_only_the_new_points_and_a_file_that_did_not_grow_is_not_read(run_dir, monkeypatch):
    path = rank_file(metrics_dir(run_dir), 0)
    write(path, [record(s, loss=1.0 / s) for s in range(1, 101)])
    first = series.refresh(series.files_of(run_dir, None), {})
    write(path, [record(101, loss=0.5), record(102, loss=0.25)], mode="a")
    reads: list[tuple[int, int]] = []
    real = series._read
    monkeypatch.setattr(series, "_read", lambda p, o, s: reads.append((o, s)) or real(p, o, s))
    second = series.refresh(series.files_of(run_dir, None), first["cursor"])
    assert second["series"] == {"": {"loss": [[101, 0.5], [102, 0.25]]}}
    assert reads == [(first["cursor"][""], path.stat().st_size)]  # from the old end, not from 0
    third = series.refresh(series.files_of(run_dir, None), second["cursor"])
    assert third == {"cursor": second["cursor"], "series": {}, "reset": []}
    assert len(reads) == 1  # the file did not grow: stat'ed, never opened


def test_a_torn_last_line_waits_for_the_next_refresh(run_dir):
    path = rank_file(metrics_dir(run_dir), 0)
    write(path, [record(1, loss=1.0)])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(record(2, loss=0.5)[:20])  # the job is half-way through writing step 2
    out = series.refresh(series.files_of(run_dir, None), {})
    assert out["series"][""]["loss"] == [[1, 1.0]]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(record(2, loss=0.5)[20:] + "\n")
    again = series.refresh(series.files_of(run_dir, None), out["cursor"])
    assert again["series"][""]["loss"] == [[2, 0.5]]


def test_a_replaced_file_is_read_again_from_the_start_and_says_reset(run_dir):
    path = rank_file(metrics_dir(run_dir), 0)
    write(path, [record(s, loss=1.0) for s in range(1, 50)])
    cursor = series.refresh(series.files_of(run_dir, None), {})["cursor"]
    write(path, [record(1, loss=9.0)])  # shorter than the cursor: a new file
    out = series.refresh(series.files_of(run_dir, None), cursor)
    assert out["reset"] == [""]
    assert out["series"][""]["loss"] == [[1, 9.0]]


def test_values_that_are_not_finite_numbers_and_other_records_are_left_out(run_dir):
    path = rank_file(metrics_dir(run_dir), 0)
    lines = [
        record(1, loss="nan", acc=0.5, flag=True, note="text"),
        json.dumps({"type": "progress", "t": 1.0, "total_steps": 10}),
        json.dumps({"type": "metric", "t": 2.0, "step": 2.5, "loss": 1.0}),  # not a whole step
        "not json",
        record(3, loss="inf", acc=0.75, epoch=2),
    ]
    write(path, lines)
    out = series.refresh(series.files_of(run_dir, None), {})
    assert out["series"] == {"": {"acc": [[1, 0.5], [3, 0.75]], "epoch": [[3, 2.0]]}}
    assert isinstance(out["series"][""]["epoch"][0][1], float)


def test_a_requeued_attempt_relogs_steps_in_file_order_for_the_page_to_replace(run_dir):
    path = rank_file(metrics_dir(run_dir), 0)
    write(
        path,
        [
            record(1, loss=3.0),
            record(2, loss=2.0),
            record(2, attempt=1, loss=1.9),
            record(3, attempt=1, loss=1.0),
        ],
    )
    out = series.refresh(series.files_of(run_dir, None), {})
    assert out["series"][""]["loss"] == [[1, 3.0], [2, 2.0], [2, 1.9], [3, 1.0]]


def test_a_sweep_reads_the_tasks_asked_for_each_under_its_own_key(run_dir):
    for task in (0, 1, 2):
        write(rank_file(metrics_dir(run_dir, task), 0), [record(1, loss=float(task))])
    assert series.known_tasks(run_dir) == [0, 1, 2]
    out = series.refresh(series.files_of(run_dir, [2, 0, 2]), {"0": 0})
    assert out["series"] == {"0": {"loss": [[1, 0.0]]}, "2": {"loss": [[1, 2.0]]}}
    assert set(out["cursor"]) == {"0", "2"}


def test_a_task_that_has_not_logged_yet_gets_offset_zero_and_no_points(run_dir):
    out = series.refresh(series.files_of(run_dir, [5]), {"5": 123})
    assert out == {"cursor": {"5": 0}, "series": {}, "reset": []}


@pytest.mark.parametrize("bad", [-5, "12", True, 1.5, None])
def test_a_cursor_offset_that_is_not_a_positive_whole_number_reads_from_the_start(run_dir, bad):
    write(rank_file(metrics_dir(run_dir), 0), [record(1, loss=1.0)])
    out = series.refresh(series.files_of(run_dir, None), {"": bad})
    assert out["series"][""]["loss"] == [[1, 1.0]]


def test_at_most_max_tasks_are_read_in_one_refresh(run_dir):
    files = series.files_of(run_dir, range(series.MAX_TASKS + 10))
    assert list(files) == [str(t) for t in range(series.MAX_TASKS)]


def test_a_task_that_has_not_logged_does_not_hide_the_tasks_after_it(run_dir):
    write(rank_file(metrics_dir(run_dir, 1), 0), [record(1, loss=1.0)])
    out = series.refresh(series.files_of(run_dir, [0, 1]), {})
    assert out["series"] == {"1": {"loss": [[1, 1.0]]}} and out["cursor"]["0"] == 0


def test_one_refresh_reads_at_most_first_read_bytes_and_the_next_goes_on_from_there(run_dir, monkeypatch):
    path = rank_file(metrics_dir(run_dir), 0)
    lines = [record(s, loss=float(s)) for s in range(1, 101)]
    write(path, lines)
    monkeypatch.setattr(series, "FIRST_READ_BYTES", len(lines[0]) * 10)
    first = series.refresh(series.files_of(run_dir, None), {})
    got = first["series"][""]["loss"]
    assert 5 <= len(got) < 100 and got == [[s, float(s)] for s in range(1, len(got) + 1)]
    cursor, steps = first["cursor"], len(got)
    while cursor[""] < path.stat().st_size:
        more = series.refresh(series.files_of(run_dir, None), cursor)
        steps_before = steps
        steps += len(more["series"][""]["loss"])
        assert more["series"][""]["loss"][0] == [steps_before + 1, float(steps_before + 1)]
        cursor = more["cursor"]
    assert steps == 100
