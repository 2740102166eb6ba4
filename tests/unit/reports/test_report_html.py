"""report/report.html: one self-contained page. Built from records written with the real writers (rank, node
with GPU samples and RAPL edges, comm with several message sizes, regions through hpcx.region itself), then
checked as HTML (nothing loaded from outside, every plot inline, text escaped, the same bytes twice) and, with
Debian's chromium, loaded headless: no console message, its script ran, and the screenshot shows plots."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from hpcx.reports import build_report, render_text, write_html
from hpcx.reports.html import heatmap_grid, render_html
from hpcx.reports.timelines import gpu_stats
from hpcx.rundir.records import RecordWriter, node_file
from tests.unit.reports.test_report import make_run, sacct, write_comm, write_rank

pytest.importorskip("matplotlib")
CHROMIUM = shutil.which("chromium")


def write_node(run, node: str, *, gpus: int, seconds: int = 60, busy_until: int = 40) -> None:
    w = RecordWriter(node_file(run.dir / "profile", node))
    w.write({"type": "start", "t": 1000.0, "node": node, "host": node, "rank": 0, "interval_s": 1.0})
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
            "status": "measured",
            "gpus": list(range(gpus)),
            "no_energy_counter": [],
        }
    )
    for i in range(seconds + 1):
        sample = {
            "type": "sample",
            "t": 1000.0 + i,
            "node": node,
            "memory": {"used_mb": 4000.0 + 30 * i, "available_mb": 60000.0},
            "network": {"rx_bytes": i * 2_000_000, "tx_bytes": i * 1_000_000},
            "nvml": [
                {
                    "index": g,
                    "power_w": 300.0 if i < busy_until else 60.0,
                    "util_pct": 95.0 if i < busy_until else 0.0,
                    "mem_used_mb": 20000.0 + g,
                    "sm_mhz": 1980,
                    "throttle": 0x4 if i % 10 == 0 else 0,
                }
                for g in range(gpus)
            ],
        }
        if i % 10 == 0 or i == seconds:
            sample["edge"] = True
            sample["rapl"] = {"package_j": 200.0 * i, "dram_j": 0.0, "wraps": 0}
            for g, gpu in enumerate(sample["nvml"]):
                gpu["energy_j"] = 250.0 * i + g
        w.write(sample)
    w.write({"type": "end", "t": 1000.0 + seconds, "node": node, "samples": seconds + 1})
    w.close()


def write_comm_sizes(run, rank: int) -> None:
    w = RecordWriter(run.dir / "profile" / f"comm-rank-{rank:05d}-p77.jsonl")
    entries = [
        {
            "lib": "torch",
            "call": "all_reduce",
            "bucket": 2**b,
            "ranks": 4,
            "calls": 10,
            "bytes": 10 * 2**b,
            "seconds": 0.1 * b,
            "algbw_gbs": 1.0,
            "busbw_gbs": 1.5,
        }
        for b in (10, 20, 24)
    ]
    w.write(
        {
            "type": "comm",
            "t": 1060.0,
            "rank": rank,
            "format": "hpcx.comm/1",
            "pid": 77,
            "wall_s": 60.0,
            "seconds": sum(e["seconds"] for e in entries),
            "entries": entries,
        }
    )
    w.close()


def write_regions(run, rank: int, step_s: float, name: str = "forward") -> None:
    """Spans written by hpcx.region itself, in a process of its own for ``rank``."""
    code = (
        "import time, hpcx\n"
        "for _ in range(3):\n"
        f"    with hpcx.region({name!r}): time.sleep({step_s})\n"
        "    with hpcx.region('backward'): time.sleep(0.002)\n"
    )
    env = {**os.environ, "HPCX_PROFILE_DIR": str(run.dir / "profile"), "HPCX_RANK": str(rank)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


@pytest.fixture
def gpu_run(tmp_path):
    run = make_run(tmp_path, mem_mb=65536, time_min=60)
    manifest = json.loads((run.dir / "manifest.json").read_text())
    manifest["command"] = ["python", "train.py", "--tag", "<b>&'\""]
    manifest["git"] = {"commit": "0123abcd" * 5, "dirty": True, "branch": "main"}
    (run.dir / "manifest.json").write_text(json.dumps(manifest))
    for rank in range(4):
        write_rank(
            run,
            rank,
            wall_s=60,
            peak_mb=1000.0 * (rank + 1),
            cpu_s=30.0 + 10 * rank,
            node=f"n{rank // 2 + 1}",
        )
        write_comm_sizes(run, rank)
    write_comm(run, 0, seconds=2.0)
    for n in (1, 2):
        write_node(run, f"n{n}", gpus=2)
    return run


def _report(run, **kw):
    acct = sacct(
        (
            "42",
            "COMPLETED",
            "0:0",
            "00:01:00",
            "00:02:00",
            "",
            "cpu=4,mem=64G,node=2",
            "n[1-2]",
            "s",
            "e",
            "j",
        )
    )
    return build_report(
        run, acct, site_energy={"carbon_intensity_g_per_kwh": 400, "pue": 1.2}, site_name="t", **kw
    )


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href") and value and not value.startswith(("#", "data:")):
                self.external.append(f"{tag} {name}={value}")
        if tag == "link":
            self.external.append("link")

    def handle_data(self, data):
        self.text.append(data)


def test_page_is_self_contained_with_every_plot_and_escaped_text(gpu_run):
    write_regions(gpu_run, 0, 0.001)
    write_regions(gpu_run, 1, 0.02)
    report = _report(gpu_run)
    page = render_html(report)
    scan = _Scan()
    scan.feed(page)
    assert scan.external == [], "the page must load nothing from outside"
    figures = re.findall(r'<figure id="fig-([a-z]+)"><svg', page)
    assert figures == ["nodes", "gpus", "heatmap", "comm", "regions"]
    text = "".join(scan.text)
    assert "--tag <b>&'\"" in text and "<b>&'" not in page  # the command is shown, and escaped
    # Advice with the number (21 of 61 samples idle), once for the four GPUs.
    assert "GPU 0 on n1 idle 34% of the run (mean utilisation 62%); 3 more GPU(s)" in text
    assert "region 'forward': rank 1" in text  # the imbalance, by hpcx.region's own records
    assert "carbon:" in text and "g CO2e" in text and report["summary"]["carbon_g"] > 0
    assert "energy in communication: " in text and "derived: node energy per window" in text
    assert "0123abcd" in text and "uncommitted changes" in text  # provenance
    assert render_html(report) == page, "the same report renders to the same bytes"
    # Each inline SVG has its own ids: the clip paths of one figure must not capture another's.
    ids = re.findall(r'<clipPath id="([^"]+)"', page)
    assert ids and len(ids) == len(set(ids))


def test_report_numbers_behind_the_page(gpu_run):
    report = _report(gpu_run)
    s = report["summary"]
    assert s["gpus"] == 4 and s["gpu_idle_share_max"] == pytest.approx(21 / 61)  # util 0 from second 40 on
    assert s["gpu_mem_used_peak_mb"] == 20001.0
    g = report["node_timelines"][0]["gpus"][0]
    assert g["throttled_share"] == pytest.approx(7 / 61) and g["power_max_w"] == 300.0
    # RAPL: 200 J every second, so every derived power point is 200 W.
    assert set(report["node_timelines"][0]["timeline"]["cpu_power_w"][1:]) == {200.0}
    # Carbon: measured kWh x PUE x intensity.
    assert report["carbon"]["g_co2e"] == pytest.approx(s["energy_j"] / 3.6e6 * 1.2 * 400)
    # Energy in communication on n2: its two ranks spent 5.4 s of their 60 s each in calls, so 9% of the
    # node's 42 kJ (RAPL 12 kJ + two GPUs at 15 kJ).
    assert report["comm"]["energy"]["nodes"]["n2"]["energy_j"] == pytest.approx(0.09 * 42000)
    sizes = {(r["call"], r["bucket"]): r for r in report["comm"]["sizes"]}
    assert sizes[("all_reduce", 2**20)]["calls"] == 40 and sizes[("Allreduce", 2**20)]["seconds"] == 2.0


def test_dollar_signs_are_text_and_throttling_is_read_from_the_right_bits(tmp_path):
    run = make_run(tmp_path)
    write_rank(run, 0, wall_s=5, peak_mb=10.0, cpu_s=1.0)
    write_rank(run, 1, wall_s=5, peak_mb=10.0, cpu_s=1.0)  # never enters a region: counts as 0 s
    write_regions(run, 0, 0.001, name=r"load $\foo$ x")
    report = build_report(run)
    region = next(r for r in report["regions"]["regions"] if r["name"] == r"load $\foo$ x")
    assert region["imbalance"] == pytest.approx(1.0) and region["slowest_rank"] == 0  # mean: half of rank 0
    assert r"load $\foo$ x" in render_html(report)  # drawn as text, not parsed as TeX
    rows = [{"type": "start", "t": 0.0}] + [
        {"type": "sample", "t": float(i), "nvml": [{"index": 0, "util_pct": 90, "throttle": bits}]}
        for i, bits in enumerate((0x20, 0x100, 0x1, 0x10, 0x80, 0))
    ]  # SW thermal and power brake throttle; display clock, idle and sync boost do not
    assert gpu_stats(rows)[0]["throttled_share"] == pytest.approx(2 / 6)


def test_heatmap_bins_cpu_use_and_memory_per_rank():
    ranks = [
        {"rank": 0, "timeline": [[0, 1024, 0], [1, 1024, 1], [2, 2048, 3]]},
        {"rank": 1, "timeline": [[0, 512, 0], [2, 512, 1]]},
    ]
    cpu, rss, edges = heatmap_grid(ranks, bins=2)
    assert edges.tolist() == [0.0, 1.0, 2.0]
    assert cpu[0].tolist() == [1.0, 2.0]  # 1 core busy in the first second, 2 in the second
    assert rss[0].tolist() == [1.0, 1.5] and rss[1][0] == 0.5  # samples at 1 s and 2 s share the last bin
    assert cpu[1][1] == 0.5  # 1 CPU second over 2 wall seconds, counted where the sample lands
    # On the job's clock: rank 1 started 2 s after rank 0 (rank 0 ran an earlier step too), so its samples
    # land 2 s later, not beside rank 0's first ones.
    ranks = [
        {"rank": 0, "start_t": 100.0, "timeline": [[0, 1024, 0], [4, 1024, 4]]},
        {"rank": 1, "start_t": 102.0, "timeline": [[0, 2048, 0], [2, 2048, 2]]},
    ]
    cpu, rss, edges = heatmap_grid(ranks, bins=2)
    assert edges.tolist() == [0.0, 2.0, 4.0]
    assert np.isnan(rss[1][0]) and rss[1][1] == 2.0 and cpu[1][1] == 1.0


def test_array_run_lists_tasks_and_reports_one(tmp_path):
    run = make_run(tmp_path)
    (run.dir / "job.json").write_text(json.dumps({"scheduler": "slurm", "job_id": "42"}))
    for task, code in ((0, 0), (1, 3)):
        sub = make_run(tmp_path / f"t{task}")
        write_rank(sub, 0, wall_s=5, peak_mb=100.0 * (task + 1), cpu_s=2.0, exit_code=code)
        shutil.copytree(sub.dir / "profile", run.dir / "profile" / f"task-{task:05d}")
    acct = sacct(
        ("42_0", "COMPLETED", "0:0", "00:00:05", "00:00:02", "", "cpu=1,mem=1G,node=1", "n1", "s", "e", "j"),
        ("42_1", "FAILED", "3:0", "00:00:05", "00:00:02", "", "cpu=1,mem=1G,node=1", "n1", "s", "e", "j"),
    )
    report = build_report(run, acct)
    assert [(t["task"], t["state"], t["exit_code"], t["peak_rss_mb"]) for t in report["tasks"]] == [
        (0, "COMPLETED", 0, 100.0),
        (1, "FAILED", 3, 200.0),
    ]
    text = render_text(report)
    assert "2 array tasks with records" in text and "FAILED" in text.split("array tasks")[1]
    # Without Slurm's record the array's state comes from its tasks: one failed, so the array failed.
    alone = build_report(run)
    assert (alone["summary"]["state"], alone["summary"]["exit_code"]) == ("FAILED", 3)
    one = build_report(run, acct, task=1)
    assert one["task"] == 1 and one["summary"]["state"] == "FAILED" and one["summary"]["exit_code"] == 3
    assert one["ranks"][0]["peak_rss_mb"] == 200.0
    assert write_html(run, one).name == "task-00001.html"
    from hpcx.errors import UsageError

    with pytest.raises(UsageError, match="no records of task 7") as err:
        build_report(run, acct, task=7)
    assert "0-1" in err.value.hint


def chromium_load(page: Path, tmp_path: Path) -> tuple[str, list[str], Path]:
    """Load ``page`` in headless Chromium: its DOM after the scripts ran, the console messages, and a
    screenshot."""
    shot = tmp_path / "shot.png"
    args = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--hide-scrollbars",
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run(
        [*args, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90, env=env
    )
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    subprocess.run(
        [*args, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()],
        capture_output=True,
        timeout=90,
        env=env,
        check=True,
    )
    return dom.stdout, console, shot


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup installs it)")
def test_chromium_loads_the_page_without_console_messages_and_shows_plots(gpu_run, tmp_path):
    import matplotlib.image

    write_regions(gpu_run, 0, 0.001)
    path = write_html(gpu_run, _report(gpu_run))
    dom, console, shot = chromium_load(path, tmp_path)
    assert console == [], console
    assert 'data-hpcx="ready"' in dom  # the page's script ran to its end
    pixels = matplotlib.image.imread(str(shot))[:, :, :3]
    colours = {tuple(p) for p in (pixels[::4, ::4].reshape(-1, 3) * 255).astype(int).tolist()}
    ink = (pixels.min(axis=2) < 0.9).mean()
    assert len(colours) > 200 and ink > 0.02, (len(colours), ink)
    # The same check on a page with a script error catches it: the console is really read.
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    _, bad_console, _ = chromium_load(bad, tmp_path / "b")
    assert any("undefinedFunction" in line for line in bad_console)


def test_rich_reports_validate_against_the_published_schema(gpu_run, tmp_path, monkeypatch):
    """GPUs, RAPL, comm sizes and energy, regions, carbon: every key the page draws is in the schema."""
    from hpcx.site import schema
    from tests.conftest import REPO

    published = json.loads((REPO / "docs" / "report-schema.json").read_text())
    write_regions(gpu_run, 2, 0.001)
    report = json.loads(json.dumps(_report(gpu_run)))
    assert report["comm"]["energy"]["status"] == "measured" and report["regions"]["regions"]
    assert schema.validate(report, published) == []
