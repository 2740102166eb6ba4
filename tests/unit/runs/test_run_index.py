"""The run index: derived from hand-made run directories, refreshed incrementally, rebuilt when damaged; filters."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import pytest

import hpcx.runs.index as index
import hpcx.runs.state as run_state
from hpcx.cli import main
from hpcx.errors import UsageError
from hpcx.fsutil import atomic_write_json
from hpcx.runs import Run, create_run, find_run, record_job
from hpcx.runs.index import SCHEMA, index_path, load_index, parse_filter, record_states, refresh_index

UTC = dt.timezone.utc
HOUR_S = 3600


def make_run(
    root: Path,
    run_id: str | None = None,
    *,
    name: str = "train",
    kind: str = "serial",
    job_id: str | None = None,
    sweep: str | None = None,
    created: str | None = None,
    age_s: float = HOUR_S,
) -> Run:
    """A run directory as `hpcx submit` leaves it, last changed ``age_s`` ago (beyond the index's racy window)."""
    if run_id is None:
        run = create_run(root)
    else:
        run = Run(run_id, root / run_id)
        run.dir.mkdir()
    manifest = {
        "schema": "hpcx.manifest/1",
        "run_id": run.id,
        "created": created or dt.datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": {"value": kind, "source": "cli"},
        "resources": {"name": {"value": name, "source": "cli"}},
    }
    if sweep:
        manifest["sweep"] = {"id": sweep, "task": 0}
    atomic_write_json(run.dir / "manifest.json", manifest)
    if job_id:
        record_job(run, {"scheduler": "local", "job_id": job_id, "submitted_at": manifest["created"]})
    backdate(run, age_s)
    return run


def backdate(run: Run, age_s: float) -> None:
    """Date the run directory (the index's signature of a run) ``age_s`` back."""
    then = time.time() - age_s
    os.utime(run.dir, (then, then))


@pytest.fixture
def reads(monkeypatch) -> list[Path]:
    """Every file the index reads, in order."""
    seen: list[Path] = []
    real = index.read_json

    def counting(path):
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(index, "read_json", counting)
    return seen


def test_rows_summarise_each_run_directory(runs_root):
    make_run(runs_root, "20240501-120000-aaaaaa", name="prep", job_id="101")
    make_run(runs_root, "20240502-120000-bbbbbb", name="train", kind="mpi", job_id="102", sweep="sw1")
    make_run(runs_root, "20240503-120000-cccccc", name="late")  # submission still under way: no job.json

    rows = refresh_index(runs_root).rows

    assert [(r["run_id"][:8], r["name"], r["kind"], r["job_id"], r["sweep"], r["state"]) for r in rows] == [
        ("20240501", "prep", "serial", "101", None, "UNKNOWN"),
        ("20240502", "train", "mpi", "102", "sw1", "UNKNOWN"),
        ("20240503", "late", "serial", None, None, "UNSUBMITTED"),
    ]
    assert all(r["scheduler"] == ("local" if r["job_id"] else None) and not r["finished"] for r in rows)
    assert load_index(runs_root) == {r["run_id"]: r for r in rows}
    assert json.loads(index_path(runs_root).read_text())["schema"] == "hpcx.run-index/2"


def test_refresh_picks_up_new_runs_and_drops_deleted_ones(runs_root):
    first = make_run(runs_root, job_id="1")
    gone = make_run(runs_root, job_id="2")
    assert {r["run_id"] for r in refresh_index(runs_root).rows} == {first.id, gone.id}

    new = make_run(runs_root, job_id="3")
    assert {r["run_id"] for r in refresh_index(runs_root).rows} == {first.id, gone.id, new.id}

    shutil.rmtree(gone.dir)
    assert {r["run_id"] for r in refresh_index(runs_root).rows} == {first.id, new.id}
    assert set(load_index(runs_root)) == {first.id, new.id}


def test_refresh_reads_only_new_and_changed_runs(runs_root, reads):
    runs = [make_run(runs_root, f"2024050{i}-120000-00000{i}", job_id=str(i)) for i in range(1, 6)]
    refresh_index(runs_root)
    assert len(reads) == 10  # a manifest and a job.json per run

    reads.clear()
    written = index_path(runs_root).stat()
    refresh_index(runs_root)
    assert reads == []
    assert index_path(runs_root).stat().st_mtime_ns == written.st_mtime_ns  # nothing changed: not rewritten

    make_run(runs_root, "20240506-120000-000006", job_id="6")
    record_job(runs[1], {"scheduler": "local", "job_id": "22", "submitted_at": "2024-05-02T12:00:00+00:00"})
    backdate(runs[1], HOUR_S)
    rows = refresh_index(runs_root).rows
    assert sorted({p.parent.name for p in reads}) == [runs[1].id, "20240506-120000-000006"]
    assert [r["job_id"] for r in rows] == ["1", "22", "3", "4", "5", "6"]


def test_runs_changed_just_before_the_listing_are_read_again(runs_root, reads):
    # Within the filesystem's timestamp granularity a change could keep the signature: such runs are not trusted.
    run = make_run(runs_root, job_id="1", age_s=0)
    refresh_index(runs_root)
    refresh_index(runs_root)
    assert [p.parent.name for p in reads] == [run.id] * 4


def test_a_long_listing_trusts_only_what_changed_before_it_began(runs_root, reads):
    # The listing is dated by the index's mtime less the time between listing and writing, so a run changed
    # just after a slow listing started (5 s before this write, the listing took 10 s) is read again.
    run = make_run(runs_root, job_id="1", age_s=5)
    refresh_index(runs_root)
    for lag_s, read_again in ((0, False), (10, True)):
        doc = json.loads(index_path(runs_root).read_text())
        index_path(runs_root).write_text(json.dumps({**doc, "listed_s_before_write": lag_s}))
        reads.clear()
        refresh_index(runs_root)
        assert bool(reads) == read_again and {p.parent.name for p in reads} <= {run.id}


def drop_names(path: Path) -> None:
    doc = json.loads(path.read_text())
    path.write_text(
        json.dumps({**doc, "runs": [{k: v for k, v in r.items() if k != "name"} for r in doc["runs"]]})
    )


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_text(p.read_text()[: len(p.read_text()) // 2]),  # half-written
        lambda p: p.write_text(""),
        lambda p: p.write_bytes(b"\x00\xff\xfe garbage"),
        lambda p: p.write_text('{"schema": "hpcx.run-index/0", "runs": []}'),
        lambda p: p.write_text(
            json.dumps({"schema": SCHEMA, "listed_s_before_write": 0, "runs": [1, {"run_id": 3}]})
        ),
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "listed_s_before_write": "soon"})),
        lambda p: p.write_text("[]"),
        drop_names,  # rows of the right schema that lack a field
        lambda p: (p.unlink(), p.mkdir()),  # not even a file: listed from the directories, never written
    ],
    ids=[
        "half-written",
        "empty",
        "binary",
        "other-schema",
        "junk-rows",
        "junk-listing-time",
        "not-an-object",
        "rows-lack-a-field",
        "a-directory",
    ],
)
def test_a_damaged_index_is_rebuilt_never_a_crash(runs_root, damage):
    ids = [make_run(runs_root, job_id=str(i)).id for i in range(3)]
    refresh_index(runs_root)
    damage(index_path(runs_root))

    assert load_index(runs_root) == {}
    rows = refresh_index(runs_root).rows
    assert sorted(r["run_id"] for r in rows) == sorted(ids) and {r["name"] for r in rows} == {"train"}
    if index_path(runs_root).is_file():
        assert sorted(load_index(runs_root)) == sorted(ids)


