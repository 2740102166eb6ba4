"""A run's logged metrics as TensorBoard event files: `hpcx export RUN --tensorboard DIR` (docs/user.md).

Each TensorBoard run is one source of metrics: rank 0 of a job (``DIR/<run id>``) or of each sweep or array task
(``DIR/<run id>/task-NNNNN``), and with ``all_ranks`` one ``rank-NNNNN`` folder per rank under those. A step logged
by several attempts of a requeued job (a resumed attempt logs again the steps after its checkpoint) keeps the
latest attempt's value; each point's wall time is its record's ``t``. A task's parameters go along as text, and
as hparams when every value is a number, a string or a boolean.

The events are written by the ``tensorboard`` package's own writer (``pip install 'hpcx[tensorboard]'``),
imported only here, inside the function that writes. An export replaces the previous one of the same run in the
same DIR: it is written into a new folder beside it, which then takes the old one's place, so the files never hold
a point twice. A folder hpcx did not write (no ``hpcx-export.json`` in it) is never replaced.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hpcx import __version__
from hpcx.errors import UsageError
from hpcx.fsutil import atomic_write_json
from hpcx.rundir.layout import TASK_TABLE, metrics_dir, rank_files, rank_name, task_dirs, task_name, task_of
from hpcx.rundir.records import read_records
from hpcx.rundir.tasks import read_tasks
from hpcx.runs import Run
from hpcx.runs.metric_points import Point, latest_per_step

INSTALL_HINT = "pip install 'hpcx[tensorboard]'"
MARKER_FILE = "hpcx-export.json"  # in every folder an export wrote: what may be replaced by the next one


@dataclass(frozen=True)
class Source:
    """One TensorBoard run: the metrics files of one rank of the job or of one task, and where they go
    (``subdir``, relative to the export's folder; empty for the folder itself)."""

    subdir: str
    task: int | None
    rank: int
    paths: tuple[Path, ...]
    params: dict[str, Any] | None


def metric_series(paths: Iterable[Path]) -> dict[str, list[Point]]:
    """Per metric name (sorted), one point per step in step order: hpcx.runs.metric_points.latest_per_step over
    the files' records (a step logged more than once keeps the latest attempt's value, with that record's
    time; non-finite values kept)."""
    records = (record for path in paths for record in read_records(path))
    return dict(sorted(latest_per_step(records).items()))


def _task_params(run: Run) -> dict[int, dict[str, Any]]:
    """Each task's parameters from the task table; none for a run without one (a plain job, an array job)."""
    table = run.dir / TASK_TABLE
    if not table.is_file():
        return {}
    return {int(row["task"]): dict(row.get("params") or {}) for row in read_tasks(table)}


def plan_sources(run: Run, task: int | None = None, all_ranks: bool = False) -> list[Source]:
    """What to export: rank 0 (every rank with ``all_ranks``) of the job, of each task that logged metrics, or
    of the one ``task`` named. Ranks without a metrics file are left out."""
    if task is not None:
        tasks: list[int | None] = [task]
    else:
        tasks = list(task_dirs(metrics_dir(run.dir))) or [None]
    params = _task_params(run) if tasks != [None] else {}
    sources = []
    for t in tasks:
        files = rank_files(metrics_dir(run.dir, t))
        for rank in sorted(files) if all_ranks else ([0] if 0 in files else []):
            parts = [
                task_name(t) if task is None and t is not None else "",
                rank_name(rank) if all_ranks else "",
            ]
            subdir = "/".join(p for p in parts if p)
            sources.append(
                Source(subdir, t, rank, tuple(files[rank]), params.get(t) if t is not None else None)
            )
    return sources


def export_dir(run: Run, out_dir: Path, task: int | None = None) -> Path:
    """The folder an export of ``run`` (or of its one ``task``) fills: ``DIR/<run id>[/task-NNNNN]``."""
    top = Path(out_dir) / run.id
    return top if task is None else top / task_name(task)


def _load_tensorboard() -> SimpleNamespace:
    """The parts of the ``tensorboard`` package the export writes with, or a UsageError naming the extra."""
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.hparams import summary_v2 as hparams
        from tensorboard.plugins.text import summary_v2 as text
        from tensorboard.summary import Writer
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as exc:
        raise UsageError(
            f"hpcx export --tensorboard needs the tensorboard package, which is not installed ({exc})",
            hint=INSTALL_HINT,
        ) from exc
    return SimpleNamespace(
        Writer=Writer, EventFileWriter=EventFileWriter, Event=event_pb2.Event, hparams=hparams, text=text
    )


def _simple(params: dict[str, Any]) -> bool:
    """Whether TensorBoard's hparams take these values as they are (numbers, strings, booleans)."""
    return all(isinstance(v, (bool, int, float, str)) for v in params.values())


def _write_params(tb: SimpleNamespace, directory: Path, params: dict[str, Any], wall_time: float) -> None:
    """A task's parameters: as text (a JSON block, any value), and as hparams when every value is simple."""
    summaries = [
        tb.text.text_pb("parameters", "```\n" + json.dumps(params, indent=2, sort_keys=True) + "\n```")
    ]
    if _simple(params):
        summaries.append(tb.hparams.hparams_pb(params, start_time_secs=wall_time))
    writer = tb.EventFileWriter(str(directory), filename_suffix=".params")
    try:
        for summary in summaries:
            writer.add_event(tb.Event(wall_time=wall_time, step=0, summary=summary))
    finally:
        writer.close()


def _write_source(
    tb: SimpleNamespace, directory: Path, source: Source, series: dict[str, list[Point]]
) -> None:
    """One TensorBoard run's event files: the task's parameters, then every point of every metric."""
    directory.mkdir(parents=True, exist_ok=True)
    if source.params:
        first_t = min(p.wall_time for points in series.values() for p in points)
        _write_params(tb, directory, source.params, first_t)
    writer = tb.Writer(str(directory))
    try:
        for name, points in series.items():
            for p in points:
                writer.add_scalar(name, p.value, p.step, wall_time=p.wall_time)
    finally:
        writer.close()


def _ours(path: Path) -> bool:
    """Whether ``path`` holds only what exports wrote: a marker of its own, a task's folder of a run's export,
    or only task folders with a marker each (``hpcx export RUN_N`` fills ``DIR/<run id>/task-NNNNN`` alone)."""
    if (path / MARKER_FILE).is_file():
        return True
    if task_of(path.name) is not None and (path.parent / MARKER_FILE).is_file():
        return True  # a task's folder of a whole run's export
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    return all(p.is_dir() and task_of(p.name) is not None and (p / MARKER_FILE).is_file() for p in entries)


def _check_replaceable(target: Path) -> None:
    if target.exists() and not (target.is_dir() and _ours(target)):
        raise UsageError(
            f"{target} exists and was not written by hpcx export (no {MARKER_FILE} in it): not replacing it",
            hint="export into another --tensorboard directory, or move that one away",
        )


def _swap(staging: Path, target: Path) -> bool:
    """Put the new export in place of the previous one (renames, then the old files go); whether there was one."""
    if not target.exists():
        staging.rename(target)
        return False
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    target.rename(old)
    staging.rename(target)
    shutil.rmtree(old)
    return True


def _no_metrics(run: Run, task: int | None, all_ranks: bool) -> UsageError:
    what = f"task {task} of run {run.id}" if task is not None else f"run {run.id}"
    ranks = "any rank" if all_ranks else "rank 0"
    return UsageError(
        f"{what} has no logged metrics of {ranks} in {metrics_dir(run.dir, task)}: nothing to export",
        hint="a job logs them with hpcx.runtime.log(step, loss=...); `hpcx status RUN` shows whether it has",
    )


def export_tensorboard(
    run: Run, out_dir: Path, task: int | None = None, all_ranks: bool = False
) -> dict[str, Any]:
    """Write TensorBoard event files of ``run``'s logged metrics under ``out_dir`` (module docstring), replacing
    an earlier export of the same run there; the answer says what was written where."""
    tb = _load_tensorboard()
    planned = [(s, metric_series(s.paths)) for s in plan_sources(run, task, all_ranks)]
    exported = [(s, series) for s, series in planned if series]
    if not exported:
        raise _no_metrics(run, task, all_ranks)
    target = export_dir(run, out_dir, task)
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.export-{secrets.token_hex(4)}")
    staging.mkdir()  # the umask's mode, as every folder hpcx makes
    try:
        for source, series in exported:
            _write_source(tb, staging / source.subdir, source, series)
        runs = [_run_doc(target, s, series) for s, series in exported]
        _write_marker(staging, run, task, all_ranks, runs)
        replaced = _swap(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    skipped = [str(target / s.subdir) for s, series in planned if not series]
    return {
        "run_id": run.id,
        "task": task,
        "logdir": str(out_dir),
        "dir": str(target),
        "replaced": replaced,
        "runs": runs,
        "empty": skipped,
    }


def _run_doc(target: Path, source: Source, series: dict[str, list[Point]]) -> dict[str, Any]:
    return {
        "dir": str(target / source.subdir),
        "task": source.task,
        "rank": source.rank,
        "metrics": sorted(series),
        "points": sum(len(points) for points in series.values()),
    }


def _write_marker(
    directory: Path, run: Run, task: int | None, all_ranks: bool, runs: list[dict[str, Any]]
) -> None:
    """What this export wrote, and the mark that lets the next export of the run replace it."""
    doc = {
        "exporter": f"hpcx {__version__}",
        "run_id": run.id,
        "task": task,
        "all_ranks": all_ranks,
        "exported_at": time.time(),
        "runs": runs,
    }
    atomic_write_json(directory / MARKER_FILE, doc)
