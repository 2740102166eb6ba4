"""An array job's or sweep's tasks in the run's report: one row per task with records (``profile/task-NNNNN/``),
each task's cut of Slurm's accounting, and what the tasks together say of the array."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hpcx.reports.accounting import summarize_accounting
from hpcx.reports.ranks import summarize_ranks
from hpcx.reports.sections import summarize_nodes
from hpcx.reports.sharing import mark_shared, sharing_of
from hpcx.reports.summary import own_energies, run_state
from hpcx.rundir.layout import TASK_TABLE, profile_dir, task_dirs
from hpcx.runs import Run, job_ids, task_job_id


def task_accounting(run: Run, accounting: dict[str, Any], task: int) -> dict[str, Any] | None:
    """accounting.json cut down to one array task's rows (the task and its steps)."""
    wanted = task_job_id(run, task)
    rows = [r for r in accounting.get("rows", []) if r["JobID"].split(".")[0] == wanted]
    return {**accounting, "rows": rows} if rows else None


def own_ids(run: Run, task: int | None) -> list[str]:
    """The Slurm ids that are the run's own: its jobs (an array's tasks with them), or one task's."""
    return job_ids(run.job) if task is None else [task_job_id(run, task)]


def summarize_tasks(
    run: Run, accounting: dict[str, Any] | None, node_jobs: list[dict[str, str]] | None = None
) -> list[dict[str, Any]] | None:
    """One row per array task with records (``profile/task-NNNNN/``): Slurm's state and exit code for it
    when accounting has them, and its ranks' wall and CPU seconds, CPU efficiency and peak memory, with its
    measured energy (RAPL of a node other jobs or tasks shared, by ``node_jobs``, apart as
    ``energy_shared_j``). None for a run that is not an array (no task directories)."""
    # By folder name, the order reports have always listed tasks in (task-100000 before task-99999).
    dirs = sorted(task_dirs(profile_dir(run.dir)).items(), key=lambda item: item[1])
    if not dirs:
        return None
    cpus = int(run.manifest.get("resources", {}).get("cpus_per_task", {}).get("value") or 1)
    params = _task_params(run)
    rows = []
    for task, path in dirs:
        task_acct = task_accounting(run, accounting, task) if accounting else None
        ranks = summarize_ranks(path, 1)
        energy = _task_energy(run, task, path, task_acct, node_jobs)
        rows.append(
            _task_row(task, ranks, summarize_accounting(task_acct), cpus, energy, params.get(task, {}))
        )
    return rows


def _task_row(
    task: int,
    ranks: list[dict[str, Any]],
    acct: dict[str, Any] | None,
    cpus: int,
    energy: tuple[float | None, float | None],
    params: dict[str, Any],
) -> dict[str, Any]:
    """A task's row: its state, exit code, its ranks' figures, its energy (own, shared) and parameters."""
    wall = max((r["wall_s"] for r in ranks), default=None)
    cpu = sum(r["cpu_s"] for r in ranks) if ranks else None
    state, _ = run_state(ranks, acct) if ranks or acct else ("PENDING", "profile")
    codes = [r["exit_code"] for r in ranks if r["exit_code"] is not None]
    return {
        "task": task,
        "state": state,
        "exit_code": acct["exit_code"] if acct else max(codes, default=None),
        "ranks": len(ranks),
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_efficiency": cpu / (len(ranks) * cpus * wall) if cpu is not None and wall else None,
        "peak_rss_mb": max((r["peak_rss_mb"] for r in ranks), default=None),
        "energy_j": energy[0],
        "energy_shared_j": energy[1],
        "attempt": max((r["attempt"] for r in ranks), default=None),
        "params": params,
    }


def _task_energy(
    run: Run, task: int, path: Path, task_acct: dict[str, Any] | None, node_jobs: list[dict[str, str]] | None
) -> tuple[float | None, float | None]:
    """A task's own measured energy and the energy of its nodes that others shared (None for none)."""
    nodes = summarize_nodes(path)
    shared = sharing_of(node_jobs, task_acct, own_ids(run, task)) if node_jobs else None
    shared_j = mark_shared(nodes, shared)
    energies = own_energies(nodes)
    return (sum(energies) if energies else None), (shared_j or None)


def _task_params(run: Run) -> dict[int, dict[str, Any]]:
    """Each sweep task's parameters (tasks.jsonl; the seed among them), empty for a plain array job."""
    table = run.dir / TASK_TABLE
    out: dict[int, dict[str, Any]] = {}
    if table.exists():
        for line in table.read_text().splitlines():
            try:
                row = json.loads(line)
                out[int(row["task"])] = {
                    **row.get("params", {}),
                    **({"seed": row["seed"]} if row.get("seed") is not None else {}),
                }
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a torn last line
    return out


def array_summary(tasks: list[dict[str, Any]], acct: dict[str, Any] | None) -> dict[str, Any]:
    """What the tasks say of an array job as a whole: their energy summed (each task's own measured
    counters), the memory peak of the largest task, and without Slurm's record, the state and exit code from
    the tasks' own (any failed task fails the array; a task without an end record leaves it unfinished)."""
    energies = [t["energy_j"] for t in tasks if t["energy_j"] is not None]
    out: dict[str, Any] = {}
    if energies:
        out.update(energy_j=sum(energies), energy_kwh=sum(energies) / 3.6e6)
    peaks = [t for t in tasks if t["peak_rss_mb"] is not None]
    if peaks:  # the largest task's largest rank: tasks run apart, so their peaks never add up
        top = max(peaks, key=lambda t: t["peak_rss_mb"])
        out.update(
            mem_peak_mb=top["peak_rss_mb"],
            mem_peak_where=f"task {top['task']}",
            mem_peak_source="profile (the largest task's largest rank)",
        )
    if acct is None:
        states = {t["state"] for t in tasks}
        state = "FAILED" if "FAILED" in states else "UNFINISHED" if states - {"COMPLETED"} else "COMPLETED"
        codes = [t["exit_code"] for t in tasks if t["exit_code"] is not None]
        out.update(
            state=state,
            state_source="profile",
            finished=state != "UNFINISHED",
            exit_code=max(codes, default=None),
        )
    return out


def array_figures(tasks: list[dict[str, Any]], acct: dict[str, Any] | None) -> dict[str, Any]:
    """:func:`array_summary`, with the energy the tasks' nodes shared with others and the longest task's
    elapsed time (Slurm's, else the tasks' own): the summary of an array run whose tasks hold the ranks."""
    return {
        **array_summary(tasks, acct),
        "energy_shared_j": sum(t["energy_shared_j"] or 0.0 for t in tasks) or None,
        "longest_task_s": (acct or {}).get("elapsed_max_s")
        or max((t["wall_s"] for t in tasks if t["wall_s"] is not None), default=None),
    }
