"""Every byte of I/O per rank: the /proc counters the sampler records (a real child's, up to its exit), the
rank's totals and timeline, the report's I/O section beside hpcx.io's, the checkpoints among the writes, the
terminal lines and the page; from records written with the real writer, as the sampler writes them."""

import json
import os
import subprocess
import sys
import time

import pytest

from hpcx.profiling.sources import IO_FIELDS, ProcessTree
from hpcx.reports import build_report, render_text
from hpcx.reports.ranks import combine_steps, summarize_rank, summarize_rank_file
from hpcx.rundir.records import RecordWriter, rank_file
from tests.unit.reports.test_report import make_run

MIB = 2**20


def _sample(t: float, rchar: int, wchar: int, **extra) -> dict:
    return {
        "type": "sample",
        "t": t,
        "rank": 0,
        "rss_mb": 50.0,
        "hwm_mb": 50.0,
        "cpu_s": t - 1000.0,
        "threads": 2,
        "rchar": rchar,
        "wchar": wchar,
        "syscr": rchar // MIB,
        "syscw": wchar // MIB,
        "read_bytes": rchar // 2,
        "write_bytes": wchar,
        **extra,
    }


def _write_rank(run, rank: int, samples: list[dict], *, wall_s: float, step: str | None = None, t0=1000.0):
    w = RecordWriter(rank_file(run.dir / "profile", rank, step))
    w.write({"type": "start", "t": t0, "rank": rank, "node": "n1", "attempt": 0, "step": step})
    for s in samples:
        w.write({**s, "rank": rank})
    w.write(
        {
            "type": "end",
            "t": t0 + wall_s,
            "rank": rank,
            "exit_code": 0,
            "wall_s": wall_s,
            "cpu_s": wall_s,
            "peak_rss_mb": 50.0,
        }
    )
    w.close()


def _checkpoint(run, step: int, sizes: dict[str, int], world: int = 2) -> None:
    d = run.dir / "checkpoints" / f"step-{step:08d}"
    d.mkdir(parents=True)
    files = {name: {"sha256": "0" * 64, "size_bytes": n} for name, n in sizes.items()}
    doc = {
        "format": "hpcx.checkpoint",
        "step": step,
        "world_size": world,
        "files": files,
        "background": False,
    }
    (d / "manifest.json").write_text(json.dumps(doc))
    os.utime(d / "manifest.json", (1003.5, 1003.5))  # committed at +3.5 s, inside the ranks' time


def _job(tmp_path):
    """Rank 0 reads 128 MiB, then writes a 256 MiB checkpoint after its last regular sample, which only the
    sample after the reap holds; rank 1 was killed (no reaped sample) after writing 10 MiB."""
    run = make_run(tmp_path)
    rank0 = [_sample(1001.0, 1 * MIB, 0), _sample(1002.0, 129 * MIB, 0)]
    rank0.append(_sample(1004.0, 129 * MIB, 256 * MIB, rss_mb=0.0, threads=0, reaped=True))
    _write_rank(run, 0, rank0, wall_s=4.0)
    _write_rank(run, 1, [_sample(1001.0, 0, 10 * MIB)], wall_s=2.0)
    _checkpoint(run, 1, {"replicated.pt": 200 * MIB, "rank-00000.pt": 56 * MIB, "rank-00001.pt": 1 * MIB})
    return run


