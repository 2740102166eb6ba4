"""hpcx report without a cluster: runs written with the real record writers and sacct rows as Slurm prints
them; profiled, accounting only (like seff), partial, killed, and neither (a clear error)."""

import json
from pathlib import Path

import pytest

from hpcx.errors import UsageError
from hpcx.reports import build_report, render_text
from hpcx.reports.accounting import duration_s, size_mb, summarize_accounting
from hpcx.rundir.records import RecordWriter, node_file, rank_file
from hpcx.runs import Run

FIELDS = (
    "JobID",
    "State",
    "ExitCode",
    "Elapsed",
    "TotalCPU",
    "MaxRSS",
    "AllocTRES",
    "NodeList",
    "Start",
    "End",
    "JobName",
)


def make_run(
    tmp_path: Path, *, mem_mb: int = 65536, time_min: int = 1440, cpus: int = 1, ntasks: int = 1
) -> Run:
    run = Run("20260101-000000-abcdef", tmp_path / "run")
    run.dir.mkdir(parents=True)
    res = {
        "mem_mb": mem_mb,
        "time_min": time_min,
        "cpus_per_task": cpus,
        "ntasks_per_node": ntasks,
        "nodes": 1,
    }
    manifest = {
        "kind": {"value": "mpi"},
        "command": ["python", "x.py"],
        "resources": {k: {"value": v, "source": "cli"} for k, v in res.items()},
    }
    (run.dir / "manifest.json").write_text(json.dumps(manifest))
    (run.dir / "job.json").write_text(json.dumps({"scheduler": "slurm", "job_id": "42"}))
    return run


def sacct(*rows: tuple[str, ...], finished: bool = True) -> dict:
    return {
        "schema": "hpcx.accounting/1",
        "job_ids": ["42"],
        "queried_at": "2026-01-01T00:00:00+00:00",
        "finished": finished,
        "rows": [dict(zip(FIELDS, r)) for r in rows],
    }


def write_rank(
    run: Run,
    rank: int,
    *,
    wall_s: float,
    peak_mb: float,
    cpu_s: float,
    end: bool = True,
    node: str = "n1",
    exit_code: int = 0,
) -> None:
    w = RecordWriter(rank_file(run.dir / "profile", rank))
    w.write({"type": "start", "t": 1000.0, "rank": rank, "node": node, "attempt": 0, "cpus_allowed": 1})
    for i in range(1, int(wall_s) + 1):
        w.write(
            {
                "type": "sample",
                "t": 1000.0 + i,
                "rank": rank,
                "rss_mb": peak_mb * i / wall_s,
                "hwm_mb": peak_mb * i / wall_s,
                "cpu_s": cpu_s * i / wall_s,
            }
        )
    if end:
        w.write(
            {
                "type": "end",
                "t": 1000.0 + wall_s,
                "rank": rank,
                "exit_code": exit_code,
                "wall_s": wall_s,
                "cpu_s": cpu_s,
                "peak_rss_mb": peak_mb,
            }
        )
    w.close()


def write_comm(run: Run, rank: int, seconds: float) -> None:
    w = RecordWriter(run.dir / "profile" / f"comm-rank-{rank:05d}-p99.jsonl")
    entry = {
        "lib": "mpi",
        "call": "Allreduce",
        "bucket": 2**20,
        "ranks": 4,
        "calls": 100,
        "bytes": 100 * 2**20,
        "seconds": seconds,
        "algbw_gbs": 1.0,
        "busbw_gbs": 1.5,
    }
    w.write(
        {
            "type": "comm",
            "t": 1100.0,
            "rank": rank,
            "format": "hpcx.comm/1",
            "pid": 99,
            "wall_s": 100.0,
            "seconds": seconds,
            "entries": [entry],
        }
    )
    w.close()


def test_sacct_values_as_numbers():
    assert duration_s("1-02:03:04") == 93784 and duration_s("02:10:00") == 7800
    assert duration_s("03:04.500") == 184.5 and duration_s("") is None
    assert size_mb("5242880K") == 5120 and size_mb("5.1G") == pytest.approx(5222.4) and size_mb("") is None


