"""Text renderings of the job commands' documents (the JSON form is the document itself), and the logs' tails."""

from __future__ import annotations

from typing import Any

import click


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


def logs_text(doc: dict[str, Any]) -> str:
    """The tails of `hpcx logs` (tail_logs' document), each under its path, or a line saying there are none."""
    what = f"task {doc['task']} of run {doc['run_id']}" if "task" in doc else f"run {doc['run_id']}"
    return "\n".join(f"==> {f['path']} <==\n{f['text']}" for f in doc["files"]) or f"{what} has no logs yet"


def show_log_text(path: str, text: str, first: bool) -> None:
    """One piece of `hpcx logs --follow` as text: `==> path <==` before each log's tail, then new output as is."""
    if first:
        click.echo(f"==> {path} <==\n{text}")
    else:
        click.echo(text, nl=False)
