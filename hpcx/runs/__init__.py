"""Run directories: creating them, finding them by id, prefix or job id, and the records inside."""

from __future__ import annotations

import datetime as _dt
import functools
import itertools
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcx.errors import RunNotFoundError, UsageError
from hpcx.fsutil import atomic_write, atomic_write_json, read_json
from hpcx.rundir.layout import JOB_FILE, MANIFEST_FILE, SCRIPT_FILE, SUBDIRS

if TYPE_CHECKING:
    from hpcx.schedulers.base import JobRef


@dataclass(frozen=True)
class Run:
    """A run directory and what it records about its job (job.json and manifest.json are read once, on first
    use: make a new Run to see later changes)."""

    id: str
    dir: Path

    @functools.cached_property
    def job(self) -> dict[str, Any]:
        """The scheduler record (scheduler, job_id, submitted_at); empty before submission."""
        path = self.dir / JOB_FILE
        return read_json(path) if path.exists() else {}

    @functools.cached_property
    def manifest(self) -> dict[str, Any]:
        path = self.dir / MANIFEST_FILE
        return read_json(path) if path.exists() else {}


def new_run_id(now: _dt.datetime | None = None) -> str:
    """A sortable, unique id: UTC time plus 6 random hex digits."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def create_run(root: Path) -> Run:
    """Create a fresh run directory under ``root`` (mkdir is exclusive, so concurrent callers never share one)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"runs root {str(root)!r} cannot be created: {exc.strerror}",
            hint="set HPCX_RUNS or runs_root in the site file to a writable directory",
        ) from exc
    for _ in range(10):
        run_id = new_run_id()
        try:
            (root / run_id).mkdir()
        except FileExistsError:
            continue
        for sub in SUBDIRS:
            (root / run_id / sub).mkdir()
        return Run(run_id, root / run_id)
    raise UsageError(f"could not create a unique run directory under {root}")


def discard_run(run: Run) -> None:
    """Remove a run directory whose submission failed, so nothing half-written stays behind."""
    import shutil

    shutil.rmtree(run.dir, ignore_errors=True)


def write_file(run: Run, name: str, data: str, *, mode: int = 0o644) -> Path:
    return atomic_write(run.dir / name, data, mode=mode)


def record_job(run: Run, record: dict[str, Any]) -> None:
    atomic_write_json(run.dir / JOB_FILE, record)


def job_ids(job: dict[str, Any]) -> list[str]:
    """Every scheduler job id a run's job.json records, each once, oldest first: its job, and a sweep's arrays
    (one per chunk, including the chunks chained after another, and one per retry); none before submission.
    The index reads job.json files as it finds them, so parts of the wrong type are passed over."""
    listed = job.get("chunks")
    chunks = listed if isinstance(listed, list) else []
    ids = [job.get("job_id"), *(c.get("job_id") for c in chunks if isinstance(c, dict))]
    return list(dict.fromkeys(str(i) for i in ids if i is not None))


def job_refs(run: Run) -> list[JobRef]:
    """Every scheduler job of ``run`` (:func:`job_ids`), as the scheduler is asked about them."""
    from hpcx.schedulers.base import JobRef

    return [JobRef(i, run.dir) for i in job_ids(run.job)]


