"""A background thread that reads the sources every interval and appends what they give to the records.

One sampler per rank reads the rank's process tree into the rank file; the node's lowest local rank also reads
the node-level sources into the node file. Energy counters are reported at window edges (the first and last
reading and every ``edge_s`` between); gauges every interval. A source that cannot open, or fails later, is
recorded once as unavailable with the reason and not read again. Lines are written to disk every ``sync_s``
(5 s) and at the end, so a kill -9 loses at most that much.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from hpcx.profiling.sources import MEASURED, UNAVAILABLE, ProcessTree, Source, SourceUnavailable
from hpcx.rundir.records import RecordWriter

EDGE_EVERY_S = 10.0


def _open(source: Source, writer: RecordWriter, **ids: Any) -> bool:
    """Open ``source`` and write its source record (measured with its fields, or unavailable with why)."""
    try:
        desc = source.open()
    except SourceUnavailable as exc:
        writer.write(
            {
                "type": "source",
                "t": time.time(),
                **ids,
                "name": source.name,
                "status": UNAVAILABLE,
                "reason": str(exc),
            }
        )
        return False
    writer.write({"type": "source", "t": time.time(), **ids, "name": source.name, "status": MEASURED, **desc})
    return True


class Sampler(threading.Thread):
    """Samples ``pid``'s tree every ``interval_s`` into ``writer``, and the node sources into ``node_writer``
    when one is given (this rank is its node's collector). Keeps the peak RSS seen."""

    def __init__(
        self,
        pid: int,
        writer: RecordWriter,
        rank: int,
        interval_s: float = 1.0,
        sync_s: float = 5.0,
        node_writer: RecordWriter | None = None,
        node: str = "",
        node_sources: Sequence[Source] = (),
        edge_s: float = EDGE_EVERY_S,
    ) -> None:
        super().__init__(name="hpcx-sampler", daemon=True)
        self.pid, self.writer, self.rank, self.node = pid, writer, rank, node
        self.interval_s, self.sync_s, self.edge_s = interval_s, sync_s, edge_s
        self.node_writer, self.node_sources = node_writer, list(node_sources)
        self.tree: ProcessTree | None = ProcessTree(pid)
        self.peak_rss_mb = 0.0
        self.last_sample: dict[str, Any] | None = None  # the tree's last figures: a torchrun worker's totals
        self.samples = self.node_samples = 0
        self.cpu_s = 0.0  # the sampler thread's own CPU time: the profiler's cost, reported with the records
        self._stop_event = threading.Event()

    def run(self) -> None:
        t_cpu = time.thread_time()
        if not _open(self.tree, self.writer, rank=self.rank):  # type: ignore[arg-type]
            self.tree = None
        if self.node_writer is not None:
            self.node_sources = [s for s in self.node_sources if _open(s, self.node_writer, node=self.node)]
        self._sync()  # who ran where, and which sensors exist, are on disk from the first second
        next_t = next_edge = time.monotonic()
        last_sync = next_t
        while True:
            now = time.monotonic()
            edge = now >= next_edge
            if edge:
                next_edge = now + self.edge_s
            self.sample_once(edge)
            if now - last_sync >= self.sync_s:
                self._sync()  # records reach the shared filesystem every few seconds, not only at exit
                last_sync = now
            self.cpu_s = time.thread_time() - t_cpu
            next_t += self.interval_s
            late = time.monotonic()
            if next_t < late:  # a stall (job suspended, SIGSTOP, overload): this sample was the catch-up one
                next_t = late + self.interval_s
            if self._stop_event.wait(max(0.0, next_t - late)):
                break
        self.sample_once(edge=True)  # the closing edge of every energy window
        self.cpu_s = time.thread_time() - t_cpu
        self._close_node()

    def sample_once(self, edge: bool = True) -> dict[str, Any] | None:
        """Read every open source once; the rank's sample record, or None once its process is gone."""
        record = None
        usage = self.tree.read(edge) if self.tree is not None else None
        if usage is not None:
            self.peak_rss_mb = max(self.peak_rss_mb, usage["rss_mb"], usage["hwm_mb"])
            self.samples += 1
            record = {"type": "sample", "t": round(time.time(), 3), "rank": self.rank, **usage}
            self.writer.write(record)
            self.last_sample = record
        if self.node_writer is not None and self.node_sources:
            self._sample_node(edge)
        return record

    def _sample_node(self, edge: bool) -> None:
        assert self.node_writer is not None
        record: dict[str, Any] = {"type": "sample", "t": round(time.time(), 3), "node": self.node}
        if edge:
            record["edge"] = True
        for source in list(self.node_sources):
            try:
                value = source.read(edge)
            except Exception as exc:  # a sensor failing mid-job must not end the job: record it, stop reading
                self.node_sources.remove(source)
                self.node_writer.write(
                    {
                        "type": "source",
                        "t": time.time(),
                        "node": self.node,
                        "name": source.name,
                        "status": UNAVAILABLE,
                        "reason": f"failed while reading: {exc!r}",
                    }
                )
                continue
            if value is not None:
                record[source.name] = value
        self.node_samples += 1
        self.node_writer.write(record)

    def _sync(self) -> None:
        self.writer.sync()
        if self.node_writer is not None:
            self.node_writer.sync()

    def _close_node(self) -> None:
        if self.node_writer is None:
            return
        for source in self.node_sources:
            source.close()
        self.node_writer.write(
            {
                "type": "end",
                "t": time.time(),
                "node": self.node,
                "samples": self.node_samples,
                "edge_s": self.edge_s,
                "sampler_cpu_s": round(self.cpu_s, 4),
            }
        )
        self.node_writer.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
