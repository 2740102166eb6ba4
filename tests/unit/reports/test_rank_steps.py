"""A rank run by several job steps (``srun prep; srun train``, or two sruns at once): each step writes its own
rank file, and the report combines them the way Slurm's job line sums its steps, from the real record writer's
files. Before, both steps appended to one file and the report kept only the last step."""

import json
from pathlib import Path

import pytest

from hpcx.reports import build_report
from hpcx.reports.ranks import combine_steps, end_t, summarize_rank, summarize_ranks
from hpcx.rundir.layout import process_file
from hpcx.rundir.records import RecordWriter, rank_file, rank_files
from hpcx.site import schema
from tests.unit.reports.test_report import make_run

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "report-schema.json").read_text())


def write_step(
    profile: Path,
    rank: int,
    step: str | None,
    *,
    t0: float,
    wall_s: float,
    rss_mb: float,
    cpu_s: float,
    attempt: int = 0,
    exit_code: int | None = 0,
    node: str = "n1",
) -> None:
    """One step of a rank as hpcx.run writes it: start, a sample a second (flat RSS, steady CPU), end."""
    w = RecordWriter(rank_file(profile, rank, step))
    w.write(
        {
            "type": "start",
            "t": t0,
            "rank": rank,
            "node": node,
            "step": step,
            "attempt": attempt,
            "cpus_allowed": 2,
        }
    )
    for i in range(1, int(wall_s) + 1):
        w.write(
            {
                "type": "sample",
                "t": t0 + i,
                "rank": rank,
                "rss_mb": rss_mb,
                "hwm_mb": rss_mb,
                "cpu_s": cpu_s * i / wall_s,
            }
        )
    if exit_code is not None:
        w.write(
            {
                "type": "end",
                "t": t0 + wall_s,
                "rank": rank,
                "exit_code": exit_code,
                "wall_s": wall_s,
                "cpu_s": cpu_s,
                "peak_rss_mb": rss_mb,
                "sampler_cpu_s": 0.01,
                "sampler_rss_mb": 30.0,
            }
        )
    w.close()


def test_file_names_per_step():
    assert rank_file("p", 3).name == "rank-00003.jsonl"
    assert rank_file("p", 3, "1").name == "rank-00003.step-1.jsonl"
    assert rank_file("p", 3, "a/b").name == "rank-00003.step-a_b.jsonl"


def test_steps_one_after_another_add_up(tmp_path):
    run = make_run(tmp_path, cpus=2)
    profile = run.dir / "profile"
    write_step(profile, 0, "0", t0=1000.0, wall_s=20, rss_mb=100.0, cpu_s=10.0)  # prep
    write_step(profile, 0, "1", t0=1030.0, wall_s=60, rss_mb=700.0, cpu_s=100.0)  # train
    write_step(profile, 1, "1", t0=1030.0, wall_s=60, rss_mb=650.0, cpu_s=90.0)  # train only
    assert {r: [p.name for p in ps] for r, ps in rank_files(profile).items()} == {
        0: ["rank-00000.step-0.jsonl", "rank-00000.step-1.jsonl"],
        1: ["rank-00001.step-1.jsonl"],
    }
    doc = build_report(run)
    assert schema.validate(json.loads(json.dumps(doc)), SCHEMA) == []
    r0, r1 = doc["ranks"]
    assert (r0["wall_s"], r0["cpu_s"], r0["peak_rss_mb"], r0["exit_code"]) == (80.0, 110.0, 700.0, 0)
    assert r0["step"] is None and [s["step"] for s in r0["steps"]] == ["0", "1"]
    assert [s["peak_rss_mb"] for s in r0["steps"]] == [100.0, 700.0] and r0["samples"] == 80
    assert r0["start_t"] == 1000.0 and r0["finished"]
    assert (r1["step"], r1["wall_s"], "steps" in r1) == ("1", 60.0, False)  # one step: as it was
    # The timeline: step 0's RSS, nothing between the steps, then step 1's; CPU time keeps step 0's 10 s.
    tl = {t: (rss, cpu) for t, rss, cpu in r0["timeline"]}
    assert tl[10.0] == (100.0, 5.0) and tl[50.0] == (700.0, pytest.approx(10.0 + 100.0 * 20 / 60, abs=1e-3))
    assert doc["summary"]["mem_peak_mb"] == pytest.approx(1350.0)  # node n1: 700 + 650


