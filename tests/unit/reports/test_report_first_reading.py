"""What a new user reads first in `hpcx report`: why a failed job failed (right after its state), each reason a
counter is unavailable once for all nodes, no overhead share of a near-zero CPU time, counted nouns, RAPL of a
shared node labelled as the node's (not in the job's energy or carbon), and a sweep's report that agrees with
its own task table. Runs written with the real record writers; sacct rows as Slurm prints them."""

from __future__ import annotations

import json
import shutil

from hpcx.reports import build_report, render_text
from hpcx.reports.html import render_html
from hpcx.rundir.records import RecordWriter, node_file
from hpcx.runs.provenance import ACCOUNTING_FIELDS
from hpcx.site import schema
from tests.conftest import REPO
from tests.unit.reports.test_report import make_run, sacct, write_rank

SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())


def _valid(report, monkeypatch) -> None:
    assert schema.validate(json.loads(json.dumps(report)), SCHEMA) == []


def _rapl_node(
    run, node: str, *, package_j: float | None, reason: str = "no RAPL zones under /sys/x"
) -> None:
    w = RecordWriter(node_file(run.dir / "profile", node))
    w.write({"type": "start", "t": 1000.0, "node": node, "rank": 0})
    if package_j is None:
        w.write(
            {
                "type": "source",
                "t": 1000.0,
                "node": node,
                "name": "rapl",
                "status": "unavailable",
                "reason": reason,
            }
        )
    else:
        w.write(
            {
                "type": "source",
                "t": 1000.0,
                "node": node,
                "name": "rapl",
                "status": "measured",
                "zones": {"intel-rapl:0": "package-0"},
            }
        )
    w.write(
        {
            "type": "source",
            "t": 1000.0,
            "node": node,
            "name": "nvml",
            "status": "unavailable",
            "reason": "no NVIDIA driver on this node",
        }
    )
    for t, e in ((1000.0, 0.0), (1030.0, package_j or 0.0)):
        sample = {"type": "sample", "t": t, "node": node}
        if package_j is not None:
            sample.update(edge=True, rapl={"package_j": e, "dram_j": 0.0})
        w.write(sample)
    w.write({"type": "end", "t": 1030.0, "node": node})
    w.close()


def _line_after_state(text: str) -> list[str]:
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  state "))
    return lines[at + 1 : at + 4]


def test_failed_job_says_why_right_after_its_state(tmp_path, monkeypatch):
    run = make_run(tmp_path)
    write_rank(run, 0, wall_s=3, peak_mb=50.0, cpu_s=1.0, exit_code=3)
    (run.dir / "logs").mkdir()
    (run.dir / "logs" / "slurm-42.err").write_text(
        "loading\nTraceback (most recent call last):\nValueError: column 'lr' is empty\n\n"
    )
    acct = sacct(
        ("42", "FAILED", "3:0", "00:00:03", "00:00:01", "", "cpu=1,mem=1G,node=1", "n1", "s", "e", "j")
    )
    report = build_report(run, acct)
    _valid(report, monkeypatch)
    f = report["summary"]["failure"]
    assert f["reason"] == "none given (FAILED, exit code 3)" and f["rank"] == 0
    assert f["log"] == "logs/slurm-42.err" and f["stderr_tail"][-1] == "ValueError: column 'lr' is empty"
    after = _line_after_state(render_text(report))
    assert after[0] == "  Slurm's reason: none given (FAILED, exit code 3)"
    assert after[1] == "  last lines of stderr (logs/slurm-42.err, rank 0):"
    assert "ValueError: column &#x27;lr&#x27; is empty" in render_html(report)
    ok = make_run(tmp_path / "ok")
    write_rank(ok, 0, wall_s=3, peak_mb=50.0, cpu_s=1.0)
    assert build_report(ok)["summary"]["failure"] is None and "Slurm's reason" not in render_text(
        build_report(ok)
    )


