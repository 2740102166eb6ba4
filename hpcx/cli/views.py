"""Text renderings of the job commands' documents (the JSON form is the document itself), and the logs' tails."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hpcx.runs import Run
from hpcx.runs.logs import log_files

LOG_TAIL_LINES = 40


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


def follow_logs(
    run: Run,
    lines: int,
    finished: Callable[[], bool],
    poll_s: float = 0.5,
    show: Callable[[str, str, bool], None] | None = None,
    task: int | None = None,
) -> None:
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