def test_concurrent_steps_count_their_time_once_and_their_memory_together(tmp_path):
    run = make_run(tmp_path, cpus=2)
    profile = run.dir / "profile"
    write_step(profile, 0, "0", t0=1000.0, wall_s=40, rss_mb=300.0, cpu_s=40.0)
    write_step(profile, 0, "1", t0=1010.0, wall_s=40, rss_mb=200.0, cpu_s=20.0, exit_code=3)
    (r0,) = build_report(run)["ranks"]
    assert r0["wall_s"] == 50.0 and r0["cpu_s"] == 60.0  # 1000..1050, not 80 s
    assert r0["peak_rss_mb"] == 500.0  # both resident at once
    assert r0["exit_code"] == 3 and r0["finished"]
    (combined,) = summarize_ranks(profile)
    assert len(combined["steps"]) == 2 and end_t(combined) == 1050.0
    # every step's samples, at the moments either was sampled (1..40 s and 11..50 s on the rank's clock)
    assert [p[0] for p in combined["timeline"]] == [float(i) for i in range(1, 51)]
    assert combined["samples"] == 80


def test_a_requeued_attempt_leaves_out_the_step_files_of_the_attempt_before(tmp_path):
    run = make_run(tmp_path)
    profile = run.dir / "profile"
    write_step(profile, 0, "0", t0=1000.0, wall_s=30, rss_mb=100.0, cpu_s=10.0, exit_code=143)
    write_step(profile, 0, "1", t0=1040.0, wall_s=30, rss_mb=900.0, cpu_s=25.0, exit_code=143)
    # Attempt 1 numbers its steps from 0 again and appends to step 0's file; it never reaches a step 1.
    write_step(profile, 0, "0", t0=2000.0, wall_s=20, rss_mb=250.0, cpu_s=15.0, attempt=1)
    (r0,) = build_report(run)["ranks"]
    assert (r0["attempt"], r0["start_t"], r0["wall_s"], r0["peak_rss_mb"]) == (1, 2000.0, 20.0, 250.0)
    assert "steps" not in r0
    assert [(r["attempt"], r["start_t"]) for r in summarize_ranks(profile)] == [(1, 2000.0)]
    # attempt 0's traced calls, measured at 2 us each, add nothing to attempt 1's tracing cost
    for pid, t, calls in ((11, 1060.0, 500_000), (12, 2019.0, 1000)):
        w = RecordWriter(process_file(profile, "comm", 0, pid))
        entry = {
            "lib": "mpi",
            "call": "Allreduce",
            "bucket": 8,
            "ranks": 1,
            "calls": calls,
            "bytes": 8,
            "seconds": 0.1,
        }
        w.write(
            {
                "type": "comm",
                "t": t,
                "rank": 0,
                "pid": pid,
                "wall_s": 19.0,
                "seconds": 0.1,
                "entries": [entry],
                "cost_us": {"mpi": 2.0},
            }
        )
        w.close()
    profiler = build_report(run)["profiler"]
    assert profiler["comm_calls"] == 1000 and profiler["comm_added_s"] == pytest.approx(1000 * 2.0 / 1e6)


def test_a_step_still_running_leaves_the_rank_unfinished(tmp_path):
    run = make_run(tmp_path)
    profile = run.dir / "profile"
    write_step(profile, 0, "0", t0=1000.0, wall_s=10, rss_mb=100.0, cpu_s=5.0)
    write_step(profile, 0, "1", t0=1020.0, wall_s=10, rss_mb=100.0, cpu_s=5.0, exit_code=None)
    (r0,) = build_report(run)["ranks"]
    assert not r0["finished"] and r0["exit_code"] is None and r0["wall_s"] == 20.0  # to step 1's last sample