def test_rebuild_discards_the_stored_rows(runs_root, reads):
    make_run(runs_root, job_id="1")
    refresh_index(runs_root)
    reads.clear()
    refresh_index(runs_root, rebuild=True)
    assert len(reads) == 2


def test_find_run_by_job_id_reads_only_what_changed(runs_root, reads):
    runs = [make_run(runs_root, f"2024050{i}-120000-00000{i}", job_id=str(100 + i)) for i in range(1, 5)]
    refresh_index(runs_root)
    reads.clear()

    assert find_run(runs_root, "103") == runs[2]
    assert reads == []
    with pytest.raises(UsageError, match="no run '999'"):
        find_run(runs_root, "999")


def test_finished_states_are_final_and_belong_to_their_job(runs_root):
    make_run(runs_root, "20240501-120000-000001", job_id="1")
    make_run(runs_root, "20240502-120000-000002", job_id="2")
    rows = refresh_index(runs_root).rows
    asked = [
        {"run_id": rows[0]["run_id"], "job_id": "1", "state": "COMPLETED", "finished": True},
        {"run_id": rows[1]["run_id"], "job_id": "other", "state": "FAILED", "finished": True},
    ]
    assert record_states(rows, asked) == 1
    assert [(r["state"], r["finished"]) for r in rows] == [("COMPLETED", True), ("UNKNOWN", False)]
    later = [{"run_id": rows[0]["run_id"], "job_id": "1", "state": "RUNNING", "finished": False}]
    assert record_states(rows, later) == 0 and rows[0]["state"] == "COMPLETED"


