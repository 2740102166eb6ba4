"""`hpcx compare --out`: each group's learning curve (issue 15 item 5), the mean over the group's replicates at
each step with Student's t interval, from metric files the runtime wrote (hpcx.runtime.log) and a requeued
attempt appended with hpcx's own RecordWriter."""

import math

import pytest

from hpcx.compare.comparison import compare
from hpcx.compare.outputs import group_curves, write_outputs
from hpcx.compare.replicates import Options
from hpcx.fsutil import atomic_write_json
from hpcx.rundir.layout import metrics_dir, rank_file
from hpcx.rundir.records import RecordWriter
from hpcx.runs import create_run
from tests.unit.compare.test_compare import LOSS, _single, _sweep

pytest.importorskip("numpy")
pytest.importorskip("matplotlib")


def _t_interval(values, level=0.95):
    from scipy import stats as sps

    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = sps.t.ppf(1 - (1 - level) / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def test_each_group_gets_the_mean_curve_and_its_t_interval(runs_root, monkeypatch):
    run, _ = _sweep(runs_root, monkeypatch)  # steps 0, 10, 20 per task: 2.0, final + 0.2, final
    doc = compare([run], Options(metric="loss"))
    curves = group_curves(doc, [run])
    assert curves["metric"] == "loss" and curves["level"] == 0.95
    by_name = {g["name"]: g for g in curves["groups"]}
    assert len(by_name) == 2
    g = next(g for g in curves["groups"] if "0.1" in g["name"])
    assert g["step"] == [0, 10, 20] and g["n"] == [3, 3, 3] and g["replicates"] == 3
    mean, low, high = _t_interval(LOSS[0.1])
    assert g["mean"][-1] == pytest.approx(mean) and g["mean"][0] == pytest.approx(2.0)
    assert g["low"][-1] == pytest.approx(low) and g["high"][-1] == pytest.approx(high)
    assert g["low"][0] == pytest.approx(2.0), "equal values: a zero-width interval"


def test_a_requeued_replicate_counts_with_its_latest_attempt(runs_root, monkeypatch):
    run, tasks = _sweep(runs_root, monkeypatch)
    first = next(t for t in tasks if t.params["lr"] == 0.1)
    w = RecordWriter(rank_file(metrics_dir(run.dir, first.id), 0))
    w.write({"type": "metric", "t": 2000.0, "rank": 0, "attempt": 1, "step": 20, "loss": 0.01})
    w.close()
    doc = compare([run], Options(metric="loss"))
    g = next(g for g in group_curves(doc, [run])["groups"] if "0.1" in g["name"])
    expected = [0.01 if v == LOSS[0.1][0] else v for v in LOSS[0.1]]
    assert g["n"][-1] == 3 and g["mean"][-1] == pytest.approx(sum(expected) / 3)


def test_compare_out_writes_the_curves_and_inlines_them(runs_root, monkeypatch, tmp_path):
    run, _ = _sweep(runs_root, monkeypatch)
    doc = compare([run], Options(metric="loss"))
    out = tmp_path / "cmp"
    written = {p.name for p in write_outputs(doc, out, [run])}
    assert {"curves.svg", "curves.pdf"} <= written
    assert (out / "curves.pdf").read_bytes().startswith(b"%PDF")
    html = (out / "compare.html").read_text()
    assert '<figure id="plot-curves" class="plot">' in html
    assert "mean of rank 0&#x27;s logged loss at each step" in html and "95% Student t interval" in html
    assert "![curves.svg](curves.svg)" in (out / "compare.md").read_text()
    assert not (tmp_path / "none").exists()
    plain = {p.name for p in write_outputs(doc, tmp_path / "none")}
    assert "curves.svg" not in plain, "without the runs, the outputs are as before"


def test_a_report_metric_comparison_draws_the_main_logged_metric(runs_root, monkeypatch):
    a = _single(runs_root, monkeypatch, {"lr": 1, "seed": 0}, [(0, 1.0), (1, 0.5)])
    b = _single(runs_root, monkeypatch, {"lr": 1, "seed": 1}, [(0, 3.0), (1, 1.5)])
    doc = {
        "metric": {"name": "wall_s", "source": "report"},
        "settings": {"ci": {"level": 0.9}},
        "groups": [{"name": "lr=1", "replicates": [{"run_id": r.id, "task": None} for r in (a, b)]}],
    }
    (g,) = group_curves(doc, [a, b])["groups"]
    assert g["mean"] == [2.0, 1.0] and group_curves(doc, [a, b])["metric"] == "loss"
    assert group_curves(doc, []) is None


def test_a_metric_name_with_html_is_escaped_on_the_page(runs_root, monkeypatch, tmp_path):
    from hpcx.runtime import metrics

    nasty = "<i>loss</i><script>x</script>"
    runs = []
    for seed in range(2):
        run = create_run(runs_root)
        atomic_write_json(run.dir / "manifest.json", {"variables": {"seed": seed}, "resources": {}})
        monkeypatch.setenv("HPCX_RUN_DIR", str(run.dir))
        monkeypatch.delenv("HPCX_TASK_ID", raising=False)
        metrics._records.close()
        for step in range(3):
            metrics.log(step, **{nasty: 1.0 / (step + 1 + seed)})
        runs.append(run)
    doc = compare(runs, Options(metric=nasty))
    write_outputs(doc, tmp_path / "cmp", runs)
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert 'id="plot-curves"' in html and "<script>" not in html and "<i>" not in html
    assert "logged &lt;i&gt;loss&lt;/i&gt;&lt;script&gt;x&lt;/script&gt; at each step" in html