def test_accounting_only_report_like_seff(tmp_path):
    run = make_run(tmp_path, mem_mb=65536, time_min=1440, cpus=8)
    acct = sacct(
        ("42", "COMPLETED", "0:0", "02:10:00", "2:04:48", "", "cpu=8,mem=64G,node=1", "n1", "s", "e", "j"),
        (
            "42.batch",
            "COMPLETED",
            "0:0",
            "02:10:00",
            "2:04:48",
            "5347737K",
            "cpu=8,mem=64G,node=1",
            "n1",
            "s",
            "e",
            "batch",
        ),
    )
    doc = build_report(run, acct)
    s = doc["summary"]
    assert (s["state"], s["state_source"], s["exit_code"], s["ranks"]) == ("COMPLETED", "sacct", 0, 0)
    assert s["elapsed_s"] == 7800 and s["cpu_efficiency_slurm"] == pytest.approx(7488 / (7800 * 8))
    assert s["mem_peak_mb"] == pytest.approx(5222.4, abs=0.1) and s["mem_req_mb"] == 65536
    texts = [a["text"] for a in doc["advice"]]
    assert "requested 64G per node, peak 5.1G: next time --mem=7G" in texts[0]
    assert "time limit 24h00m, used 2h10m: next time -t 2:45:00" in texts[1]
    assert texts[2].startswith("CPU efficiency 12% with 8 CPUs per task: ask for fewer CPUs (-c 2: ")
    assert doc["line"] == (
        "hpcx: job=42 state=COMPLETED elapsed_s=7800 eff_cpu=0.120 mem_peak_mb=5222 mem_req_mb=65536 "
        "energy_kwh=na comm_share=na"
    )
    text = render_text(doc)
    assert doc["line"] in text.splitlines() and "no profile records" in text and "advice:" in text


def test_profiled_report_names_the_slow_rank_and_the_communication_share(tmp_path):
    run = make_run(tmp_path, mem_mb=8192, time_min=60)
    for rank, wall in enumerate([100.0, 100.0, 100.0, 100.0]):
        write_rank(run, rank, wall_s=wall, peak_mb=500.0 + rank, cpu_s=90.0)
        write_comm(run, rank, seconds=[40.0, 40.0, 10.0, 40.0][rank])  # rank 2 computes, the others wait
    doc = build_report(run)  # no accounting.json: a local or unaccounted job
    s = doc["summary"]
    assert (s["state"], s["state_source"], s["ranks"]) == ("COMPLETED", "profile", 4)
    assert s["comm_share"] == pytest.approx(130 / 400) and s["mem_peak_mb"] == pytest.approx(2006)
    assert s["mem_peak_where"] == "node n1, largest rank 3"
    kinds = {a["kind"]: a["text"] for a in doc["advice"]}
    assert kinds["imbalance"].startswith("rank 2 was 50% slower than the median rank (90.0 s vs 60.0 s")
    assert kinds["communication"].startswith("32% of run time in MPI/torch.distributed calls")
    assert "1.5 GB/s" in kinds["communication"] and "mem_peak_mb=2006 mem_req_mb=8192" in doc["line"]
    assert "time" in kinds  # 100 s of an hour: -t 0:15:00


def test_partial_and_killed_jobs_report_what_was_flushed(tmp_path):
    run = make_run(tmp_path, time_min=1)
    write_rank(run, 0, wall_s=30, peak_mb=100.0, cpu_s=10.0, end=False)
    running = sacct(
        ("42", "RUNNING", "0:0", "00:00:31", "00:00:00", "", "cpu=1,mem=1G,node=1", "n1", "s", "e", "j"),
        finished=False,
    )
    doc = build_report(run, running)
    assert (doc["summary"]["state"], doc["summary"]["finished"], doc["ranks"][0]["wall_s"]) == (
        "RUNNING",
        False,
        30,
    )
    assert "partial" in render_text(doc) and not [a for a in doc["advice"] if a["kind"] == "time"]
    timeout = sacct(
        ("42", "TIMEOUT", "0:0", "00:01:08", "00:00:10", "", "cpu=1,mem=1G,node=1", "n1", "s", "e", "j")
    )
    doc = build_report(run, timeout)
    assert doc["summary"]["state"] == "TIMEOUT" and "state=TIMEOUT" in doc["line"]
    assert any(a["text"].startswith("hit its time limit 1m00s after 1m08s") for a in doc["advice"])
    assert build_report(run)["summary"]["state"] == "UNFINISHED"  # kill -9, no accounting: records only


