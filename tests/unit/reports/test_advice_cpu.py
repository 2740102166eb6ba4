"""Advice on CPU efficiency takes Slurm's figure when Slurm has one, 0 included (a job that only slept)."""

from hpcx.reports.advice import advise


def test_slurm_efficiency_of_zero_is_slurms_figure_not_a_missing_one():
    summary = {"cpu_efficiency_slurm": 0.0, "cpu_efficiency": 0.9, "cpus_per_task": 4}
    (item,) = [a for a in advise(summary, None) if a["kind"] == "cpu"]
    assert item["values"]["efficiency"] == 0.0 and "CPU efficiency 0% with 4 CPUs" in item["text"]


def test_hpcx_figure_when_slurm_has_none():
    summary = {"cpu_efficiency_slurm": None, "cpu_efficiency": 0.2, "cpus_per_task": 1}
    (item,) = [a for a in advise(summary, None) if a["kind"] == "cpu"]
    assert item["values"]["efficiency"] == 0.2
    assert not [a for a in advise({**summary, "cpu_efficiency": 0.9}, None) if a["kind"] == "cpu"]