def test_slurms_own_reason_is_shown_when_it_has_one(tmp_path):
    run = make_run(tmp_path)
    row = dict(
        zip(
            ACCOUNTING_FIELDS,
            (
                "42",
                "NODE_FAIL",
                "0:0",
                "00:01:00",
                "00:00:01",
                "",
                "cpu=1,node=1",
                "n1",
                "s",
                "e",
                "NodeDown",
                "j",
            ),
        )
    )
    acct = {**sacct(), "rows": [row]}
    assert build_report(run, acct)["summary"]["failure"]["reason"] == "NodeDown"


def test_an_unavailable_counter_is_explained_once_for_all_nodes(tmp_path):
    run = make_run(tmp_path)
    for rank, node in enumerate(("n1", "n2")):
        write_rank(run, rank, wall_s=3, peak_mb=50.0, cpu_s=1.0, node=node)
        _rapl_node(run, node, package_j=None)
    text = render_text(build_report(run))
    assert text.count("no RAPL zones under /sys/x") == 1 and text.count("no NVIDIA driver on this node") == 1
    assert (
        "  energy: unavailable on n[1-2]: cpu_package, dram: no RAPL zones under /sys/x; gpu: no NVIDIA driver on "
        "this node" in text.splitlines()
    )


def test_a_short_job_gets_the_samplers_seconds_not_a_share(tmp_path):
    run = make_run(tmp_path)
    write_rank(run, 0, wall_s=1, peak_mb=50.0, cpu_s=0.1)
    path = next((run.dir / "profile").glob("rank-*.jsonl"))
    lines = path.read_text().splitlines()
    end = json.loads(lines[-1])
    end.update(sampler_cpu_s=0.04, wall_s=0.1)
    path.write_text("\n".join([*lines[:-1], json.dumps(end)]) + "\n")
    report = build_report(run)
    assert report["profiler"]["sampler_share"] is None and report["summary"]["profiler_share"] is None
    text = render_text(report)
    assert "sampler 0.04 s CPU (no share" in text and "% of allocated CPU" not in text
    assert "0.04 s CPU" in render_html(report)


def test_one_rank_on_one_node(tmp_path):
    run = make_run(tmp_path)
    write_rank(run, 0, wall_s=3, peak_mb=50.0, cpu_s=1.0)
    report = build_report(run)
    text = render_text(report)
    assert "  1 rank on 1 node (n1), finished" in text.splitlines() and "(1 CPU per task)" in text
    assert "1 rank on 1 node &middot;" in render_html(report) and "1 CPU per task" in render_html(report)


def test_nodelists_and_the_jobs_that_shared_a_node():
    from hpcx.reports.sharing import expand_nodelist, shared_jobs

    assert expand_nodelist("n[1-3,7],gpu01") == ["n1", "n2", "n3", "n7", "gpu01"]
    assert expand_nodelist("c[08-10]") == ["c08", "c09", "c10"] and expand_nodelist("None assigned") == []
    rows = [
        {"JobID": "42", "NodeList": "n[1-2]", "Start": "2026-01-01T10:00:00", "End": "2026-01-01T11:00:00"},
        {"JobID": "43", "NodeList": "n2", "Start": "2026-01-01T10:30:00", "End": "Unknown"},
        {"JobID": "44_3", "NodeList": "n1", "Start": "2026-01-01T09:00:00", "End": "2026-01-01T10:00:00"},
        {"JobID": "45", "NodeList": "n[1-2]", "Start": "Unknown", "End": "Unknown"},
    ]
    # 43 still runs; 44_3 ended as 42 started (no overlap); 45 never started; 42 is the job itself.
    assert shared_jobs(rows, ["42"], ["n1", "n2"], "2026-01-01T10:00:00", "2026-01-01T11:00:00") == {
        "n1": [],
        "n2": ["43"],
    }