def test_a_sweep_answers_to_each_array_and_a_retry_makes_it_active_again(runs_root):
    run = make_run(runs_root, job_id="10", sweep="s")
    chunks = [{"job_id": "10", "offset": 0, "count": 1001}, {"job_id": "11", "offset": 1001, "count": 199}]
    record_job(run, {"scheduler": "slurm", "job_id": "10", "chunks": chunks})
    backdate(run, HOUR_S)
    index = refresh_index(runs_root)
    record_states(index.rows, [{"run_id": run.id, "job_id": "10", "state": "FAILED", "finished": True}])
    index.save()
    assert find_run(runs_root, "11") == run

    manifest = json.loads((run.dir / "manifest.json").read_text())
    atomic_write_json(run.dir / "manifest.json", {**manifest, "note": "rewritten"})
    backdate(run, HOUR_S)
    # the same jobs: the finished state still holds
    assert refresh_index(runs_root).rows[0]["state"] == "FAILED"

    retry = {"job_id": "12", "offset": 0, "count": 1, "indices": [7]}
    record_job(run, {"scheduler": "slurm", "job_id": "10", "chunks": [*chunks, retry]})
    backdate(run, HOUR_S)
    row = refresh_index(runs_root).rows[0]
    assert (row["job_ids"], row["state"], row["finished"]) == (["10", "11", "12"], "UNKNOWN", False)


# --- filters -------------------------------------------------------------------------------------------------

NOW = dt.datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
ROWS = [
    {
        "run_id": "a",
        "name": "prep-data",
        "state": "COMPLETED",
        "finished": True,
        "sweep": None,
        "created": "2024-05-01T12:00:00+00:00",
    },
    {
        "run_id": "b",
        "name": "train-small",
        "state": "FAILED",
        "finished": True,
        "sweep": "20240508-sw",
        "created": "2024-05-08T12:00:00+00:00",
    },
    {
        "run_id": "c",
        "name": "train-big",
        "state": "RUNNING",
        "finished": False,
        "sweep": "20240508-sw",
        "created": "2024-05-10T10:00:00+00:00",
    },
    {
        "run_id": "d",
        "name": None,
        "state": "PENDING",
        "finished": False,
        "sweep": None,
        "created": "2024-05-10T11:30:00+00:00",
    },
]


def kept(**options) -> list[str]:
    wanted = parse_filter(now=NOW, **options)
    return [r["run_id"] for r in ROWS if wanted.keeps_run(r) and wanted.keeps_state(r)]


def test_filters_by_name_state_sweep_and_date():
    assert kept() == ["a", "b", "c", "d"]
    assert kept(name="train") == ["b", "c"]
    assert kept(name="TRAIN-*") == ["b", "c"]
    assert kept(name="*-s?all") == ["b"]
    assert kept(states=["failed", "Running"]) == ["b", "c"]
    assert kept(states=["active"]) == ["c", "d"]
    assert kept(states=["finished"]) == ["a", "b"]
    assert kept(sweep="20240508") == ["b", "c"]
    assert kept(since="3h") == ["c", "d"]
    assert kept(since="2024-05-08", until="1h") == ["b", "c"]
    assert kept(until="2024-05-08") == ["a", "b"]  # a bare date includes that day
    assert kept(since="2024-05-10T11:00Z") == ["d"]
    assert kept(name="train", states=["active"], since="1d") == ["c"]


@pytest.mark.parametrize(
    "options, named",
    [
        ({"since": "yesterdayish"}, "--since 'yesterdayish'"),
        ({"until": "3 fortnights"}, "--until '3 fortnights'"),
        ({"states": ["finishd"]}, "--state 'finishd'"),
    ],
)
def test_a_bad_filter_value_is_a_usage_error_naming_it(options, named):
    with pytest.raises(UsageError) as err:
        parse_filter(now=NOW, **options)
    assert err.value.exit_code == 2 and named in str(err.value) and "\n" not in str(err.value)


