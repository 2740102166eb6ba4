"""One record file per process (hpcx.rundir.process.ProcessRecords): opened at the first record where the
environment says, nothing outside a run, a forked child's own file, quiet failures for profiling and loud ones
for the job's own metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from hpcx.rundir.process import ProcessRecords, metrics_dir_from_env, profile_dir_from_env
from hpcx.rundir.records import read_records


def test_where_records_go_follows_the_run_environment(tmp_path):
    run = str(tmp_path)
    assert profile_dir_from_env({}) is None
    assert profile_dir_from_env({"HPCX_RUN_DIR": run}) == tmp_path / "profile"
    assert profile_dir_from_env({"HPCX_RUN_DIR": run, "HPCX_PROFILE": "0"}) is None
    explicit = {"HPCX_RUN_DIR": run, "HPCX_PROFILE": "0", "HPCX_PROFILE_DIR": "/p/task-00001"}
    assert str(profile_dir_from_env(explicit)) == "/p/task-00001"
    assert metrics_dir_from_env({}) is None
    assert metrics_dir_from_env({"HPCX_RUN_DIR": run}) == tmp_path / "metrics"
    assert (
        metrics_dir_from_env({"HPCX_RUN_DIR": run, "HPCX_TASK_ID": "12"})
        == tmp_path / "metrics" / "task-00012"
    )


def test_no_path_writes_nothing_and_is_asked_again_at_the_next_record(tmp_path):
    where: list = [None]
    records = ProcessRecords(lambda: where[0])
    assert records.write({"type": "x"}) is False and not records.failed
    where[0] = tmp_path / "a.jsonl"
    assert records.write({"type": "x", "n": 1}) is True
    where[0] = tmp_path / "b.jsonl"  # open: the file stays the one opened
    records.write({"type": "x", "n": 2})
    records.sync(every_s=60.0)
    assert [r["n"] for r in read_records(tmp_path / "a.jsonl")] == [1, 2]
    records.close()  # the next record opens the file named then
    records.write({"type": "x", "n": 3})
    assert [r["n"] for r in read_records(tmp_path / "b.jsonl")] == [3]


def test_an_unwritable_place_ends_quiet_records_and_raises_for_loud_ones(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    quiet = ProcessRecords(lambda: blocker / "sub" / "r.jsonl")
    assert quiet.write({"type": "x"}) is False and quiet.failed
    assert quiet.writer() is None
    loud = ProcessRecords(lambda: blocker / "sub" / "r.jsonl", quiet=False)
    with pytest.raises(OSError):
        loud.write({"type": "x"})


def test_a_new_file_gets_its_first_records_and_a_failing_first_record_is_quiet(tmp_path):
    def anchor(writer):
        writer.write({"type": "anchor"})

    records = ProcessRecords(lambda: tmp_path / "r.jsonl", opened=anchor)
    records.write({"type": "x"})
    assert [r["type"] for r in read_records(tmp_path / "r.jsonl")] == ["anchor", "x"]

    def broken(writer):
        raise OSError("disk full")

    failing = ProcessRecords(lambda: tmp_path / "s.jsonl", opened=broken)
    assert failing.write({"type": "x"}) is False and failing.failed


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_writes_its_own_file_and_forgets_what_its_parent_counted(tmp_path):
    code = textwrap.dedent("""
        import os, sys
        from pathlib import Path
        from hpcx.rundir.process import ProcessRecords
        counted = []
        records = ProcessRecords(lambda: Path(sys.argv[1]) / f"p{os.getpid()}.jsonl", after_fork=counted.clear)
        counted.append("parent's")
        records.write({"type": "x", "who": "parent", "counted": len(counted)})
        pid = os.fork()
        if pid == 0:
            records.write({"type": "x", "who": "child", "counted": len(counted)})
            os._exit(0)
        os.waitpid(pid, 0)
        records.write({"type": "x", "who": "parent", "counted": len(counted)})
        print(pid)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    child = int(out.stdout)
    files = {p.name: [(r["who"], r["counted"]) for r in read_records(p)] for p in tmp_path.iterdir()}
    assert files.pop(f"p{child}.jsonl") == [("child", 0)]
    assert list(files.values()) == [[("parent", 1), ("parent", 1)]]


def test_records_name_the_launchers_rank_and_hpcx_rank_only_without_a_launcher(monkeypatch):
    from hpcx.runtime.metrics import process_rank
    from hpcx.runtime.rankenv import RankEnv

    monkeypatch.setenv("HPCX_RANK", "3")
    none = RankEnv(0, 1, 0, "node", "none")
    torchrun = RankEnv(5, 8, 1, "node", "torchrun")
    assert process_rank(none) == 3
    assert process_rank(torchrun) == 5
    monkeypatch.setenv("HPCX_RANK", "x")
    assert process_rank(none) == 0


def test_logged_metrics_go_to_the_tasks_rank_file_and_a_forked_child_appends_to_it(tmp_path):
    code = textwrap.dedent("""
        import os
        import hpcx.runtime as rt
        rt.log(1, loss=0.5)
        pid = os.fork()
        if pid == 0:
            rt.log(2, loss=float("nan"))
            os._exit(0)
        os.waitpid(pid, 0)
        rt.log(3, loss=0.25)
    """)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "OMPI_", "PMI", "SLURM_", "RANK"))
    }
    subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, check=True, timeout=60)  # no run
    env.update(HPCX_RUN_DIR=str(tmp_path), HPCX_TASK_ID="4")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl")] == [
        "metrics/task-00004/rank-00000.jsonl"
    ]
    records = list(read_records(tmp_path / "metrics" / "task-00004" / "rank-00000.jsonl"))
    assert [(r["step"], r["loss"], r["rank"]) for r in records] == [(1, 0.5, 0), (2, "nan", 0), (3, 0.25, 0)]