def list_runs(root: Path) -> list[Run]:
    """Every run under ``root``, oldest first (run ids sort by creation time)."""
    if not root.is_dir():
        return []
    return [Run(p.name, p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def find_run(root: Path, key: str) -> Run:
    """Find a run by exact id, unique id prefix, Slurm job id, or a path to a run directory."""
    if os.sep in key and Path(key).is_dir():
        p = Path(key).resolve()
        return Run(p.name, p)
    runs = list_runs(root)
    exact = [r for r in runs if r.id == key]
    if exact:
        return exact[0]
    by_prefix = [r for r in runs if r.id.startswith(key)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    if len(by_prefix) > 1:
        shown = ", ".join(r.id for r in by_prefix[:5])
        raise RunNotFoundError(
            f"run {key!r} is ambiguous: {len(by_prefix)} runs start with it ({shown})",
            hint="give more characters of the run id",
        )
    from hpcx.runs.index import refresh_index  # the index module imports this one

    # The index reads only new or changed job.json files, instead of every run's; a sweep answers to each array.
    by_job = [r["run_id"] for r in refresh_index(root).rows if key in r["job_ids"]]
    if by_job:
        return Run(by_job[-1], root / by_job[-1])
    raise RunNotFoundError(
        f"no run {key!r} under {root}",
        hint="list runs with `hpcx runs`, or set HPCX_RUNS to the runs root it lives in",
    )


# RUN_TASK / RUN:TASK, and Slurm's JOBID_TASK: run ids and job ids hold neither "_" nor ":".
_TASK_KEY = re.compile(r"^(?P<run>[^_:/]+)(?P<sep>[_:])(?P<task>\d+)$")


def find_run_task(root: Path, key: str, task: int | None = None) -> tuple[Run, int | None]:
    """A run and one of its tasks: ``RUN_TASK`` or ``RUN:TASK`` (RUN as for find_run, TASK the sweep's task id
    or the array's index) or Slurm's ``JOBID_INDEX`` (index INDEX of that array: for a sweep's later chunk or a
    retry, the task its offset plus INDEX names). ``task`` (an option such as ``--task``) names the task of a
    key without one. The task is None for a whole run; RunNotFoundError when the run has no such task."""
    m = _TASK_KEY.match(key)
    if m is None:
        run = find_run(root, key)
    else:
        run = find_run(root, m["run"])
        named = _task_of(run, m["run"], m["sep"], int(m["task"]))
        if task is not None and task != named:
            raise UsageError(f"{key!r} names task {named}, but --task says {task}", hint="give the task once")
        task = named
    if task is not None:
        known = task_ids(run)
        if known is not None and task not in known:
            one = "it is one job, neither an array nor a sweep"
            shown = f"its tasks are {id_ranges(known)}" if known else one
            raise RunNotFoundError(
                f"run {run.id} has no task {task}: {shown}",
                hint=f"address the whole run as {run.id}" if not known else None,
            )
    return run, task


def _task_of(run: Run, base: str, sep: str, number: int) -> int:
    """Slurm's JOBID_INDEX is relative to that array; RUN_TASK and RUN:TASK name the run's own task id."""
    if sep == "_" and base != run.id:
        for chunk in run.job.get("chunks", []):
            if str(chunk.get("job_id")) == base:
                return int(chunk.get("offset", 0)) + number
    return number


def task_ids(run: Run) -> list[int] | None:
    """The task ids of a sweep or array run ([] for a single job; None when hpcx cannot tell: a user's own
    script whose #SBATCH lines set --array)."""
    sweep = run.manifest.get("sweep")
    if isinstance(sweep, dict) and isinstance(sweep.get("tasks"), int):
        return list(range(sweep["tasks"]))
    # The command line's --array, else the script's own #SBATCH --array/-a (as submit read it, on any of its
    # #SBATCH lines: "#SBATCH -t 5 --array=0-1" too).
    args = [str(a) for a in run.manifest.get("sbatch_args") or [] if str(a).startswith("--array=")]
    args = args or [
        str(a)
        for a in run.manifest.get("unchecked_directives") or []
        if str(a).split("=", 1)[0] in ("--array", "-a") and "=" in str(a)
    ]
    if args:
        from hpcx.errors import HpcxError
        from hpcx.spec import parse_array

        try:
            return sorted(parse_array(args[-1].split("=", 1)[1]).indices)
        except HpcxError:  # a form hpcx does not read (Slurm's own checks took it): the tasks are unknown
            return None
    script = run.dir / SCRIPT_FILE
    text = script.read_text(errors="replace") if script.is_file() else ""
    if re.search(r"^#SBATCH\b.*\s(--array|-a)\b", text, re.MULTILINE):
        return None
    return []


def task_job_ids(run: Run, task: int) -> list[str]:
    """Slurm's JOBID_INDEX of every array task that ran task ``task`` (or will), oldest first: a sweep's chunk
    and its retries, or the array job's own index."""
    from hpcx.submit.sweeps import chunk_tasks  # the one reading of a sweep's chunks

    chunks = run.job.get("chunks")
    if not chunks:
        return [f"{run.job['job_id']}_{task}"] if run.job.get("job_id") else []
    return [f"{c['job_id']}_{i}" for c, i, t in chunk_tasks(chunks) if t == task]


def task_job_id(run: Run, task: int) -> str:
    """Slurm's JOBID_INDEX of the array task that ran task ``task`` last (or will): a sweep's task t is index
    t - offset of the last chunk that ran it (retries come later); a plain ``--array`` job's task is its index."""
    ids = task_job_ids(run, task)
    return ids[-1] if ids else f"{run.job.get('job_id')}_{task}"


def id_ranges(values: list[int]) -> str:
    """``0-3,7,9-10``: sorted task ids as Slurm writes array ranges (a run of consecutive ids is one range)."""
    parts = []
    for _, group in itertools.groupby(enumerate(values), lambda p: p[1] - p[0]):
        run = [v for _, v in group]
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)
