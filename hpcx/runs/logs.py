"""Where a run's stdout and stderr are: the one locator for `hpcx logs` (--task, --follow) and the report's
failure section, and what `hpcx logs` reads from them (the tails, and new output until the job ends). Files in the run's logs/ (named by the template, slurm-%j.out / slurm-%A_%a.err, or by the
local backend, local-PID.out / local-PID_I.err), and the files an own script's #SBATCH -o/-e made, their
patterns expanded for the run's own job ids and tasks."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.rundir.layout import LOGS_DIR
from hpcx.runs import Run, task_ids, task_job_ids
from hpcx.submit.sbatch_script import expand_log_pattern

# Slurm's %a of a job that is not an array (NO_VAL).
NO_ARRAY_TASK = "4294967294"
# A task's log as the template (slurm-%A_%a.out) or the local backend (local-PID_I.out) names it.
_TASK_LOG = re.compile(r"(?:^|[^0-9])(?P<job>\d+)_(?P<index>\d+)\.(?:out|err)$")
LOG_TAIL_LINES = 40  # lines from the end of each log that `hpcx logs` shows
FINISHED_CHECK_S = 2.0  # how often --follow asks the scheduler whether the job has finished


@dataclass(frozen=True)
class LogFile:
    path: Path
    stderr: bool  # stderr goes here (alone, or with stdout where the script named one file for both)
    key: tuple[Any, ...]  # sort key: files of no task first, then by task id, attempt and name


def log_files(run: Run, task: int | None = None) -> list[Path]:
    """The stdout and stderr files of ``run`` (only task ``task``'s, every attempt of it, when given), in task
    order (2 before 10; a sweep's arrays are submitted at once, so their job ids need not follow the tasks),
    each task's attempts oldest first."""
    return [f.path for f in located(run, task)]


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
    show: Callable[[str, str, bool], None],
    *,
    task: int | None = None,
    finished: Callable[[], bool] | None = None,
    poll_s: float = 0.5,
) -> None:
    """Pass the last ``lines`` of each log, then new output as it comes, to ``show(path, text, first)``
    (``first``: the log's tail, else new output) until ``finished()`` (default: the scheduler says the job, or
    task ``task``, has finished) and the logs are drained."""
    finished = finished or (lambda: _job_finished(run, task))
    offsets: dict[Path, int] = {}
    for entry in tail_logs(run, lines, task)["files"]:
        show(entry["path"], entry["text"], True)
        offsets[Path(entry["path"])] = Path(entry["path"]).stat().st_size
    last_check, done = 0.0, False
    while True:
        _show_new_output(run, task, offsets, show)
        if done:
            return
        if time.monotonic() - last_check > FINISHED_CHECK_S:
            done, last_check = finished(), time.monotonic()  # one more pass after the end drains the tail
        time.sleep(poll_s)


def _show_new_output(
    run: Run, task: int | None, offsets: dict[Path, int], show: Callable[[str, str, bool], None]
) -> None:
    """What each log gained since ``offsets`` (updated), and the logs that appeared since, from their start."""
    for path in log_files(run, task):
        size = path.stat().st_size
        if size > offsets.get(path, 0):
            with open(path, "rb") as fh:
                fh.seek(offsets.get(path, 0))
                show(str(path), fh.read(size - offsets.get(path, 0)).decode(errors="replace"), False)
            offsets[path] = size


def _job_finished(run: Run, task: int | None) -> bool:
    from hpcx.runs.state import job_states  # the scheduler's door: only --follow needs it

    return bool(job_states([run], [task])[0]["finished"])


def stderr_file(run: Run, task: int | None = None) -> Path | None:
    """The stderr file of the job (of task ``task``'s last attempt when given); None when there is none."""
    found = [f.path for f in located(run, task) if f.stderr and (task is not None or f.key[0] == 0)]
    return found[-1] if found else None


def located(run: Run, task: int | None = None) -> list[LogFile]:
    """Every log file of ``run`` (of task ``task``), each with whether stderr goes there, in order."""
    logs = run.dir / LOGS_DIR
    order = _task_order(run)
    found: dict[Path, LogFile] = {}  # by resolved path: a pattern may name logs/ through another path
    if task is None:
        for p in logs.glob("*"):  # the run directory is the run's own: all of its logs are the run's
            if p.suffix in (".out", ".err") and p.is_file():
                found[p.resolve()] = LogFile(p, p.suffix == ".err", order(p.name, None, None))
    else:
        # Each attempt's JOBID_INDEX, oldest first.
        for attempt, job_task in enumerate(task_job_ids(run, task)):
            # Named by the template (slurm-%A_%a.out) or the local backend (local-PID_I.out): match the id alone.
            one = re.compile(rf"(^|[^0-9]){re.escape(job_task)}\.(out|err)$")
            for p in logs.glob(f"*{job_task}.*"):
                if one.search(p.name) and p.is_file():
                    found[p.resolve()] = LogFile(p, p.suffix == ".err", (1, task, attempt, _natural(p.name)))
    patterns = run.manifest.get("log_patterns") or []  # an own script's -o/-e (submission.log_patterns)
    errors = _stderr_patterns(run.manifest, patterns)
    listed: dict[Path, list[str]] = {}  # each directory read once
    for fields, sort in _jobs(run, task, order) if patterns else ():
        for pattern in patterns:
            for p in _expand(pattern, fields, listed):
                found.setdefault(p.resolve(), LogFile(p, pattern in errors, sort(p.name)))
    return sorted(found.values(), key=lambda f: f.key)


def _jobs(
    run: Run, task: int | None, order: Callable[..., tuple[Any, ...]]
) -> Iterator[tuple[dict[str, str | None], Callable[[str], tuple[Any, ...]]]]:
    """Slurm's filename fields of each job (each array task) of ``run`` that may have made logs, with a sort
    key for the files it made. The job name and user are the manifest's; an array task's own job id (``%j``)
    is known to Slurm alone, so it stays open (checked to be no older than the array: see _expand)."""
    job = run.job
    res = run.manifest.get("resources") or {}
    base = {"x": (res.get("name") or {}).get("value"), "u": run.manifest.get("user")}
    if task is not None:
        ids = task_job_ids(run, task)
    elif job.get("chunks"):
        from hpcx.submit.sweeps import chunk_tasks

        ids = [f"{c['job_id']}_{i}" for c, i, _ in chunk_tasks(job["chunks"])]
    elif not job.get("job_id"):
        ids = []
    else:
        tasks = task_ids(run)
        # None: the script's own #SBATCH --array, whose indices only its job.sbatch knows: %a stays open.
        indices: list[int | None] = list(tasks) if tasks else [None]
        ids = [str(job["job_id"])] if tasks == [] else [f"{job['job_id']}_{t}" for t in indices]
    for one in ids:
        array, _, index = str(one).partition("_")
        if not index:
            yield {**base, "j": array, "A": array, "a": NO_ARRAY_TASK}, _sort_key(order, None, None)
        else:
            fields = {**base, "j": None, "A": array, "a": None if index == "None" else index}
            yield fields, _sort_key(order, array, index)


def _sort_key(
    order: Callable[..., tuple[Any, ...]], array: str | None, index: str | None
) -> Callable[[str], tuple[Any, ...]]:
    """The sort key of the files one job (one array task, when ``index`` is given) made."""
    return lambda name: order(name, array, index)


def _expand(pattern: str, fields: dict[str, str | None], listed: dict[Path, list[str]]) -> list[Path]:
    """The files that ``pattern`` names for one job's ``fields``: the concrete path when every field is known,
    else the names in its directory whose known fields match exactly (an array task's %j: a job id no older
    than its array's, as Slurm numbers the tasks split from an array)."""
    paths = [Path("/")] if pattern.startswith("/") else [Path()]
    parts = expand_log_pattern(pattern.lstrip("/"), fields)
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        if isinstance(part, str):
            paths = [p / part for p in paths]
            continue
        nxt = []
        for p in paths:
            if p not in listed:
                try:
                    listed[p] = sorted(os.listdir(p))
                except OSError:
                    listed[p] = []
            for name in listed[p]:
                m = part.fullmatch(name)
                if m and ("j" not in m.groupdict() or int(m["j"]) >= int(fields["A"] or 0)):
                    nxt.append(p / name)
        paths = nxt
        if not last:
            paths = [p for p in paths if p.is_dir()]
    return [p for p in paths if p.is_file()]


def _stderr_patterns(manifest: dict[str, Any], patterns: list[str]) -> set[str]:
    """Which of an own script's log ``patterns`` get stderr: its -e (--error) pattern, else its -o one (sbatch
    sends stderr there too); hpcx's own --error (in logs/, when the script names neither) is found above."""
    if len(patterns) < 2:
        return set(patterns)
    own = [
        str(d).split("=", 1)[1]
        for d in manifest.get("unchecked_directives") or []
        if str(d).split("=", 1)[0] in ("--error", "-e") and "=" in str(d)
    ]
    if not own:  # the script named -o; hpcx added its own --error in logs/
        return {p for p in patterns if Path(p).parent.name == LOGS_DIR and p.endswith(".err")}
    return {p for p in patterns if p.endswith(str(Path(own[-1])))} or set(patterns)


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _task_order(run: Run) -> Callable[[str, str | None, str | None], tuple[Any, ...]]:
    """Sort key of a file name (and of the array job and index that made it, when known): files of no task
    first (by name), then by task id, attempt (array) and name."""
    chunks = run.job.get("chunks") or [{"job_id": run.job.get("job_id"), "offset": 0}]
    arrays = {str(c["job_id"]).rsplit("-", 1)[-1]: (n, int(c["offset"])) for n, c in enumerate(chunks)}

    def key(name: str, array: str | None, index: str | None) -> tuple[Any, ...]:
        if array is None:
            m = _TASK_LOG.search(name)
            array, index = (m["job"], m["index"]) if m else (None, None)
        array = array.rsplit("-", 1)[-1] if array else None
        if array not in arrays or index is None or not index.isdigit():
            return (0, 0, 0, _natural(name))
        attempt, offset = arrays[array]
        return (1, offset + int(index), attempt, _natural(name))

    return key