def test_rapl_of_a_shared_node_is_the_nodes_not_the_jobs(tmp_path, monkeypatch):
    run = make_run(tmp_path)
    for rank, node in enumerate(("n1", "n2")):
        write_rank(run, rank, wall_s=30, peak_mb=50.0, cpu_s=10.0, node=node)
        _rapl_node(run, node, package_j=3000.0)
    site = {"carbon_intensity_g_per_kwh": 400}
    report = build_report(run, site_energy=site, shared={"n1": ["77", "78"], "n2": []})
    _valid(report, monkeypatch)
    n1, n2 = report["nodes"]
    assert n1["shared_jobs"] == ["77", "78"] and n2["shared_jobs"] == []
    assert n1["energy"]["cpu_package"]["scope"] == "whole package, node shared with 2 other jobs"
    assert "scope" not in n2["energy"]["cpu_package"]
    s = report["summary"]
    assert s["energy_j"] == 3000.0 and s["energy_shared_j"] == 3000.0  # n2's only
    assert "leaves out 3000 J of RAPL on nodes shared" in report["carbon"]["method"]
    text = render_text(report)
    assert "energy: 3000 J" in text and "whole package, node shared with 2 other jobs: not the job's" in text
    both = build_report(run, site_energy=site, shared={"n1": ["77"], "n2": ["77"]})
    assert both["summary"]["energy_j"] is None and both["carbon"]["status"] == "unavailable"
    assert "shared with other jobs: not this job's" in both["carbon"]["reason"]
    assert "energy_kwh=na" in both["line"]
    assert build_report(run, site_energy=site)["summary"]["energy_j"] == 6000.0  # sharing unknown: as before


def _sweep(tmp_path):
    run = make_run(tmp_path)
    (run.dir / "job.json").write_text(
        json.dumps(
            {
                "scheduler": "slurm",
                "job_id": "42",
                "kind": "sweep",
                "chunks": [{"job_id": "42", "offset": 0, "count": 3}],
            }
        )
    )
    params = [{"lr": 0.001, "model": "small"}, {"lr": 0.1, "model": "small"}, {"lr": 0.1, "model": "large"}]
    (run.dir / "tasks.jsonl").write_text(
        "".join(
            json.dumps({"task": i, "name": f"t{i}", "params": p, "seed": 7 + i}) + "\n"
            for i, p in enumerate(params)
        )
    )
    for task, code in ((0, 0), (1, 1), (2, 0)):
        sub = make_run(tmp_path / f"t{task}")
        write_rank(sub, 0, wall_s=4, peak_mb=100.0 * (task + 1), cpu_s=2.0, exit_code=code)
        _rapl_node(sub, "n1", package_j=None)
        shutil.copytree(sub.dir / "profile", run.dir / "profile" / f"task-{task:05d}")
    (run.dir / "logs").mkdir()
    (run.dir / "logs" / "slurm-42_1.err").write_text("diverged: lr=0.1 model=small seed=8\n")
    rows = [
        (
            f"42_{i}",
            state,
            code,
            "00:00:04",
            "00:00:02",
            "",
            "cpu=1,mem=1G,node=1",
            "n1",
            f"2026-01-01T10:00:{start:02d}",
            f"2026-01-01T10:00:{start + 4:02d}",
            "j",
        )
        for i, (state, code, start) in enumerate(
            (("COMPLETED", "0:0", 0), ("FAILED", "1:0", 10), ("COMPLETED", "0:0", 30))
        )
    ]
    return run, sacct(*rows)


