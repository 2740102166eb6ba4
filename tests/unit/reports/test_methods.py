"""Every headline number of a report carries how it was obtained (counter, sampled, measured, derived,
estimated) and from which source, in report.json and on the page; a number the report lacks gets no label."""

from __future__ import annotations

from hpcx.reports.html import render_html
from tests.unit.reports.test_report_schema import _reports

# Summary numbers that are counts, limits or requests, not measurements: they need no method.
NOT_MEASURED = {
    "ranks",
    "nodes",
    "cpus_per_task",
    "time_limit_s",
    "mem_req_mb",
    "exit_code",
    "gpus",
    "slowest_rank",
    "energy_kwh",
    "energy_shared_j",
    "median_rank_busy_s",
    "longest_task_s",
    "failed_ranks",
}


def test_every_measured_summary_number_is_labelled(tmp_path):
    for report in _reports(tmp_path):
        methods = report["methods"]
        for key, value in report["summary"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in NOT_MEASURED:
                assert f"summary.{key}" in methods, (key, sorted(methods))
        for label in methods.values():
            assert (
                label["method"] in {"counter", "sampled", "measured", "derived", "estimated"}
                and label["source"]
            )
        if report["comm"]:
            assert methods["comm.seconds"]["method"] == "measured" and "comm.share" in methods
            assert methods["profiler.comm_added_s"]["method"] == "estimated"  # records without cost_us
        assert "summary.energy_j" not in methods  # no energy counter in these records: no number, no label


def test_the_source_follows_where_the_number_came_from(tmp_path):
    only_acct, profiled, both, killed = list(_reports(tmp_path))
    assert only_acct["methods"]["summary.cpu_s"] == {"method": "counter", "source": "sacct TotalCPU"}
    assert profiled["methods"]["summary.cpu_s"]["source"].startswith("hpcx.run per rank: user + system time")
    assert profiled["methods"]["summary.elapsed_s"]["method"] == "measured"
    assert both["methods"]["summary.elapsed_s"] == {"method": "counter", "source": "sacct Elapsed"}
    assert both["methods"]["summary.cpu_efficiency_slurm"]["method"] == "derived"
    assert "summary.cpu_efficiency_slurm" not in profiled["methods"]  # no Slurm record: no Slurm number


def test_the_page_shows_the_labels(tmp_path):
    report = list(_reports(tmp_path))[1]
    page = render_html(report)
    assert "<h2>How each number was obtained</h2>" in page
    assert "<td><code>summary.peak_rss_mb_max</code></td><td>sampled</td>" in page
