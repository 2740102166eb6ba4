"""docs/report-schema.json describes what build_report writes: reports of every shape (profiled with comm and
energy, accounting only, partial, killed) validate against it, and the top-level keys are pinned, so a change
to report.json is a change to its schema version and its documentation."""

import json

from hpcx.reports import REPORT_SCHEMA, build_report
from hpcx.site import schema
from tests.conftest import REPO
from tests.unit.reports.test_report import make_run, sacct, write_comm, write_rank

SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())
TOP_KEYS = [
    "schema",
    "run_id",
    "job_id",
    "task",
    "kind",
    "command",
    "resources",
    "launch",
    "summary",
    "accounting",
    "ranks",
    "io",
    "nodes",
    "source_status",
    "comm",
    "node_timelines",
    "regions",
    "carbon",
    "profiler",
    "tasks",
    "provenance",
    "advice",
    "curves",
    "methods",
    "line",
]


def _reports(tmp_path):
    acct = sacct(
        ("42", "TIMEOUT", "0:15", "00:01:08", "00:00:10", "", "cpu=2,mem=1G,node=1", "n1", "s", "e", "j"),
        (
            "42.batch",
            "CANCELLED",
            "0:15",
            "00:01:08",
            "00:00:10",
            "900K",
            "cpu=2,mem=1G,node=1",
            "n1",
            "s",
            "e",
            "batch",
        ),
    )
    only_acct = make_run(tmp_path / "a", mem_mb=4096, time_min=60, cpus=2)
    yield build_report(only_acct, acct)
    profiled = make_run(tmp_path / "p", mem_mb=4096, time_min=60)
    for rank in range(3):
        write_rank(profiled, rank, wall_s=20, peak_mb=300.0, cpu_s=5.0 * (rank + 1), node=f"n{rank % 2 + 1}")
        write_comm(profiled, rank, seconds=3.0 * rank)
    yield build_report(profiled)
    yield build_report(profiled, acct)
    killed = make_run(tmp_path / "k")
    write_rank(killed, 0, wall_s=5, peak_mb=10.0, cpu_s=1.0, end=False)
    yield build_report(killed)


def test_reports_validate_against_the_published_schema(tmp_path):
    for report in _reports(tmp_path):
        # Through JSON, as report.json is read: tuples become lists, keys strings.
        assert schema.validate(json.loads(json.dumps(report)), SCHEMA) == [], report["summary"]


def test_top_level_keys_and_version_are_pinned(tmp_path):
    killed = make_run(tmp_path / "k")
    write_rank(killed, 0, wall_s=2, peak_mb=10.0, cpu_s=1.0)
    assert list(build_report(killed)) == TOP_KEYS == list(SCHEMA["properties"]) == SCHEMA["required"]
    assert REPORT_SCHEMA == "hpcx.report/5" and SCHEMA["properties"]["schema"]["enum"] == [REPORT_SCHEMA]


def test_the_schema_rejects_what_it_should(tmp_path):
    run = make_run(tmp_path / "k")
    write_rank(run, 0, wall_s=2, peak_mb=10.0, cpu_s=1.0)
    report = json.loads(json.dumps(build_report(run)))
    report["summary"]["eff"] = 1.0
    report["advice"] = [{"kind": "vibes", "text": "", "values": {}}]
    problems = schema.validate(report, SCHEMA)
    assert any("summary.eff: unknown key" in p for p in problems) and any("vibes" in p for p in problems)