def test_a_rank_counts_its_io_to_the_exit_from_the_sample_after_the_reap(tmp_path):
    report = build_report(_job(tmp_path))
    r0, r1 = report["ranks"]
    assert r0["io"] == {
        "read_bytes": 129 * MIB,
        "write_bytes": 256 * MIB,
        "read_calls": 129,
        "write_calls": 256,
        "storage_read_bytes": 129 * MIB // 2,
        "storage_write_bytes": 256 * MIB,
        "to_exit": True,
    }
    assert r1["io"]["write_bytes"] == 10 * MIB and r1["io"]["to_exit"] is False
    # The reaped sample has no RSS: it is not in the memory timeline, nor does it lower the peak.
    assert [p[0] for p in r0["timeline"]] == [1.0, 2.0] and r0["peak_rss_mb"] == 50.0
    assert r0["io_timeline"] == [
        [1.0, 1 * MIB, 0, MIB // 2, 0],
        [2.0, 129 * MIB, 0, 129 * MIB // 2, 0],
        [4.0, 129 * MIB, 256 * MIB, 129 * MIB // 2, 256 * MIB],
    ]


def test_the_io_section_gives_counters_rates_and_checkpoints_beside_hpcx_io(tmp_path):
    io = build_report(_job(tmp_path))["io"]
    p = io["process"]
    row0, row1 = p["ranks"]
    assert row0["write_mb_per_s"] == pytest.approx(256 / 4.0) and row0["read_mb_per_s"] == pytest.approx(
        129 / 4
    )
    assert (row0["checkpoint_bytes"], row1["checkpoint_bytes"]) == (256 * MIB, 1 * MIB)
    assert p["total"]["write_bytes"] == 266 * MIB and p["total"]["checkpoint_bytes"] == 257 * MIB
    assert p["method"] == "counter" and "rchar" in p["labels"]["read_bytes"]
    assert "TotalDiskWrite" in p["labels"]["write_bytes"] and "storage" in p["labels"]["storage_write_bytes"]
    assert p["partial"] == ["ranks 1: counted to their last sample, not to their exit"]
    assert any("mmap" in n for n in p["not_covered"])
    (step,) = io["checkpoints"]["steps"]
    assert (step["step"], step["bytes"], step["ranks"]) == (1, 257 * MIB, {"0": 256 * MIB, "1": MIB})
    assert io["total"]["write"]["bytes"] == 0 and io["hdf5_files"] == {}  # hpcx.io's part, as before


def test_the_terminal_says_every_byte_and_the_checkpoints_share(tmp_path):
    text = render_text(build_report(_job(tmp_path)))
    assert (
        "  I/O of the ranks' processes: read 129.0 MiB in 129 calls, written 266.0 MiB in 266 calls "
        "(every read()/write(), /proc counters); storage layer: read 64.5 MiB, written 266.0 MiB"
    ) in text
    assert (
        "    checkpoints: 257.0 MiB in 1 committed step on disk, 97% of the bytes written "
        "(last: step 1, 257.0 MiB)"
    ) in text
    assert "    ranks 1: counted to their last sample, not to their exit" in text


def test_the_page_plots_io_over_time_with_the_checkpoint_marked(tmp_path):
    pytest.importorskip("matplotlib")
    from hpcx.reports.html import render_html

    page = render_html(json.loads(json.dumps(build_report(_job(tmp_path)))))
    assert 'id="fig-io-time"' in page and "checkpoint 1" in page
    assert "storage written" in page and "TotalDiskRead" in page and 'src="http' not in page


def test_records_without_counters_give_no_io_and_say_so(tmp_path):
    run = make_run(tmp_path)
    old = {k: v for k, v in _sample(1001.0, 0, 0).items() if k not in IO_FIELDS}
    _write_rank(run, 0, [old], wall_s=1.0)
    report = build_report(run)
    assert report["ranks"][0]["io"] is None and report["ranks"][0]["io_timeline"] == []
    assert report["io"]["process"] is None and report["io"]["checkpoints"] is None
    assert "I/O of the ranks' processes" not in render_text(report)


def test_the_fast_reader_takes_the_totals_from_the_last_sample_however_many_there_are(tmp_path):
    run = make_run(tmp_path)
    samples = [_sample(1000.0 + i, i * MIB, 0) for i in range(1, 1001)]
    samples.append(_sample(1001.5 + 1000, 1000 * MIB, 5 * MIB, reaped=True, rss_mb=0.0))
    _write_rank(run, 0, samples, wall_s=1002.0)
    path = rank_file(run.dir / "profile", 0)
    fast = summarize_rank_file(path, max_points=300)
    assert fast["io"]["write_bytes"] == 5 * MIB and fast["io"]["to_exit"]
    assert fast["io_timeline"][-1] == [1001.5, 1000 * MIB, 5 * MIB, 500 * MIB, 5 * MIB]
    assert len(fast["timeline"]) <= 300 and fast["samples"] == 1001


def test_steps_of_a_rank_add_their_io_as_they_add_cpu_time(tmp_path):
    first = [_sample(1001.0, 10 * MIB, 0), _sample(1002.0, 10 * MIB, 4 * MIB, reaped=True)]
    second = [_sample(1011.0, 1 * MIB, 1 * MIB), _sample(1012.0, 2 * MIB, 3 * MIB, reaped=True)]
    parts = []
    for i, (samples, t0) in enumerate(((first, 1000.0), (second, 1010.0))):
        records = [{"type": "start", "t": t0, "rank": 0, "node": "n1", "attempt": 0, "step": str(i)}]
        records += samples + [
            {"type": "end", "t": t0 + 2, "wall_s": 2.0, "cpu_s": 1.0, "exit_code": 0, "peak_rss_mb": 50.0}
        ]
        parts.append(summarize_rank(records))
    rank = combine_steps(parts)
    assert (
        rank["io"]["read_bytes"] == 12 * MIB
        and rank["io"]["write_bytes"] == 7 * MIB
        and rank["io"]["to_exit"]
    )
    by_t = {pt[0]: pt[1:3] for pt in rank["io_timeline"]}
    assert by_t[2.0] == [10 * MIB, 4 * MIB]  # the first step's own, at its end
    assert by_t[12.0] == [12 * MIB, 7 * MIB]  # both: the first step's counters stay counted


def test_the_process_tree_counts_a_childs_io_up_to_its_exit(tmp_path):
    """The sampler's source on a real child: what it writes after the last sample and before it exits is in
    the one sample taken after the reap (the kernel adds a reaped child's counters to its parent's)."""
    target = tmp_path / "out.bin"
    code = (
        "import os, sys, time\n"
        f"f = open({str(target)!r}, 'wb')\n"
        "f.write(b'x' * 2**20); f.flush(); sys.stdout.write('go\\n'); sys.stdout.flush(); time.sleep(0.3)\n"
        "f.write(b'y' * 3 * 2**20); f.close()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    tree = ProcessTree(child.pid)
    fields = tree.open()["fields"]
    assert fields["wchar"] == ["counter", "B"] and fields["syscw"] == ["counter", "1"]
    assert child.stdout.readline() == b"go\n"
    live = tree.read(edge=False)
    assert 2**20 <= live["wchar"] < 2 * 2**20 and "reaped" not in live
    os.wait4(child.pid, 0)
    final = tree.read(edge=False)
    assert final["reaped"] and final["rss_mb"] == 0.0
    assert 4 * 2**20 <= final["wchar"] < 4 * 2**20 + 64 * 1024  # plus our own few kB since the last sample
    assert final["syscw"] >= 2 and final["rchar"] >= live["rchar"]
    assert tree.read(edge=False) is None  # one final sample, then the rank is gone
    child.stdout.close()


def test_a_process_that_is_not_our_child_gets_no_final_sample():
    """A torchrun worker is its agent's child, not hpcx.run's: its counters after the exit are not ours."""
    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "print(p.pid, flush=True); p.wait()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        grandchild = int(child.stdout.readline())
        tree = ProcessTree(grandchild)
        tree.open()
        assert tree.read(edge=False)["wchar"] >= 0
        os.kill(grandchild, 9)  # its parent reaps it
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{grandchild}") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert tree.read(edge=False) is None
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