def test_a_sweeps_report_agrees_with_its_task_table(tmp_path, monkeypatch):
    run, acct = _sweep(tmp_path)
    report = build_report(run, acct)
    _valid(report, monkeypatch)
    s, a = report["summary"], report["accounting"]
    assert (s["state"], a["state_counts"]) == ("FAILED", {"COMPLETED": 2, "FAILED": 1})
    assert s["elapsed_s"] == 34  # the first task's start to the last one's end, not the longest task
    assert (s["mem_peak_mb"], s["mem_peak_where"]) == (300.0, "task 2")
    assert [t["params"] for t in report["tasks"]][1] == {"lr": 0.1, "model": "small", "seed": 8}
    assert s["failure"]["task"] == 1 and s["failure"]["stderr_tail"] == [
        "diverged: lr=0.1 model=small seed=8"
    ]
    text = render_text(report)
    assert "state FAILED (from sacct: 2 COMPLETED, 1 FAILED)" in text and "COMPLETED,FAILED" not in text
    assert "elapsed 34s" in text and "memory peak 0.293G" in text and "no peak measured" not in text
    assert "task 1 FAILED: Slurm's reason" in text and "used 4s: next time" in text  # per task
    head = next(line for line in text.splitlines() if line.split()[:2] == ["task", "lr"])
    assert head.split()[:4] == ["task", "lr", "model", "seed"]
    assert any(line.split()[:4] == ["1", "0.1", "small", "8"] for line in text.splitlines())
    page = render_html(report)
    assert "0 ranks on 0 nodes" not in page and "3 array tasks with records" in page
    assert (
        "no node sensor records (submit with --profile)" not in page
        and "node sensor records are per task" in page
    )
    assert ">lr</th>" in page and "no profile records: Slurm" not in page and "no rank samples" not in page
    assert "recorded per task: <code>hpcx report RUN --task N</code>" in page


def test_provenance_shows_no_none_and_a_uid_as_a_uid(tmp_path):
    run = make_run(tmp_path)
    write_rank(run, 0, wall_s=3, peak_mb=50.0, cpu_s=1.0)
    manifest = json.loads((run.dir / "manifest.json").read_text())
    manifest["resources"]["account"] = {"value": None, "source": "default"}
    manifest.update(host="vm", user="0")
    (run.dir / "manifest.json").write_text(json.dumps(manifest))
    page = render_html(build_report(run))
    assert "account=None" not in page and "vm / 0" not in page
    assert "<td>uid 0" in page or "(uid 0)</td>" in page


def test_sweep_tasks_running_together_share_their_node(tmp_path, monkeypatch):
    """Two tasks of one sweep at once on n1: each one's RAPL is the whole package, both tasks' draw."""
    run = make_run(tmp_path)
    (run.dir / "job.json").write_text(
        json.dumps(
            {
                "scheduler": "slurm",
                "job_id": "42",
                "kind": "sweep",
                "chunks": [{"job_id": "42", "offset": 0, "count": 3}],
            }
        )
    )
    for task in range(3):
        sub = make_run(tmp_path / f"t{task}")
        write_rank(sub, 0, wall_s=30, peak_mb=100.0, cpu_s=20.0)
        _rapl_node(sub, "n1", package_j=1000.0)
        shutil.copytree(sub.dir / "profile", run.dir / "profile" / f"task-{task:05d}")
    when = {0: ("10:00:00", "10:00:30"), 1: ("10:00:10", "10:00:40"), 2: ("10:01:00", "10:01:30")}
    rows = [
        (
            f"42_{i}",
            "COMPLETED",
            "0:0",
            "00:00:30",
            "00:00:20",
            "",
            "cpu=1,mem=1G,node=1",
            "n1",
            f"2026-01-01T{a}",
            f"2026-01-01T{b}",
            "j",
        )
        for i, (a, b) in when.items()
    ]
    acct = sacct(*rows)
    node_jobs = [{"JobID": r[0], "NodeList": "n1", "Start": r[8], "End": r[9]} for r in rows]
    report = build_report(run, acct, node_jobs=node_jobs)
    _valid(report, monkeypatch)
    got = [(t["task"], t["energy_j"], t["energy_shared_j"]) for t in report["tasks"]]
    assert got == [(0, None, 1000.0), (1, None, 1000.0), (2, 1000.0, None)]  # task 2 ran alone
    assert (report["summary"]["energy_j"], report["summary"]["energy_shared_j"]) == (1000.0, 2000.0)
    one = build_report(run, acct, task=1, node_jobs=node_jobs)
    assert one["nodes"][0]["shared_jobs"] == ["42_0"] and one["summary"]["energy_j"] is None