def test_a_killed_step_followed_by_another_is_over_and_its_memory_is_not_carried(tmp_path):
    """prep killed (kill -9, OOM: no end record) at 900 MB, then train at 700 MB: the rank's peak is 900, not
    900 + 700, and the rank is finished once train is; its time on the clock runs to train's end."""
    profile = tmp_path / "profile"
    write_step(profile, 0, "0", t0=1000.0, wall_s=20, rss_mb=900.0, cpu_s=10.0, exit_code=None)
    write_step(profile, 0, "1", t0=1030.0, wall_s=60, rss_mb=700.0, cpu_s=50.0)
    (r0,) = summarize_ranks(profile)
    assert r0["peak_rss_mb"] == 900.0 and max(p[1] for p in r0["timeline"]) == 900.0
    assert r0["finished"] and r0["exit_code"] == 0 and r0["wall_s"] == 80.0
    assert end_t(r0) == 1090.0  # the last step's end, not start + wall (which leaves out the 10 s gap)


def _part(start_t, attempt, end_t=None, samples=()):
    """One step's summary from hand-made records: a start (none when ``start_t`` is None), samples at the
    given times (RSS the time in MB), an end."""
    records = [{"type": "start", "t": start_t, "rank": 0, "attempt": attempt}] if start_t is not None else []
    records += [{"type": "sample", "t": t, "rank": 0, "rss_mb": t, "cpu_s": 0.0} for t in samples]
    if end_t is not None:
        records.append(
            {
                "type": "end",
                "t": end_t,
                "exit_code": 0,
                "wall_s": end_t - start_t,
                "cpu_s": 0.0,
                "peak_rss_mb": max(samples, default=0.0),
            }
        )
    return summarize_rank(records)


def test_a_ranks_steps_combine_into_the_last_attempt_in_start_order():
    combined = combine_steps(
        [
            _part(20.0, 1, 30.0, [25.0]),
            _part(5.0, 0, 9.0, [6.0]),
            _part(10.0, 1, 19.0, [12.0]),
            _part(None, 0, None, [1.0]),
        ]
    )
    assert [s["start_t"] for s in combined["steps"]] == [10.0, 20.0]
    assert combined["start_t"] == 10.0 and end_t(combined) == 30.0 and combined["finished"]
    assert [p[:2] for p in combined["timeline"]] == [[2.0, 12.0], [15.0, 25.0]] and combined["samples"] == 2
    v1 = summarize_rank([{"v": 1, "type": "start", "t": 30.0, "rank": 0}])  # version 1 starts name no attempt
    assert len(combine_steps([v1, _part(40.0, 0, 41.0)])["steps"]) == 2
    unfinished = combine_steps([_part(10.0, None, 19.0, [12.0]), _part(20.0, 0, None, [25.0])])
    assert not unfinished["finished"] and unfinished["exit_code"] is None and len(unfinished["steps"]) == 2
    one = _part(10.0, 0, 19.0, [12.0])
    assert combine_steps([one]) is one and end_t(one) == 19.0 and "steps" not in one  # one step: as it was
    late_end_first = combine_steps([_part(10.0, 0, 40.0), _part(20.0, 0, 30.0)])
    assert end_t(late_end_first) == 40.0  # the step that ended last, whatever its start


def test_a_step_file_without_a_start_is_no_step_of_its_rank(tmp_path):
    """A file whose start record was lost names no rank: the report leaves it out, and a rank whose other
    step has its start is that step alone."""
    startless = RecordWriter(rank_file(tmp_path, 0, "0"))
    startless.write({"type": "sample", "t": 1.0, "rank": 0, "rss_mb": 1.0, "cpu_s": 0.0})
    startless.close()
    assert summarize_ranks(tmp_path) == []
    write_step(tmp_path, 0, "1", t0=20.0, wall_s=2, rss_mb=5.0, cpu_s=1.0)
    (r0,) = summarize_ranks(tmp_path)
    assert (r0["step"], r0["start_t"], r0["samples"], "steps" in r0) == ("1", 20.0, 2, False)
