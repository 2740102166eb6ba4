"""The record format's rules on hand-made profile directories, as `hpcx report` and `hpcx status` read them:
file names per rank, node and step, what a writer makes visible when, which lines a reader keeps, the I/O
totals of a requeued job, the merge of a rank's and a node's files, energy and its reasons, region spans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcx.reports.ranks import summarize_rank, summarize_ranks
from hpcx.reports.timelines import regions
from hpcx.rundir.records import (
    COMBINE_RULE,
    RecordWriter,
    current_attempt,
    energy_windows,
    node_file,
    node_series,
    rank_file,
    rank_files,
    read_io_totals,
    read_nodes,
    read_records,
    region_spans,
)


def _write(path: Path, *records: dict) -> Path:
    writer = RecordWriter(path)
    for record in records:
        writer.write(record)
    writer.close()
    return path


# --- file names --------------------------------------------------------------------------------------------


def test_file_names_keep_path_separators_out(tmp_path):
    assert rank_file(tmp_path, 7) == tmp_path / "rank-00007.jsonl"
    assert rank_file(tmp_path, 7, "3/1") == tmp_path / "rank-00007.step-3_1.jsonl"
    assert node_file(tmp_path, "n/1") == tmp_path / "node-n_1.jsonl"
    assert node_file(tmp_path, "n1", "batch") == tmp_path / "node-n1.step-batch.jsonl"
    assert node_file(tmp_path, "n1", "0/2") == tmp_path / "node-n1.step-0_2.jsonl"


def test_rank_files_are_found_per_rank_with_their_steps_and_nothing_else(tmp_path):
    for name in (
        "rank-00000.jsonl",
        "rank-00000.step-0.jsonl",
        "rank-00000.step-1.jsonl",
        "rank-00012.jsonl",
        "rank-abc.jsonl",
        "rank-00001.jsonl.bak",
        "io-rank-00000-p1.jsonl",
        "regions-rank-00000.jsonl",
        "node-n1.jsonl",
    ):
        (tmp_path / name).write_text("")
    assert rank_files(tmp_path) == {
        0: [tmp_path / n for n in ("rank-00000.jsonl", "rank-00000.step-0.jsonl", "rank-00000.step-1.jsonl")],
        12: [tmp_path / "rank-00012.jsonl"],
    }


# --- writing and reading lines ---------------------------------------------------------------------------


def test_each_line_is_visible_at_once_or_at_the_next_sync(tmp_path):
    live, batched = tmp_path / "live.jsonl", tmp_path / "batched.jsonl"
    w1, w2 = RecordWriter(live), RecordWriter(batched, line_flush=False)
    w1.write({"type": "sample", "t": 1.0})
    w2.write({"type": "sample", "t": 1.0})
    assert live.read_text() == '{"v":2,"type":"sample","t":1.0}\n'  # what `hpcx status` reads meanwhile
    assert batched.read_text() == ""
    w2.sync()
    assert batched.read_text() == '{"v":2,"type":"sample","t":1.0}\n'
    w1.close()
    w2.write({"type": "end", "t": 2.0})
    w2.close()
    assert [r["type"] for r in read_records(batched)] == ["sample", "end"]


def test_a_writer_in_a_new_directory_on_an_empty_file_starts_at_its_first_byte(tmp_path):
    path = tmp_path / "profile" / "deep" / "rank-00000.jsonl"
    _write(path)  # a writer that wrote nothing
    _write(path, {"type": "start", "t": 1.0})
    assert path.read_text() == '{"v":2,"type":"start","t":1.0}\n'


def test_a_writer_after_a_torn_tail_starts_a_new_line(tmp_path):
    path = tmp_path / "rank-00000.jsonl"
    path.write_text('{"v":2,"type":"start","t":1.0}\n{"v":2,"type":"sam')
    _write(path, {"type": "start", "t": 2.0})
    assert path.read_text().splitlines()[1:] == ['{"v":2,"type":"sam', '{"v":2,"type":"start","t":2.0}']


def test_the_reader_keeps_only_records_of_versions_it_reads(tmp_path):
    path = tmp_path / "rank-00000.jsonl"
    path.write_text(
        "\n".join(
            [
                '{"v":1,"type":"start","t":1.0}',
                '{"v":2,"type":"sample","t":2.0}',
                '{"v":3,"type":"sample","t":3.0}',
                '{"type":"sample","t":4.0}',
                "[1, 2]",
                "42",
                "",
                '{"v":2,"type":"end","t":5.0}',
            ]
        )
        + "\n"
    )
    assert [(r["v"], r["t"]) for r in read_records(path)] == [(1, 1.0), (2, 2.0), (2, 5.0)]


def test_a_torn_line_that_holds_no_record_start_is_skipped(tmp_path):
    path = tmp_path / "rank-00000.jsonl"
    path.write_text(
        '{"v":2,"type":"sample","t":1.0,"x":"{\\"v\\":2,"}\n{"v":2,"ty\n{"v":2,"type":"end","t":2.0}\n'
    )
    assert [r["t"] for r in read_records(path)] == [1.0, 2.0]
    glued = tmp_path / "glued.jsonl"  # two record starts after the torn part: the first whole one is read
    glued.write_text('{"v":2,"type":"sa{"v":2,"type":"x"{"v":2,"type":"start","t":3.0}\n')
    assert [r["t"] for r in read_records(glued)] == [3.0]


# --- I/O totals --------------------------------------------------------------------------------------------


def test_io_totals_sum_a_ranks_processes_and_leave_out_an_earlier_attempt(tmp_path):
    io = {"type": "io", "rank": 0}
    _write(
        tmp_path / "io-rank-00000-p1.jsonl",
        {**io, "t": 10.0, "read": {"bytes": 1, "seconds": 0.1, "calls": 1}},
        {**io, "t": 20.0, "read": {"bytes": 100, "seconds": 1.0, "calls": 2}, "write": {"bytes": 5}},
    )
    _write(
        tmp_path / "io-rank-00000-p2.jsonl",
        {**io, "t": 21.0, "read": {"bytes": 50, "seconds": 0.5, "calls": 3}},
    )
    _write(tmp_path / "io-rank-00001-p1.jsonl", {"type": "io", "rank": 1, "t": 5.0, "read": {"bytes": 7}})
    _write(tmp_path / "io-rank-00000-p0.jsonl", {"type": "start", "rank": 0, "t": 5.0})  # no io record yet
    totals = read_io_totals(tmp_path)
    assert totals[0] == {
        "read": {"bytes": 150, "seconds": 1.5, "calls": 5},
        "write": {"bytes": 5, "seconds": 0.0, "calls": 0},
    }
    assert totals[1]["read"] == {"bytes": 7, "seconds": 0.0, "calls": 0} and sorted(totals) == [0, 1]
    # rank 0's last attempt started at t=20.5: process p1 (last written at 20) belongs to the attempt before
    requeued = read_io_totals(tmp_path, since={0: 20.5})
    assert requeued[0]["read"] == {"bytes": 50, "seconds": 0.5, "calls": 3} and 1 in requeued


def test_a_file_belongs_to_the_last_attempt_unless_it_ended_before_it_started():
    assert current_attempt(None, 0, 1.0) and current_attempt({1: 5.0}, 0, 1.0)
    assert current_attempt({0: 5.0}, 0, 5.0) and current_attempt({0: 5.0}, 0, 6.0)
    assert not current_attempt({0: 5.0}, 0, 4.9)


# --- one rank ----------------------------------------------------------------------------------------------


def test_a_ranks_summary_is_its_last_attempt():
    records = [
        {"v": 2, "type": "start", "t": 1.0, "rank": 0, "attempt": 0},
        {"v": 2, "type": "sample", "t": 2.0, "rank": 0, "rss_mb": 9.0, "cpu_s": 0.1},
        {"v": 2, "type": "start", "t": 10.0, "rank": 0, "attempt": 1},
        {"v": 2, "type": "source", "t": 10.0, "name": "nvml", "status": "unavailable"},
        {"v": 2, "type": "sample", "t": 11.0, "rank": 0, "rss_mb": 1.0, "cpu_s": 0.2},
        {"v": 2, "type": "sample", "t": 12.0, "rank": 0, "rss_mb": 2.0, "cpu_s": 0.5},
        {
            "v": 2,
            "type": "end",
            "t": 13.0,
            "rank": 0,
            "exit_code": 0,
            "wall_s": 3.0,
            "cpu_s": 0.6,
            "peak_rss_mb": 2.0,
        },
    ]
    rank = summarize_rank(records)
    assert (rank["attempt"], rank["start_t"], rank["exit_code"], rank["finished"]) == (1, 10.0, 0, True)
    assert rank["samples"] == 2 and rank["timeline"] == [[1.0, 1.0, 0.2], [2.0, 2.0, 0.5]]
    unfinished = summarize_rank(records[:2])
    assert (unfinished["finished"], unfinished["exit_code"], unfinished["attempt"]) == (False, None, 0)
    lost = summarize_rank([records[1]])  # a file whose start was lost
    assert (lost["rank"], lost["start_t"], lost["samples"]) == (None, None, 1)


def test_a_files_series_is_its_last_attempt_as_columns():
    records = [
        {"v": 2, "type": "start", "t": 1.0, "node": "n1", "attempt": 0},
        {"v": 2, "type": "sample", "t": 2.0, "node": "n1", "rss_mb": 9.0},
        {"v": 2, "type": "start", "t": 10.0, "node": "n1", "attempt": 1},
        {"v": 2, "type": "source", "t": 10.0, "name": "nvml", "status": "unavailable"},
        {
            "v": 2,
            "type": "sample",
            "t": 11.0,
            "node": "n1",
            "rss_mb": 1.0,
            "gpu": {"util": 5, "deep": {"x": 1}},
            "hosts": ["a"],
        },
        {"v": 2, "type": "sample", "t": 12.0, "node": "n1", "cpu_s": 0.5},
        {"v": 2, "type": "end", "t": 13.0, "node": "n1", "exit_code": 0},
    ]
    node = node_series(records)
    assert node["start"]["attempt"] == 1 and node["end"]["exit_code"] == 0
    assert node["sources"] == {"nvml": records[3]}
    assert node["series"] == {
        "t": [11.0, 12.0],
        "rss_mb": [1.0, None],
        "gpu.util": [5, None],
        "cpu_s": [None, 0.5],
    }
    assert node_series(records[:2])["end"] is None
    assert node_series([records[1]])["start"] == {}  # a file whose start was lost


# --- nodes and energy --------------------------------------------------------------------------------------

RAPL = {"type": "source", "name": "rapl", "status": "measured", "zones": {"0": "package-0", "1": "dram"}}
NVML = {"type": "source", "name": "nvml", "status": "measured", "gpus": [0, 1], "no_energy_counter": [1]}


def _node(start_t, samples, *sources, end_t=None, node="n1"):
    records = [{"type": "start", "t": start_t, "node": node}, *sources, *samples]
    if end_t is not None:
        records.append({"type": "end", "t": end_t})
    return node_series(records)


def _edge(t, package_j, dram_j=None, gpu_j=None):
    rapl = {"package_j": package_j} if dram_j is None else {"package_j": package_j, "dram_j": dram_j}
    sample = {"type": "sample", "t": t, "node": "n1", "rapl": rapl}
    if gpu_j is not None:
        sample["nvml"] = [{"index": 0, "energy_j": gpu_j}, {"index": 1, "energy_j": None}]
    return sample


def test_a_nodes_energy_is_the_counters_difference_over_the_window_with_its_coverage():
    node = _node(
        0.0, [_edge(1.0, 100.0, 10.0, 1000.0), _edge(3.0, 300.0, 14.0, 1500.0)], RAPL, NVML, end_t=4.0
    )
    assert node["energy"]["cpu_package"] == {
        "energy_j": 200.0,
        "window_s": 2.0,
        "method": "counter",
        "coverage": 0.5,
        "status": "measured",
    }
    assert node["energy"]["dram"]["energy_j"] == 4.0 and node["energy"]["gpu0"]["energy_j"] == 500.0
    assert node["energy"]["gpu1"] == {
        "status": "unavailable",
        "reason": "this GPU has no total-energy counter",
    }
    assert node["windows"]["cpu_package"] == [[1.0, 3.0, 200.0]]
    assert node["series"] == {"t": [1.0, 3.0], "rapl.package_j": [100.0, 300.0], "rapl.dram_j": [10.0, 14.0]}


def test_energy_that_cannot_be_measured_says_why():
    bare = _node(0.0, [_edge(1.0, 1.0), _edge(2.0, 2.0)], end_t=3.0)["energy"]
    assert bare == {
        "cpu_package": {"status": "unavailable", "reason": "no RAPL source record"},
        "dram": {"status": "unavailable", "reason": "no RAPL source record"},
        "gpu": {"status": "unavailable", "reason": "no NVML source record"},
    }
    off = {"type": "source", "name": "rapl", "status": "unavailable", "reason": "powercap is not readable"}
    nvml_off = {"type": "source", "name": "nvml", "status": "unavailable"}
    energy = _node(0.0, [], off, nvml_off)["energy"]
    assert energy["cpu_package"]["reason"] == energy["dram"]["reason"] == "powercap is not readable"
    assert energy["gpu"]["reason"] == "no NVML source record"  # unavailable without a reason
    package_only = {**RAPL, "zones": {"0": "package-0"}}
    energy = _node(0.0, [_edge(1.0, 1.0)], package_only)["energy"]
    assert energy["cpu_package"] == {"status": "unavailable", "reason": "fewer than two counter readings"}
    assert energy["dram"] == {"status": "unavailable", "reason": "no dram zone under RAPL"}
    dram_only = {**RAPL, "zones": {"1": "dram"}}
    energy = _node(0.0, [_edge(1.0, 1.0, 1.0), _edge(1.0, 2.0, 2.0)], dram_only)["energy"]
    assert energy["cpu_package"]["reason"] == "no cpu_package zone under RAPL"
    assert energy["dram"] == {"status": "unavailable", "reason": "the counter readings span no time"}


def test_a_node_without_an_end_is_covered_to_its_last_sample():
    node = _node(0.0, [_edge(2.0, 0.0, 0.0), _edge(4.0, 40.0, 4.0)], RAPL)
    assert node["energy"]["cpu_package"]["coverage"] == 0.5  # 2 s of window over a 4 s life
    assert _node(0.0, [], RAPL)["energy"]["cpu_package"]["reason"] == "fewer than two counter readings"


def test_two_steps_on_a_node_count_each_moment_once(tmp_path):
    first = [
        {"type": "start", "t": 0.0, "node": "n1"},
        RAPL,
        _edge(0.0, 0.0, 0.0),
        _edge(10.0, 100.0, 10.0),
        {"type": "end", "t": 10.0},
    ]
    second = [
        {"type": "start", "t": 5.0, "node": "n1"},
        RAPL,
        {"type": "source", "name": "nvml", "status": "measured", "gpus": []},
        _edge(5.0, 50.0, 5.0),
        _edge(15.0, 150.0, 15.0),
        {"type": "end", "t": 15.0},
    ]
    _write(node_file(tmp_path, "n1", "1"), *second)
    _write(node_file(tmp_path, "n1", "0"), *first)
    node = read_nodes(tmp_path)["n1"]
    assert [s["start"]["t"] for s in node["steps"]] == [0.0, 5.0]
    assert node["start"]["t"] == 0.0 and node["end"]["t"] == 15.0
    assert node["energy"]["cpu_package"] == {
        "energy_j": 150.0,
        "window_s": 15.0,
        "method": "derived",
        "coverage": 1.0,
        "status": "measured",
        "steps": 2,
        "rule": COMBINE_RULE,
    }
    assert node["sources"]["nvml"]["status"] == "measured"
    assert node["series"] == {
        "t": [0.0, 5.0, 10.0, 15.0],
        "rapl.package_j": [0.0, 50.0, 100.0, 150.0],
        "rapl.dram_j": [0.0, 5.0, 10.0, 15.0],
    }
    assert [sample["t"] for sample in node["samples"]] == [0.0, 5.0, 10.0, 15.0]


def _rapl_step(tmp_path, step, start_t, readings, end_t):
    edges = [_edge(t, e, 0.0) for t, e in readings]
    _write(
        node_file(tmp_path, "n1", step),
        {"type": "start", "t": start_t, "node": "n1"},
        RAPL,
        *edges,
        {"type": "end", "t": end_t},
    )


def test_three_steps_count_only_the_gaps_the_earlier_ones_left(tmp_path):
    _rapl_step(tmp_path, "0", 0.0, [(0.0, 0.0), (2.0, 20.0)], 2.0)
    _rapl_step(tmp_path, "1", 1.0, [(5.0, 50.0), (9.0, 90.0)], 9.0)  # its edge readings start late
    _rapl_step(tmp_path, "2", 2.5, [(3.0, 30.0), (9.0, 90.0)], 9.0)  # 60 J over 6 s, of which 3..5 is new
    node = read_nodes(tmp_path)["n1"]
    assert node["windows"]["cpu_package"] == [[0.0, 2.0, 20.0], [3.0, 5.0, 20.0], [5.0, 9.0, 40.0]]
    assert node["energy"]["cpu_package"] == {
        "energy_j": 80.0,
        "window_s": 8.0,
        "method": "derived",
        "coverage": round(8 / 9, 4),
        "status": "measured",
        "steps": 3,
        "rule": COMBINE_RULE,
    }


def test_overlapping_steps_merge_their_coverage_for_the_next(tmp_path):
    _rapl_step(tmp_path, "0", 0.0, [(0.0, 0.0), (10.0, 100.0)], 10.0)
    _rapl_step(tmp_path, "1", 1.0, [(5.0, 0.0), (15.0, 100.0)], 15.0)  # adds 10..15
    _rapl_step(tmp_path, "2", 2.0, [(2.0, 0.0), (20.0, 180.0)], 20.0)  # adds only 15..20: 0..15 is covered
    node = read_nodes(tmp_path)["n1"]
    assert node["windows"]["cpu_package"] == [[0.0, 10.0, 100.0], [10.0, 15.0, 50.0], [15.0, 20.0, 50.0]]
    assert node["energy"]["cpu_package"]["energy_j"] == 200.0


def test_a_later_steps_window_before_an_earlier_steps_readings_is_counted_whole(tmp_path):
    _rapl_step(tmp_path, "0", 0.0, [(8.0, 80.0), (10.0, 100.0)], 10.0)  # started first, read late
    _rapl_step(tmp_path, "1", 1.0, [(2.0, 0.0), (4.0, 30.0)], 4.0)
    node = read_nodes(tmp_path)["n1"]
    assert node["windows"]["cpu_package"] == [[2.0, 4.0, 30.0], [8.0, 10.0, 20.0]]
    energy = node["energy"]["cpu_package"]
    assert (energy["energy_j"], energy["window_s"], energy["method"]) == (50.0, 4.0, "counter")
    assert "rule" not in energy and energy["steps"] == 2


def test_a_source_measured_by_any_step_is_measured(tmp_path):
    off = {"type": "source", "name": "nvml", "status": "unavailable", "reason": "no driver"}
    on = {"type": "source", "name": "nvml", "status": "measured", "gpus": []}
    _write(
        node_file(tmp_path, "n1", "0"),
        {"type": "start", "t": 0.0, "node": "n1"},
        on,
        {"type": "end", "t": 1.0},
    )
    _write(node_file(tmp_path, "n1", "1"), {"type": "start", "t": 2.0, "node": "n1"}, off)
    _write(
        node_file(tmp_path, "n2", "0"),
        {"type": "start", "t": 0.0, "node": "n2"},
        off,
        {"type": "end", "t": 1.0},
    )
    _write(
        node_file(tmp_path, "n2", "1"),
        {"type": "start", "t": 2.0, "node": "n2"},
        on,
        {"type": "end", "t": 3.0},
    )
    other = {**off, "reason": "no GPU"}
    _write(node_file(tmp_path, "n3", "0"), {"type": "start", "t": 0.0, "node": "n3"}, off)
    _write(node_file(tmp_path, "n3", "1"), {"type": "start", "t": 2.0, "node": "n3"}, other)
    nodes = read_nodes(tmp_path)
    assert nodes["n1"]["sources"]["nvml"]["status"] == nodes["n2"]["sources"]["nvml"]["status"] == "measured"
    # unavailable in both: the first step's why
    assert nodes["n3"]["sources"]["nvml"]["reason"] == "no driver"
    assert nodes["n1"]["end"] is None and nodes["n2"]["end"]["t"] == 3.0  # a step still running: not over


def test_a_node_is_named_by_its_start_record_else_its_file(tmp_path):
    _write(node_file(tmp_path, "from-file", "0"), {"type": "sample", "t": 3.0})
    _write(node_file(tmp_path, "other"), {"type": "start", "t": 1.0, "node": "n7"})
    _write(node_file(tmp_path, "plain"), {"type": "sample", "t": 3.0})
    nodes = read_nodes(tmp_path)
    assert sorted(nodes) == ["from-file", "n7", "plain"]
    assert nodes["from-file"]["start"] == {} and nodes["from-file"]["steps"][0]["samples"][0]["t"] == 3.0


def test_steps_without_start_times_are_ordered_by_their_first_sample(tmp_path):
    _write(node_file(tmp_path, "n1", "a"), {"type": "sample", "t": 9.0, "node": "n1"})
    _write(node_file(tmp_path, "n1", "b"), {"type": "sample", "t": 4.0, "node": "n1"})
    _write(node_file(tmp_path, "n1", "c"), {"type": "source", "name": "x", "node": "n1"})
    node = read_nodes(tmp_path)["n1"]
    assert [s["samples"][0]["t"] if s["samples"] else None for s in node["steps"]] == [4.0, 9.0, None]


# --- regions and the whole directory -----------------------------------------------------------------------


def test_region_spans_are_placed_in_unix_time_by_their_anchor():
    records = [
        {"type": "regions", "spans": [["early", 0, 1, 0]]},  # before any anchor: cannot be placed
        {"type": "anchor", "t": 100.0, "pid": 42},
        {"type": "regions", "spans": [["fwd", 2_000_000_000, 500_000_000, 1]]},
        {"type": "other"},
    ]
    assert region_spans(records) == [{"name": "fwd", "start_t": 102.0, "dur_s": 0.5, "depth": 1, "pid": 42}]


def test_the_report_reads_ranks_nodes_and_each_ranks_regions_from_all_its_processes(tmp_path):
    _write(rank_file(tmp_path, 3), {"type": "start", "t": 1.0, "rank": 3})
    _write(node_file(tmp_path, "n1"), {"type": "start", "t": 1.0, "node": "n1"})
    anchor = {"type": "anchor", "t": 100.0, "rank": 3, "pid": 1}
    _write(
        tmp_path / "regions-rank-00003-p1.jsonl",
        anchor,
        {"type": "regions", "t": 106.0, "spans": [["b", 5e9, 1, 0]]},
    )
    _write(
        tmp_path / "regions-rank-00003-p2.jsonl",
        {**anchor, "pid": 2},
        {"type": "regions", "t": 102.0, "spans": [["a", 1e9, 1, 0]]},
    )
    assert [r["rank"] for r in summarize_ranks(tmp_path)] == [3] and list(read_nodes(tmp_path)) == ["n1"]
    found = regions(tmp_path)
    assert found is not None
    assert {r["name"]: r["per_rank"] for r in found["regions"]} == {
        name: [{"rank": 3, "calls": 1, "seconds": 1e-9}] for name in ("a", "b")
    }
    assert (summarize_ranks(tmp_path / "none"), read_nodes(tmp_path / "none")) == ([], {})
    assert regions(tmp_path / "none") is None


@pytest.mark.parametrize("line_flush", [True, False])
def test_records_round_trip_whole(tmp_path, line_flush):
    record = {"type": "sample", "t": 1.5, "rank": 0, "note": 'a "quoted" {"v":2,"type":"x"} value'}
    writer = RecordWriter(tmp_path / "r.jsonl", line_flush=line_flush)
    writer.write(record)
    writer.close()
    assert list(read_records(tmp_path / "r.jsonl")) == [{"v": 2, **record}]
    assert json.loads((tmp_path / "r.jsonl").read_text())["v"] == 2


def test_every_gpu_counts_only_its_own_counter_and_sources_may_omit_their_lists():
    nvml = {"type": "source", "name": "nvml", "status": "measured", "gpus": [0, 1]}  # no no_energy_counter
    samples = [
        {
            "type": "sample",
            "t": 1.0,
            "nvml": [{"index": 0, "energy_j": 10.0}, {"index": 1, "energy_j": 1000.0}],
        },
        {"type": "sample", "t": 2.0},  # a sample without GPU readings
        {
            "type": "sample",
            "t": 3.0,
            "nvml": [{"index": 0, "energy_j": 15.5}, {"index": 1, "energy_j": 1250.25}],
        },
    ]
    energy = _node(0.0, samples, {**RAPL, "zones": {}}, nvml, end_t=4.0)["energy"]
    assert (energy["gpu0"]["energy_j"], energy["gpu1"]["energy_j"]) == (5.5, 250.25)
    assert energy["cpu_package"] == {"status": "unavailable", "reason": "no cpu_package zone under RAPL"}
    no_zones = {k: v for k, v in RAPL.items() if k != "zones"}
    no_gpus = {"type": "source", "name": "nvml", "status": "measured"}
    energy = _node(0.0, [], no_zones, no_gpus)["energy"]
    assert energy == {
        "cpu_package": {"status": "unavailable", "reason": "no cpu_package zone under RAPL"},
        "dram": {"status": "unavailable", "reason": "no dram zone under RAPL"},
    }


def test_an_unavailable_gpu_source_gives_its_reason():
    nvml_off = {
        "type": "source",
        "name": "nvml",
        "status": "unavailable",
        "reason": "NVML: driver not loaded",
    }
    assert _node(0.0, [], nvml_off)["energy"]["gpu"] == {
        "status": "unavailable",
        "reason": "NVML: driver not loaded",
    }


def test_short_windows_keep_their_fractions_and_a_repeated_reading_is_skipped():
    edges = [_edge(1.0, 10.0), _edge(1.0, 10.0), _edge(1.25, 10.1234), _edge(1.6234, 10.2469)]
    # the collector's end record came before its last reading: the coverage is capped at 1
    energy = _node(1.0, edges, {**RAPL, "zones": {"0": "package-0"}}, end_t=1.3)["energy"]
    assert energy["cpu_package"] == {
        "energy_j": 0.247,
        "window_s": 0.623,
        "method": "counter",
        "coverage": 1.0,
        "status": "measured",
    }
    no_start = node_series([RAPL, *edges])  # a collector whose start record was lost
    assert no_start["energy"]["cpu_package"]["coverage"] is None  # no lifetime to measure it against


def test_energy_windows_of_one_collector_are_its_own_and_not_prorated():
    assert energy_windows([[(0.0, 0.0), (2.0, 5.0), (3.0, 9.0)]]) == (
        [(0.0, 2.0, 5.0), (2.0, 3.0, 4.0)],
        False,
    )
    assert energy_windows([[(0.0, 0.0), (4.0, 8.0)], [(2.0, 0.0), (6.0, 8.0)]]) == (
        [(0.0, 4.0, 8.0), (4.0, 6.0, 4.0)],
        True,
    )