def test_failed_job_exit_code_from_accounting(tmp_path):
    run = make_run(tmp_path)
    acct = sacct(
        ("42", "FAILED", "3:0", "00:00:02", "00:00:00.010", "", "cpu=1,mem=1G,node=1", "n1", "s", "e", "j")
    )
    doc = build_report(run, acct)
    assert (doc["summary"]["state"], doc["summary"]["exit_code"], doc["accounting"]["exit_code"]) == (
        "FAILED",
        3,
        3,
    )
    assert "state FAILED (from sacct), exit code 3" in render_text(doc)


def test_no_records_and_no_accounting_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="no profile records .* and no Slurm accounting record"):
        build_report(make_run(tmp_path))


def test_no_advice_without_data(tmp_path):
    run = make_run(tmp_path, mem_mb=4096, time_min=60)
    write_rank(run, 0, wall_s=3, peak_mb=3900.0, cpu_s=3.0)  # busy, short, near its memory limit
    doc = build_report(run)
    assert [a["kind"] for a in doc["advice"]] == ["memory", "time"]
    assert "at the limit, next time --mem=8G" in doc["advice"][0]["text"]
    assert summarize_accounting(None) is None and summarize_accounting(sacct()) is None


def test_energy_in_the_line(tmp_path):
    run = make_run(tmp_path)
    write_rank(run, 0, wall_s=3, peak_mb=100.0, cpu_s=3.0)
    w = RecordWriter(node_file(run.dir / "profile", "n1"))
    w.write({"type": "start", "t": 1000.0, "node": "n1", "rank": 0})
    w.write(
        {
            "type": "source",
            "t": 1000.0,
            "node": "n1",
            "name": "rapl",
            "status": "measured",
            "zones": {"intel-rapl:0": "package-0"},
        }
    )
    for t, e in ((1000.0, 0.0), (1003.0, 3.6e5)):
        w.write(
            {"type": "sample", "t": t, "node": "n1", "edge": True, "rapl": {"package_j": e, "dram_j": 0.0}}
        )
    w.write({"type": "end", "t": 1003.0, "node": "n1"})
    w.close()
    assert "energy_kwh=0.100000" in build_report(run)["line"]


def test_fast_rank_reader_agrees_with_the_full_parse(tmp_path):
    from hpcx.reports.ranks import summarize_rank, summarize_rank_file
    from hpcx.rundir.records import read_records

    run = make_run(tmp_path)
    write_rank(run, 0, wall_s=5, peak_mb=50.0, cpu_s=1.0)  # a first attempt, then a requeued one
    write_rank(run, 0, wall_s=1300, peak_mb=700.0, cpu_s=900.0)
    path = rank_file(run.dir / "profile", 0)
    fast, full = summarize_rank_file(path, max_points=100), summarize_rank(read_records(path), max_points=100)
    assert fast == full and fast["samples"] == 1300 and len(fast["timeline"]) == 100
    with open(path, "a") as fh:
        fh.write('{"v":2,"type":"end","t":')  # torn: the whole file is read, as before
    assert summarize_rank_file(path, max_points=100) == full


def test_fast_rank_reader_with_a_source_record_among_the_samples(tmp_path):
    """A source that fails mid-job writes a record between samples: the reader then searches every line."""
    from hpcx.reports.ranks import summarize_rank, summarize_rank_file
    from hpcx.rundir.records import read_records

    path = rank_file(tmp_path, 0)
    w = RecordWriter(path)
    w.write({"type": "start", "t": 0.0, "rank": 0, "node": "n1", "attempt": 0})
    w.write({"type": "source", "t": 0.0, "rank": 0, "name": "process", "status": "measured"})
    for i in range(1, 41):
        w.write({"type": "sample", "t": float(i), "rank": 0, "rss_mb": float(i), "cpu_s": i / 2})
        if i == 20:
            w.write(
                {"type": "source", "t": 20.5, "rank": 0, "name": "x", "status": "unavailable", "reason": "r"}
            )
    w.write(
        {
            "type": "end",
            "t": 41.0,
            "rank": 0,
            "exit_code": 0,
            "wall_s": 41.0,
            "cpu_s": 20.0,
            "peak_rss_mb": 40,
        }
    )
    w.close()
    fast, full = summarize_rank_file(path, max_points=7), summarize_rank(read_records(path), max_points=7)
    assert fast == full and fast["samples"] == 40 and [p[0] for p in fast["timeline"]][:2] == [1.0, 7.0]
