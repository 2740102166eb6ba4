"""Learning curves in the per-job report (issue 15 item 5): from the job's own metric records, written here as
the runtime writes them (hpcx.runtime.log under HPCX_RUN_DIR, or RecordWriter for a requeued job's attempts)."""

import json

import pytest

from hpcx.reports import build_report
from hpcx.reports.curves import MAX_CURVE_POINTS, curves_section, downsample, sparkline
from hpcx.reports.terminal import render_text
from hpcx.rundir.layout import metrics_dir, rank_file
from hpcx.rundir.records import RecordWriter
from hpcx.site import schema
from tests.conftest import REPO
from tests.unit.reports.test_report import make_run, write_rank

SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())


def _log(run, task=None, attempt_steps=((0, range(10)),), **names):
    """Rank 0's metric records: for each (attempt, steps), one record per step with each name's value
    ``f(attempt, step)``."""
    w = RecordWriter(rank_file(metrics_dir(run.dir, task), 0))
    for attempt, steps in attempt_steps:
        for step in steps:
            values = {name: f(attempt, step) for name, f in names.items()}
            w.write(
                {"type": "metric", "t": 1000.0 + step, "rank": 0, "attempt": attempt, "step": step, **values}
            )
    w.close()


def test_a_requeued_runs_curve_takes_each_steps_latest_attempt(tmp_path):
    run = make_run(tmp_path)
    write_rank(run, 0, wall_s=3, peak_mb=10.0, cpu_s=1.0)
    # attempt 0 reached step 7, attempt 1 resumed from the checkpoint at step 5 and logged 5..9 again
    _log(run, attempt_steps=((0, range(8)), (1, range(5, 10))), loss=lambda a, s: 100 * a + s)
    curves = build_report(run)["curves"]
    (loss,) = curves["metrics"]
    assert curves["attempts"] == [0, 1] and curves["main"] == "loss"
    assert loss["step"] == list(range(10))
    assert loss["value"] == [0, 1, 2, 3, 4, 105, 106, 107, 108, 109]


def test_the_main_metric_is_loss_and_the_rest_are_curves_too(tmp_path, monkeypatch):
    run = make_run(tmp_path)
    monkeypatch.setenv("HPCX_RUN_DIR", str(run.dir))
    from hpcx.runtime import log

    for step in range(4):
        log(step, acc=step / 4, loss=1.0 / (step + 1), lr=float("nan") if step == 2 else 0.1)
    curves = curves_section(run.dir, None)
    assert curves["file"] == "metrics/rank-00000.jsonl" and curves["main"] == "loss"
    by_name = {c["name"]: c for c in curves["metrics"]}
    assert by_name["acc"]["value"] == [0.0, 0.25, 0.5, 0.75]
    assert by_name["lr"]["step"] == [0, 1, 3], "a non-finite value is left out of the curve"
    assert schema.validate(json.loads(json.dumps({"curves": curves})), _curves_only()) == []


def _curves_only():
    return {"type": "object", "properties": {"curves": SCHEMA["properties"]["curves"]}}


def test_downsampling_keeps_the_first_and_the_last_point():
    points = list(range(10_007))
    kept = downsample(points, 500)
    assert len(kept) == 500 and kept[0] == 0 and kept[-1] == 10_006 and kept == sorted(kept)
    assert downsample(points[:20], 500) == points[:20]


def test_a_long_run_keeps_report_json_small(tmp_path):
    run = make_run(tmp_path)
    _log(run, attempt_steps=((0, range(20_000)),), loss=lambda a, s: 1.0 / (s + 1))
    (loss,) = curves_section(run.dir, None)["metrics"]
    assert len(loss["step"]) == MAX_CURVE_POINTS and loss["steps"] == 20_000
    assert loss["step"][0] == 0 and loss["step"][-1] == 19_999


def test_sparkline_rises_with_an_increasing_series_and_falls_with_a_decreasing_one():
    up = sparkline([float(i) for i in range(100)])
    down = sparkline([100.0 - i for i in range(100)])
    assert len(up) == 40 and up[0] == "▁" and up[-1] == "█" and list(up) == sorted(up)
    assert down[0] == "█" and down[-1] == "▁" and list(down) == sorted(down, reverse=True)
    assert sparkline([2.0, 2.0, 2.0]) == "▁▁▁" and sparkline([]) == ""


def test_the_terminal_shows_the_main_metrics_sparkline(tmp_path):
    run = make_run(tmp_path)
    write_rank(run, 0, wall_s=3, peak_mb=10.0, cpu_s=1.0)
    _log(run, attempt_steps=((0, range(50)),), loss=lambda a, s: 5.0 - s / 10, acc=lambda a, s: s / 50)
    text = render_text(build_report(run))
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith("curve ")]
    assert line.startswith("  curve loss  █") and "▁  5 -> 0.1 (steps 0-49, 50 logged)" in line


def test_a_report_without_metrics_has_no_curve(tmp_path):
    run = make_run(tmp_path)
    write_rank(run, 0, wall_s=3, peak_mb=10.0, cpu_s=1.0)
    report = build_report(run)
    assert report["curves"] is None and "curve " not in render_text(report)


def test_an_array_tasks_report_reads_the_tasks_metrics(tmp_path):
    run = make_run(tmp_path)
    _log(run, task=3, loss=lambda a, s: float(s))
    curves = curves_section(run.dir, 3)
    assert curves["file"] == "metrics/task-00003/rank-00000.jsonl" and curves_section(run.dir, None) is None


def test_report_html_draws_every_metric_and_escapes_their_names(tmp_path):
    pytest.importorskip("matplotlib")
    from hpcx.reports.html import render_html

    run = make_run(tmp_path)
    write_rank(run, 0, wall_s=3, peak_mb=10.0, cpu_s=1.0)
    _log(run, loss=lambda a, s: 1.0 / (s + 1), **{"<b>acc</b>": lambda a, s: s / 10})
    page = render_html(build_report(run))
    assert '<figure id="fig-curves">' in page and "<svg" in page.split('id="fig-curves"')[1][:400]
    assert "<b>acc</b>" not in page and "&lt;b&gt;acc&lt;/b&gt;" in page
    assert "<h2>Learning curves</h2>" in page
