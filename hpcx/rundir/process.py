"""One record file per process: the writer behind the records a job's own processes append (I/O totals,
regions, communication, logged metrics), and where in the run directory they go.

``python -m hpcx.run`` tells the command where its run is through the environment: ``HPCX_RUN_DIR`` (the run
directory), ``HPCX_PROFILE_DIR`` (this rank's profile directory, a task's own in a sweep), ``HPCX_TASK_ID`` (the
array task) and ``HPCX_PROFILE=0`` (``hpcx submit --no-profile``: no profile records). Outside a run none is set
and nothing is written.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Optional

from hpcx.rundir.layout import metrics_dir, process_file, profile_dir
from hpcx.rundir.records import RecordWriter

PathOf = Callable[[], Optional[Path]]


def profile_dir_from_env(env: Mapping[str, str] | None = None) -> Path | None:
    """Where this process's profile records go: ``$HPCX_PROFILE_DIR`` (set by ``python -m hpcx.run``), else
    the run's ``profile/``; None outside a run or with ``HPCX_PROFILE=0``."""
    env = os.environ if env is None else env
    explicit = env.get("HPCX_PROFILE_DIR")
    if explicit:
        return Path(explicit)
    if env.get("HPCX_PROFILE") == "0":  # `hpcx submit --no-profile`: no profile records at all
        return None
    run_dir = env.get("HPCX_RUN_DIR")
    return profile_dir(run_dir) if run_dir else None


def metrics_dir_from_env(env: Mapping[str, str] | None = None) -> Path | None:
    """Where this process's logged metrics go: the run's ``metrics/``, a sweep task's ``metrics/task-NNNNN/``
    (its tasks share the run directory, and their metrics must not mix); None outside a run."""
    env = os.environ if env is None else env
    run_dir, task = env.get("HPCX_RUN_DIR"), env.get("HPCX_TASK_ID")
    if not run_dir:
        return None
    return metrics_dir(run_dir, int(task) if task else None)


def profile_file(kind: str, rank: Callable[[], int]) -> PathOf:
    """The path of this process's profile records of ``kind`` (``KIND-rank-NNNNN-pPID.jsonl``), named when the
    file is opened: in a forked child, by the child's pid."""

    def path() -> Path | None:
        directory = profile_dir_from_env()
        return None if directory is None else process_file(directory, kind, rank(), os.getpid())

    return path


class ProcessRecords:
    """This process's record file, opened at its first record, at the path ``path()`` names then (None: no
    file, e.g. outside a run; asked again at the next record).

    One file per process: a forked child (a DataLoader worker) keeps none of its parent's file and opens its
    own, and ``after_fork`` (run in the child) drops whatever else the parent had counted. ``lock`` is the
    records' lock, new in a forked child (another thread may have held the parent's at the fork). ``quiet``:
    a file that cannot be opened or written ends this process's records instead of raising (profiling must
    never break the job). ``opened`` writes a new file's first records (e.g. an anchor)."""

    def __init__(
        self,
        path: PathOf,
        *,
        quiet: bool = True,
        opened: Callable[[RecordWriter], None] | None = None,
        after_fork: Callable[[], None] | None = None,
    ) -> None:
        self._path, self._quiet, self._opened, self._after_fork = path, quiet, opened, after_fork
        self._start()
        os.register_at_fork(after_in_child=self._forked)

    def _start(self) -> None:
        self.lock = threading.Lock()
        self.failed = False  # a file that could not be opened or written: no more records in this process
        self._writer: RecordWriter | None = None
        self._synced_at = 0.0  # time.monotonic() of the last fsync

    def _forked(self) -> None:
        self._start()  # the parent's writer and its buffer stay the parent's
        if self._after_fork is not None:
            self._after_fork()

    def writer(self) -> RecordWriter | None:
        """The open file, opened now if need be; None without a path or after a failure."""
        if self._writer is None and not self.failed:
            self._writer = self._open()
        return self._writer

    def _open(self) -> RecordWriter | None:
        path = self._path()
        if path is None:
            return None
        try:
            writer = RecordWriter(path)
            if self._opened is not None:
                self._opened(writer)
        except OSError:
            if not self._quiet:
                raise
            self.failed = True
            return None
        return writer

    def write(self, record: dict[str, Any]) -> bool:
        """Append ``record`` (whole and flushed); False when there is no file or it could not be written."""
        writer = self.writer()
        if writer is None:
            return False
        try:
            writer.write(record)
        except OSError:
            if not self._quiet:
                raise
            self.failed = True
            return False
        return True

    def sync(self, every_s: float = 0.0) -> None:
        """Make the records written so far durable (fsync) when a file is open; with ``every_s``, only when
        the last fsync is more than ``every_s`` seconds ago."""
        now = time.monotonic()
        if self._writer is None or (every_s and now - self._synced_at <= every_s):
            return
        self._writer.sync()
        self._synced_at = time.monotonic()

    def close(self) -> None:
        """Close the file (flushed and fsynced); the next record opens one again, at the path named then."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
