"""Data for the job commands and their text renderings (the JSON form is the data itself)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hpcx.runs import Run
from hpcx.schedulers import FINISHED_STATES, JobRef, get_scheduler
from hpcx.schedulers.base import overall_state

if TYPE_CHECKING:
    from hpcx.submission import Prepared

LOG_TAIL_LINES = 40


def job_states(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per run with its job's state; one batched scheduler query per scheduler, never one per job."""
    by_scheduler: dict[str, list[tuple[Run, JobRef]]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for run in runs:
        job = run.job
        if "chunks" in job:  # a sweep: its tasks, merged over its arrays (and retries)
            rows[run.id] = sweep_row(run)
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
                (run, JobRef(str(job["job_id"]), run.dir))
            )
    for name, pairs in by_scheduler.items():
        states = get_scheduler(name).status([ref for _, ref in pairs])
        for run, ref in pairs:
            state = states.get(ref.job_id)
            if state is not None:
                rows[run.id].update({k: v for k, v in state.to_dict().items() if k != "job_id"})
    return [rows[r.id] for r in runs]


def sweep_row(run: Run) -> dict[str, Any]:
    from hpcx.sweep_submit import summarize, task_states

    counts = summarize(task_states(run))
    state = overall_state(counts)
    return {"run_id": run.id, "job_id": run.job.get("job_id"), "kind": _kind(run),
            "state": state, "exit_code": None, "reason": None, "nodes": None, "elapsed_s": None,
            "source": "sweep", "tasks": counts, "finished": state in FINISHED_STATES}  # fmt: skip


def _kind(run: Run) -> str | None:
    """The job kind, from job.json (written at submit); older runs only have it in the manifest."""
    return run.job.get("kind") or run.manifest.get("kind", {}).get("value")


def render_status(doc: dict[str, Any]) -> str:
    runs = doc["runs"]
    if not runs:
        return "no runs yet: submit one with `hpcx submit KIND -- CMD`"
    lines = [f"{'RUN':<24} {'JOB':<14} {'KIND':<10} {'STATE':<12} {'EXIT':>4}  NODES / REASON"]
    for r in runs:
        code = "" if r["exit_code"] is None else str(r["exit_code"])
        tasks = r.get("tasks")
        where = ", ".join(f"{n} {s.lower()}" for s, n in sorted(tasks.items())) if tasks else ""
        where = where or r.get("nodes") or r.get("reason") or ""
        lines.append(
            f"{r['run_id']:<24} {str(r['job_id'] or '-'):<14} {str(r['kind'] or '-'):<10} "
            f"{r['state']:<12} {code:>4}  {where}"
        )
    return "\n".join(lines)


def tail_logs(run: Run, lines: int) -> dict[str, Any]:
    """The last ``lines`` lines of every log file of ``run``."""
    files = []
    for path in sorted((run.dir / "logs").glob("*")):
        if path.suffix in (".out", ".err") and path.is_file():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            files.append({"path": str(path), "text": "\n".join(text)})
    return {"run_id": run.id, "files": files}


def submit_preview(prep: Prepared, workdir: Path, root: Path) -> dict[str, Any]:
    """What --dry-run and render show: the script, where each value came from, and how the partition was chosen."""
    from hpcx.submission import render_preview, script_args

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
        doc["sbatch_args"] = script_args(prep, root / "RUN-ID")
        doc["unchecked_directives"] = prep.unchecked
    return doc


def follow_logs(run: Run, lines: int, finished: Callable[[], bool], poll_s: float = 0.5,
                show: Callable[[str, str, bool], None] | None = None) -> None:  # fmt: skip
    """Print the last ``lines`` of each log, then new output as it comes, until ``finished()`` and drained.

    ``show(path, text, first)`` prints each piece (``first``: the log's tail, else new output); by default as
    text, `==> path <==` before each tail (--json passes one document per piece)."""
    show = show or _show_log_text
    offsets: dict[Path, int] = {}
    for entry in tail_logs(run, lines)["files"]:
        show(entry["path"], entry["text"], True)
        offsets[Path(entry["path"])] = Path(entry["path"]).stat().st_size
    last_check, done = 0.0, False
    while True:
        for path in sorted((run.dir / "logs").glob("*")):
            if path.suffix not in (".out", ".err"):
                continue
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
    """Write accounting.json for finished Slurm runs that lack a final one (see provenance.record_accounting)."""
    from hpcx.provenance import record_accounting

    for run, row in zip(runs, rows):
        if row["finished"] and run.job.get("scheduler") == "slurm":
            record_accounting(run)