# --- the command ---------------------------------------------------------------------------------------------


@pytest.fixture
def runs_cmd(runs_root, monkeypatch, capsys):
    """`hpcx runs` in this process, with a fake scheduler that records what it is asked."""
    monkeypatch.setenv("HPCX_RUNS", str(runs_root))
    monkeypatch.delenv("HPCX_SITE", raising=False)
    states: dict[str, str] = {}
    asked: list[list[str]] = []

    def job_states(runs):
        asked.append([r.job["job_id"] for r in runs])
        rows = [{"run_id": r.id, "job_id": r.job["job_id"], "state": states[r.job["job_id"]]} for r in runs]
        return [{**row, "finished": row["state"] in {"COMPLETED", "FAILED"}} for row in rows]

    monkeypatch.setattr(run_state, "job_states", job_states)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    run.states, run.asked = states, asked
    return run


def test_runs_json_rows_have_pinned_keys(runs_root, runs_cmd):
    run = make_run(runs_root, "20240501-120000-000001", name="prep", job_id="7", sweep="sw")
    runs_cmd.states["7"] = "COMPLETED"
    code, out, _ = runs_cmd("--json", "runs")
    doc = json.loads(out)
    assert code == 0 and set(doc) == {"hpcx", "kind", "root", "root_source", "runs"}
    assert doc["runs"] == [
        {
            "run_id": run.id,
            "run_dir": str(run.dir),
            "name": "prep",
            "kind": "serial",
            "created": doc["runs"][0]["created"],
            "scheduler": "local",
            "job_id": "7",
            "state": "COMPLETED",
            "finished": True,
            "sweep": "sw",
            "step": None,
            "metric": None,
        }
    ]


def test_runs_asks_the_scheduler_only_about_unfinished_jobs(runs_root, runs_cmd):
    for i in range(1, 4):
        make_run(runs_root, f"2024050{i}-120000-00000{i}", job_id=str(i))
    runs_cmd.states.update({"1": "COMPLETED", "2": "RUNNING", "3": "PENDING"})
    assert runs_cmd("runs")[0] == 0
    runs_cmd.states.update({"2": "FAILED", "3": "RUNNING"})
    code, out, _ = runs_cmd("runs", "--state", "active")
    runs_cmd.states["1"] = "RUNNING"  # would be wrong: finished states are final and never asked again
    assert runs_cmd("runs")[0] == 0

    assert runs_cmd.asked == [["1", "2", "3"], ["2", "3"], ["3"]]
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:-1]] == ["20240503-120000-000003"]
    stored = load_index(runs_root)
    assert [(r["state"], r["finished"]) for _, r in sorted(stored.items())] == [
        ("COMPLETED", True),
        ("FAILED", True),
        ("RUNNING", False),
    ]


def test_runs_table_is_aligned_newest_last_and_limited(runs_root, runs_cmd):
    for i in range(1, 6):
        make_run(runs_root, f"2024050{i}-120000-00000{i}", name="x" * i, job_id=str(i))
        runs_cmd.states[str(i)] = "COMPLETED"
    code, out, _ = runs_cmd("runs", "--limit", "3")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["RUN", "JOB", "KIND", "NAME", "STATE", "CREATED"]
    assert [line.split()[0] for line in lines[1:4]] == [f"2024050{i}-120000-00000{i}" for i in (3, 4, 5)]
    assert len({line.index("COMPLETED") for line in lines[1:4]}) == 1  # one column
    assert lines[4].startswith("3 of 5 runs under") and "--limit 0 shows all 5" in lines[4]
    assert runs_cmd.asked == [["3", "4", "5"]]  # no state filter: only the shown runs are asked about
    assert len(json.loads(runs_cmd("--json", "runs", "--limit", "0")[1])["runs"]) == 5


def test_runs_with_a_bad_value_exits_2_with_one_line(hpcx):
    proc = hpcx("runs", "--since", "yesterdayish", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "'yesterdayish'" in proc.stderr and "3d" in proc.stderr
    assert hpcx("runs", "--limit", "-1", check=False).returncode == 2
