"""A background thread that samples one process tree (RSS, CPU time) and appends the samples."""

from __future__ import annotations

import threading
import time
from typing import Any

from hpcx.records import RecordWriter


def tree_usage(pid: int) -> dict[str, float] | None:
    """RSS (MB) and CPU time (s, user + system) of ``pid`` and all its descendants; None once it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    rss = cpu = 0.0
    for proc in procs:
        try:
            with proc.oneshot():
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                cpu += times.user + times.system + times.children_user + times.children_system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # a child that exited between listing and reading
    return {"rss_mb": rss / 2**20, "cpu_s": cpu}


class Sampler(threading.Thread):
    """Samples ``pid``'s tree every ``interval_s`` into ``writer``; keeps the peak RSS seen."""

    def __init__(
        self, pid: int, writer: RecordWriter, rank: int, interval_s: float = 1.0, sync_s: float = 5.0
    ):
        super().__init__(name="hpcx-sampler", daemon=True)
        self.pid, self.writer, self.rank = pid, writer, rank
        self.interval_s, self.sync_s = interval_s, sync_s
        self.peak_rss_mb = 0.0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        last_sync = time.monotonic()
        while not self._stop_event.is_set():
            self.sample_once()
            if time.monotonic() - last_sync >= self.sync_s:
                self.writer.sync()  # records reach the shared filesystem every few seconds, not only at exit
                last_sync = time.monotonic()
            self._stop_event.wait(self.interval_s)

    def sample_once(self) -> dict[str, Any] | None:
        usage = tree_usage(self.pid)
        if usage is None:
            return None
        self.peak_rss_mb = max(self.peak_rss_mb, usage["rss_mb"])
        self.samples += 1
        record = {"type": "sample", "t": time.time(), "rank": self.rank, **usage}
        self.writer.write(record)
        return record

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
