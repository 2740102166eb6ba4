"""Data for the job commands and their text renderings (the JSON form is the data itself)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hpcx.runs import Run, job_refs, task_job_ids
from hpcx.runs.logs import log_files
from hpcx.schedulers import FINISHED_STATES, JobRef, JobState, get_scheduler
from hpcx.schedulers.base import overall_state

if TYPE_CHECKING:
    from hpcx.submit.submission import Prepared

LOG_TAIL_LINES = 40


def job_states(runs: Sequence[Run], tasks: Sequence[int | None] = ()) -> list[dict[str, Any]]:
    """One row per run with its job's state; one batched scheduler query per scheduler for every run shown,
    sweeps (all their arrays) and jobs alike, never one per job. ``tasks[i]``, when given and not None, narrows
    run i's row to that one task of its sweep or array."""
    by_scheduler: dict[str, list[JobRef]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for run in runs:
        job = run.job
        if "chunks" in job:  # a sweep: its tasks, merged over its arrays (and retries)
            by_scheduler.setdefault(job.get("scheduler", "slurm"), []).extend(job_refs(run))
            continue
        rows[run.id] = {
            "run_id": run.id,
            "job_id": job.get("job_id"),
            "kind": _kind(run),
            "state": "UNSUBMITTED" if not job else "UNKNOWN",
            "exit_code": None,
            "reason": None,
            "nodes": None,
            "elapsed_s": None,
            "source": None,
            "tasks": None,
            "finished": False,
        }  # the same keys whether or not the scheduler still knows the job
        if job:
            by_scheduler.setdefault(job.get("scheduler", "slurm"), []).append(
                JobRef(str(job["job_id"]), run.dir)
            )
    states: dict[str, dict[str, JobState]] = {
        name: get_scheduler(name).status(refs) for name, refs in by_scheduler.items()
    }
    out = []
    for n, run in enumerate(runs):
        answer = states.get(run.job.get("scheduler", "slurm"), {})
        task = tasks[n] if n < len(tasks) else None
        if "chunks" in run.job:
            row = sweep_row(run, answer, task)
        else:
            row = dict(rows[run.id])
            state = answer.get(str(run.job.get("job_id"))) if run.job else None
            if state is not None:
                # exit_code as runs and report show it (JobState.shown_exit_code)
                row.update({k: v for k, v in state.to_dict().items() if k != "job_id"})
            if task is not None:
                row = _array_task_row(row, state, task)
        out.append(row)
    return out


def sweep_row(run: Run, states: dict[str, JobState] | None = None, task: int | None = None) -> dict[str, Any]:
    """A sweep's row from the scheduler's ``states`` of its arrays (asked for here when None); with ``task``,
    that task's state alone (the array that ran it last)."""
    from hpcx.submit.sweep_submit import summarize, task_states

    per_task = task_states(run, states)
    if task is not None:
        state = per_task.get(task, "UNKNOWN")
        return {"run_id": run.id, "task": task, "job_id": task_job_ids(run, task)[-1], "kind": _kind(run),
                "state": state, "exit_code": None, "reason": None, "nodes": None, "elapsed_s": None,
                "source": "sweep", "tasks": None, "finished": state in FINISHED_STATES}  # fmt: skip
    counts = summarize(per_task)
    state = overall_state(counts)
    return {"run_id": run.id, "job_id": run.job.get("job_id"), "kind": _kind(run),
            "state": state, "exit_code": None, "reason": None, "nodes": None, "elapsed_s": None,
            "source": "sweep", "tasks": counts, "finished": state in FINISHED_STATES}  # fmt: skip


def _array_task_row(row: dict[str, Any], state: JobState | None, task: int) -> dict[str, Any]:
    """A job array's row narrowed to array task ``task``: its state as Slurm listed it (pending while it is
    only part of "the rest of the array"; unknown once the array is done without listing it)."""
    listed = (state.task_states or {}) if state is not None else {}
    if task in listed:
        one = listed[task]
    elif state is None or not state.finished:
        one = "PENDING" if row["state"] != "UNSUBMITTED" else "UNSUBMITTED"
    else:
        one = state.state if not listed else "UNKNOWN"
    return {
        **row,
        "task": task,
        "job_id": f"{row['job_id']}_{task}",
        "state": one,
        "tasks": None,
        "exit_code": None if one != row["state"] else row["exit_code"],
        "finished": one in FINISHED_STATES,
    }


def _kind(run: Run) -> str | None:
    """The job kind as the manifest records it (serial, mpi, ...: what `hpcx runs` shows), read from job.json
    (written at submit, small); a sweep's job.json says "sweep", and older runs have no kind there."""
    kind = run.job.get("kind")
    if kind and kind != "sweep":
        return kind
    return run.manifest.get("kind", {}).get("value") or kind


def render_status(doc: dict[str, Any]) -> str:
    runs = doc["runs"]
    if not runs:
        return "no runs yet: submit one with `hpcx submit KIND -- CMD`"
    lines = [f"{'RUN':<24} {'JOB':<14} {'KIND':<10} {'STATE':<12} {'EXIT':>4}  NODES / REASON"]
    for r in runs:
        code = "" if r["exit_code"] is None else str(r["exit_code"])
        name = r["run_id"] if r.get("task") is None else f"{r['run_id']}_{r['task']}"
        tasks = r.get("tasks")
        where = ", ".join(f"{n} {s.lower()}" for s, n in sorted(tasks.items())) if tasks else ""
        where = where or r.get("nodes") or r.get("reason") or ""
        lines.append(
            f"{name:<24} {str(r['job_id'] or '-'):<14} {str(r['kind'] or '-'):<10} "
            f"{r['state']:<12} {code:>4}  {where}"
        )
    return "\n".join(lines)


def tail_logs(run: Run, lines: int, task: int | None = None) -> dict[str, Any]:
    """The last ``lines`` lines of every log file of ``run``, or of its task ``task``."""
    files = []
    for path in log_files(run, task):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        files.append({"path": str(path), "text": "\n".join(text)})
    return {"run_id": run.id, "files": files, **({"task": task} if task is not None else {})}


def submit_preview(prep: Prepared, workdir: Path, root: Path) -> dict[str, Any]:
    """What --dry-run and render show: the script, where each value came from, and how the partition was chosen."""
    from hpcx.submit.submission import render_preview, script_args

    res = prep.spec.resources
    if prep.choice:
        explain = prep.choice["why"]
        others = [f"{name} ({problems[0]})" for name, problems in prep.choice["rejected"].items()]
        if others:
            explain += "; not: " + "; ".join(others)
    else:
        explain = f"partition {res.partition} from {prep.sources['partition']}"
    doc: dict[str, Any] = {
        "script": render_preview(prep, workdir, root),
        "partition": prep.partition.name,
        "sources": prep.sources,
        "explain": explain,
        "choice": prep.choice,
    }
    if prep.script_text is not None:
        doc["sbatch_args"] = script_args(prep, root / "RUN-ID", workdir)
        doc["unchecked_directives"] = prep.unchecked
    return doc


def follow_logs(run: Run, lines: int, finished: Callable[[], bool], poll_s: float = 0.5,
                show: Callable[[str, str, bool], None] | None = None, task: int | None = None) -> None:  # fmt: skip
    """Print the last ``lines`` of each log, then new output as it comes, until ``finished()`` and drained.

    ``show(path, text, first)`` prints each piece (``first``: the log's tail, else new output); by default as
    text, `==> path <==` before each tail (--json passes one document per piece)."""
    show = show or _show_log_text
    offsets: dict[Path, int] = {}
    for entry in tail_logs(run, lines, task)["files"]:
        show(entry["path"], entry["text"], True)
        offsets[Path(entry["path"])] = Path(entry["path"]).stat().st_size
    last_check, done = 0.0, False
    while True:
        for path in log_files(run, task):
            size = path.stat().st_size
            if size > offsets.get(path, 0):
                with open(path, "rb") as fh:
                    fh.seek(offsets.get(path, 0))
                    show(str(path), fh.read(size - offsets.get(path, 0)).decode(errors="replace"), False)
                offsets[path] = size
        if done:
            return
        if time.monotonic() - last_check > 2:
            done, last_check = finished(), time.monotonic()  # one more pass after the end drains the tail
        time.sleep(poll_s)


def _show_log_text(path: str, text: str, first: bool) -> None:
    if first:
        click.echo(f"==> {path} <==\n{text}")
    else:
        click.echo(text, nl=False)


def record_finished_accounting(runs: Sequence[Run], rows: Sequence[dict[str, Any]]) -> None:
    """Write accounting.json for finished Slurm runs that lack a final one (see provenance.record_accounting),
    with one sacct call for them all."""
    from hpcx.runs.provenance import record_accounting_many

    record_accounting_many([run for run, row in zip(runs, rows) if row["finished"]])
