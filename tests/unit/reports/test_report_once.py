"""A report says a thing once (issue 30, item 3): a source's status and reason once for all the nodes it holds for,
the nodes as Slurm writes them (n[1-2]), in the terminal, in report.json (structured) and on the HTML page.
Runs written with the real record writers."""

from __future__ import annotations

import json

import pytest

from hpcx.reports import build_report, render_text
from hpcx.reports.html import render_html
from hpcx.reports.sharing import compress_nodelist, expand_nodelist
from hpcx.rundir.records import RecordWriter, node_file
from hpcx.site import schema
from tests.conftest import REPO
from tests.unit.reports.test_report import make_run, write_rank

SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())
NO_RAPL = "no RAPL zones under /sys/class/powercap (not an Intel/AMD CPU, or a VM)"
NO_NVML = "NVML did not start (no NVIDIA driver on this node)"


def _bare_node(run, node: str) -> None:
    """A node with no RAPL and no GPU, as the sampler records one in a VM."""
    w = RecordWriter(node_file(run.dir / "profile", node))
    w.write({"type": "start", "t": 1000.0, "node": node, "rank": 0})
    w.write({"type": "source", "t": 1000.0, "node": node, "name": "psutil", "status": "measured"})
    w.write(
        {
            "type": "source",
            "t": 1000.0,
            "node": node,
            "name": "rapl",
            "status": "unavailable",
            "reason": NO_RAPL,
        }
    )
    w.write(
        {
            "type": "source",
            "t": 1000.0,
            "node": node,
            "name": "nvml",
            "status": "unavailable",
            "reason": NO_NVML,
        }
    )
    for t in (1000.0, 1030.0):
        w.write({"type": "sample", "t": t, "node": node})
    w.write({"type": "end", "t": 1030.0, "node": node})
    w.close()


def _report(tmp_path, nodes: list[str]) -> dict:
    run = make_run(tmp_path)
    for rank, node in enumerate(nodes):
        write_rank(run, rank, wall_s=3, peak_mb=50.0, cpu_s=1.0, node=node)
        _bare_node(run, node)
    return build_report(run)


def test_a_two_node_job_without_rapl_or_gpu_has_one_energy_line(tmp_path):
    text = render_text(_report(tmp_path, ["n1", "n2"]))
    energy = [line for line in text.splitlines() if line.lstrip().startswith("energy")]
    assert energy == [f"  energy: unavailable on n[1-2]: cpu_package, dram: {NO_RAPL}; gpu: {NO_NVML}"]
    assert text.count(NO_RAPL) == 1 and text.count(NO_NVML) == 1


def test_sixty_four_nodes_say_it_once_too(tmp_path):
    text = render_text(_report(tmp_path, [f"c{i:02d}" for i in range(1, 65)]))
    assert text.count(NO_RAPL) == 1
    assert (
        f"  energy: unavailable on c[01-64]: cpu_package, dram: {NO_RAPL}; gpu: {NO_NVML}"
        in text.splitlines()
    )


def test_the_json_lists_each_sources_status_once_with_its_nodes(tmp_path, monkeypatch):
    report = json.loads(json.dumps(_report(tmp_path, ["n1", "n2"])))
    assert schema.validate(report, SCHEMA) == []
    rows = report["source_status"]
    sources = {r["name"]: r for r in rows if r["kind"] == "source"}
    assert sorted(sources) == ["nvml", "psutil", "rapl"]  # each source once, not once per node
    assert sources["rapl"] == {
        "kind": "source",
        "name": "rapl",
        "status": "unavailable",
        "reason": NO_RAPL,
        "nodes": ["n1", "n2"],
        "node_range": "n[1-2]",
    }
    assert sources["psutil"]["status"] == "measured" and sources["psutil"]["reason"] is None
    energy = {r["name"]: r for r in rows if r["kind"] == "energy"}
    assert {k: (r["status"], r["node_range"]) for k, r in energy.items()} == {
        "cpu_package": ("unavailable", "n[1-2]"),
        "dram": ("unavailable", "n[1-2]"),
        "gpu": ("unavailable", "n[1-2]"),
    }
    assert len(rows) == len({(r["kind"], r["name"], r["status"], r["reason"]) for r in rows})


def test_nodes_with_different_reasons_are_grouped_apart(tmp_path):
    run = make_run(tmp_path)
    for rank, node in enumerate(["n1", "n2", "n3"]):
        write_rank(run, rank, wall_s=3, peak_mb=50.0, cpu_s=1.0, node=node)
        _bare_node(run, node)
    path = node_file(run.dir / "profile", "n3")
    path.write_text(path.read_text().replace(NO_RAPL, "RAPL needs root here"))
    rapl = [r for r in build_report(run)["source_status"] if r["name"] == "rapl"]
    assert [(r["node_range"], r["reason"]) for r in rapl] == [
        ("n[1-2]", NO_RAPL),
        ("n3", "RAPL needs root here"),
    ]


def test_the_html_page_says_it_once(tmp_path):
    page = render_html(_report(tmp_path, ["n1", "n2"]))
    assert page.count("no RAPL zones under /sys/class/powercap") == 1
    assert page.count("NVML did not start") == 1
    assert "n[1-2]" in page


@pytest.mark.parametrize(
    ("names", "text"),
    [
        (["n1", "n2"], "n[1-2]"),
        (["n1"], "n1"),
        (["n1", "n3", "n2", "n7"], "n[1-3,7]"),
        (["gpu01", "gpu02", "login"], "gpu[01-02],login"),
        (["c08", "c09", "c10", "c1"], "c[08-10],c1"),
    ],
)
def test_node_ranges_as_slurm_writes_them(names, text):
    assert compress_nodelist(names) == text
    assert sorted(expand_nodelist(text)) == sorted(names)


def test_energy_in_communication_does_not_repeat_why_there_is_no_counter():
    from hpcx.reports.terminal import comm_energy_text

    reason = f"no node with an energy counter (n1, n2: no energy counter: cpu_package, dram: {NO_RAPL})"
    text = comm_energy_text({"status": "unavailable", "reason": reason})
    assert text == "energy in communication: n/a (no node with an energy counter: see energy)"
    assert NO_RAPL not in text
