"""Merge per-rank profile records, the comm records and Slurm's accounting into report.json (hpcx.report/5).

Pure over the records; the I/O is at the two ends. The parts live beside this module: the ranks and the rule
for a rank's job steps (:mod:`hpcx.reports.ranks`), the summary (:mod:`~hpcx.reports.summary`), array tasks
(:mod:`~hpcx.reports.tasks`), nodes, I/O and provenance (:mod:`~hpcx.reports.sections`) and the failure
(:mod:`~hpcx.reports.failure`); this module assembles the document and writes it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.errors import UsageError
from hpcx.fsutil import atomic_write, read_json
from hpcx.reports.accounting import summarize_accounting
from hpcx.reports.advice import advise
from hpcx.reports.comm import summarize_comm
from hpcx.reports.curves import curves_section
from hpcx.reports.failure import failure
from hpcx.reports.launch import attach_gpu_memory, summarize_launch
from hpcx.reports.methods import number_methods
from hpcx.reports.once import source_status
from hpcx.reports.ranks import (
    MAX_TIMELINE_POINTS,
    RANK_TIMELINE_POINTS,
    end_t,
    summarize_rank,
    summarize_rank_file,
    summarize_ranks,
)
from hpcx.reports.sections import provenance, summarize_io, summarize_nodes
from hpcx.reports.sharing import mark_shared, sharing_of
from hpcx.reports.summary import gpu_summary, grep_line, slowest_rank, summarize
from hpcx.reports.summary import run_state as _state
from hpcx.reports.tasks import array_figures, own_ids, summarize_tasks, task_accounting
from hpcx.reports.timelines import carbon, node_details, profiler_cost, regions
from hpcx.rundir import layout
from hpcx.rundir.layout import ACCOUNTING_FILE
from hpcx.rundir.records import read_nodes
from hpcx.runs import Run, id_ranges
from hpcx.runs.stop import STOPPED, stop_record

REPORT_SCHEMA = "hpcx.report/5"
# Importers of this module's names from before its parts moved out (compare/, tests) still find them here.
__all__ = [
    "MAX_TIMELINE_POINTS",
    "REPORT_SCHEMA",
    "_state",
    "build_report",
    "end_t",
    "report_stem",
    "summarize_nodes",
    "summarize_rank",
    "summarize_rank_file",
    "summarize_ranks",
    "write_html",
    "write_report",
]


@dataclass(frozen=True)
class _Inputs:
    """What a report is built from: the run, one task or None, its profile directory, its resources (the
    manifest's values), its Slurm accounting (summarized), its ranks, its array tasks, the other jobs on its
    nodes, the timeline length."""

    run: Run
    task: int | None
    profile: Path
    resources: dict[str, Any]
    acct: dict[str, Any] | None
    ranks: list[dict[str, Any]]
    task_rows: list[dict[str, Any]] | None
    shared: dict[str, list[str]] | None
    max_points: int


@dataclass(frozen=True)
class _Sections:
    """The report's sections from the records beside the ranks (:func:`_sections`)."""

    nodes: list[dict[str, Any]]
    shared_j: float
    details: dict[tuple[str, int], dict[str, Any]]
    since: dict[int, float]
    comm: dict[str, Any] | None
    regions: dict[str, Any] | None


@dataclass(frozen=True)
class _Totals:
    """The summary, the profiler's cost and the carbon estimate (:func:`_totals`)."""

    summary: dict[str, Any]
    profiler: dict[str, Any]
    carbon: dict[str, Any]


def build_report(
    run: Run,
    accounting: dict[str, Any] | None = None,
    *,
    task: int | None = None,
    site_energy: dict[str, Any] | None = None,
    site_name: str | None = None,
    max_points: int = MAX_TIMELINE_POINTS,
    shared: dict[str, list[str]] | None = None,
    node_jobs: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The report document of ``run`` from its profile records, manifest and Slurm accounting (given, else
    accounting.json when the run has one). Either source alone makes a report; with neither (a job not yet
    started, or not a Slurm job and never profiled) it raises UsageError saying so.

    An array job or sweep keeps each task's records in ``profile/task-NNNNN/``: the run's report lists the
    tasks (``tasks``) beside Slurm's totals, and ``task=N`` reports one task rank by rank. ``site_energy`` is
    the site's ``energy`` block (carbon intensity, PUE). ``shared``: per node, the other jobs that ran on it
    meanwhile (:func:`hpcx.reports.sharing.shared_jobs`; None when unknown): RAPL's whole-package energy on
    such a node is labelled as the node's and left out of the job's energy and carbon. ``node_jobs``: every
    job on the run's nodes in its window (:func:`hpcx.reports.sharing.query_node_jobs`), from which
    ``shared`` is worked out for the job, the task, or each array task."""
    inputs = _gather(run, accounting, task, shared, node_jobs, max_points)
    sections = _sections(inputs)
    totals = _totals(inputs, sections, site_energy or {}, site_name)
    report = _document(inputs, sections, totals)
    totals.summary["stopped"] = _stopped(run, task, totals.summary)
    totals.summary["failure"] = failure(run, report)
    report["methods"] = number_methods(report)
    report["line"] = grep_line(report)
    return report


def _gather(
    run: Run,
    accounting: dict[str, Any] | None,
    task: int | None,
    shared: dict[str, list[str]] | None,
    node_jobs: list[dict[str, str]] | None,
    max_points: int,
) -> _Inputs:
    """:func:`build_report`'s inputs read from the run directory; UsageError when there are none."""
    if accounting is None and (run.dir / ACCOUNTING_FILE).exists():
        accounting = read_json(run.dir / ACCOUNTING_FILE)
    profile = _profile_dir(run, task)
    if task is not None and accounting is not None:
        accounting = task_accounting(run, accounting, task)
    acct = summarize_accounting(accounting)
    ranks = summarize_ranks(profile, min(max_points, RANK_TIMELINE_POINTS))
    attach_gpu_memory(ranks, profile)
    task_rows = summarize_tasks(run, accounting, node_jobs) if task is None else None
    if shared is None and node_jobs is not None:
        shared = sharing_of(node_jobs, accounting, own_ids(run, task))
    if not ranks and acct is None and not task_rows:
        raise UsageError(
            f"run {run.id} has no profile records in {profile} and no Slurm accounting record",
            hint="the job has not started yet; submit with --profile for hpcx's own records",
        )
    res = {k: v["value"] for k, v in run.manifest.get("resources", {}).items()}
    return _Inputs(run, task, profile, res, acct, ranks, task_rows, shared, max_points)


def _profile_dir(run: Run, task: int | None) -> Path:
    """The run's profile directory, or one array task's; UsageError naming the tasks that have records when
    that task has none."""
    profile = layout.profile_dir(run.dir, task)
    if task is not None and not profile.is_dir():
        have = list(layout.task_dirs(layout.profile_dir(run.dir)))
        raise UsageError(
            f"run {run.id} has no records of task {task} (no {profile})",
            hint=f"its tasks with records: {id_ranges(have)}"
            if have
            else "it is not an array job or sweep, or no task has started; leave out --task",
        )
    return profile


def _stopped(run: Run, task: int | None, summary: dict[str, Any]) -> dict[str, Any] | None:
    """A job (or task) that ended COMPLETED after acknowledging `hpcx stop`: its state becomes STOPPED, and who
    asked and at which step it stopped are returned (``summary.stopped``); None otherwise."""
    record = stop_record(run.dir, task) if summary["state"] == "COMPLETED" else None
    if record is None:
        return None
    summary["state"] = STOPPED
    return {
        "requested_by": record.get("requested_by"),
        "step": record.get("step"),
        "stopped_at": record.get("stopped_at"),
    }


def _sections(inputs: _Inputs) -> _Sections:
    """Nodes (with the energy others shared), node timelines, communication and regions. Each rank's node
    and last attempt bound what counts: a requeued job's earlier processes wrote their own comm, regions and
    I/O files, which must not add to the last attempt's times."""
    profile, ranks = inputs.profile, inputs.ranks
    merged = read_nodes(profile)  # every node file parsed once, for energy, timelines and comm energy
    nodes = summarize_nodes(profile, merged)
    shared_j = mark_shared(nodes, inputs.shared)
    lives = {
        r["rank"]: (r["node"], r["start_t"], end_t(r))
        for r in ranks
        if r["node"] and r["start_t"] is not None
    }
    since = {rank: life[1] for rank, life in lives.items()}
    comm = summarize_comm(profile, {r["rank"]: r["wall_s"] for r in ranks}, lives, merged)
    region_doc = regions(profile, [r["rank"] for r in ranks], since)
    return _Sections(nodes, shared_j, node_details(merged, inputs.max_points), since, comm, region_doc)


def _totals(
    inputs: _Inputs, sections: _Sections, site_energy: dict[str, Any], site_name: str | None
) -> _Totals:
    """The summary (:func:`hpcx.reports.summary.summarize` and what the sections add to it), the profiler's
    cost and the carbon estimate."""
    ranks, comm = inputs.ranks, sections.comm
    summary = summarize(ranks, inputs.acct, inputs.resources, sections.nodes, comm)
    summary["energy_shared_j"] = sections.shared_j or None
    if inputs.task_rows and not ranks:
        summary.update(array_figures(inputs.task_rows, inputs.acct))
    summary.update(gpu_summary(sections.details, sections.regions))
    calls = sum(c["calls"] for c in comm["calls"]) if comm else None
    profiler = profiler_cost(ranks, inputs.profile, calls, sections.since)
    summary["profiler_share"] = profiler["sampler_share"]
    summary.update(slowest_rank(ranks, comm))
    carbon_doc = carbon(summary["energy_j"], site_energy, site_name, sections.shared_j)
    summary["carbon_g"] = carbon_doc.get("g_co2e")
    return _Totals(summary, profiler, carbon_doc)


def _document(inputs: _Inputs, sections: _Sections, totals: _Totals) -> dict[str, Any]:
    """The report document in its schema's order (its ``line`` and the summary's ``failure`` come last)."""
    manifest, ranks = inputs.run.manifest, inputs.ranks
    return {
        "schema": REPORT_SCHEMA,
        "run_id": inputs.run.id,
        "job_id": inputs.run.job.get("job_id"),
        "task": inputs.task,
        "kind": manifest.get("kind", {}).get("value"),
        "command": manifest.get("command"),
        "resources": inputs.resources,
        "launch": summarize_launch(inputs.profile, ranks),
        "summary": totals.summary,
        "accounting": inputs.acct,
        "ranks": ranks,
        "io": summarize_io(
            inputs.profile,
            [r["rank"] for r in ranks],
            sections.since,
            summaries=ranks,
            checkpoint_root=layout.under_task(inputs.run.dir / layout.CHECKPOINTS_DIR, inputs.task),
        ),
        "nodes": sections.nodes,
        "source_status": source_status(sections.nodes),
        "comm": sections.comm,
        "node_timelines": list(sections.details.values()),
        "regions": sections.regions,
        "carbon": totals.carbon,
        "profiler": totals.profiler,
        "tasks": inputs.task_rows,
        "provenance": provenance(manifest),
        "advice": advise(totals.summary, sections.comm, sections.details, sections.regions),
        "curves": curves_section(inputs.run.dir, inputs.task),
    }


def report_stem(report: dict[str, Any]) -> str:
    """``report`` for a run, ``task-NNNNN`` for one array task's report."""
    return layout.report_stem(report.get("task"))


def write_report(run: Run, report: dict[str, Any]) -> Path:
    """Write report/report.json (report/task-NNNNN.json for one task) atomically; return its path."""
    path = layout.report_file(run.dir, report.get("task"), ".json")
    path.parent.mkdir(exist_ok=True)
    # Compact: indented JSON is written by Python's slow encoder, seconds for a large job; jq reads either.
    text = json.dumps(report, sort_keys=True, separators=(",", ":"), default=str) + "\n"
    return atomic_write(path, text)


def write_html(run: Run, report: dict[str, Any]) -> Path:
    """Write report/report.html (or task-NNNNN.html) atomically; ImportError without matplotlib."""
    from hpcx.reports.html import render_html

    page = render_html(report)
    path = layout.report_file(run.dir, report.get("task"), ".html")
    path.parent.mkdir(exist_ok=True)
    return atomic_write(path, page)
