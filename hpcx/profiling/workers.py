"""The workers of a torchrun agent, each profiled as the rank it is.

Under ``--set mode=torchrun`` hpcx.run starts one torchrun agent per node, and the agent starts the workers: the
workers, not the agent, are the job's ranks. :class:`WorkerWatch` looks at the agent's children, every 50 ms while
fewer workers live than the agent starts (``--nproc-per-node``) and twice per interval once all are there; a child
whose environment has torchrun's RANK gets a rank file of its own (``rank-NNNNN[.step-S].jsonl``, its start record
naming the launcher ``torchrun``) and a sampler of its process tree. A worker that torchrun starts again
(``--max-restarts``) starts a new attempt in the same file. The agent's own records go to its agent file, whose end
record says how many workers the agent was to start and which ranks were seen: a worker that ended before a look
found it has no file, and the report says so instead of showing fewer ranks.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from hpcx.profiling.sampler import Sampler
from hpcx.profiling.sources import children
from hpcx.rundir import layout
from hpcx.rundir.records import RecordWriter

FAST_S = 0.05  # the look while workers are missing: one that lives longer than this is seen

_ENV_KEYS = (b"RANK", b"WORLD_SIZE", b"LOCAL_RANK", b"TORCHELASTIC_RESTART_COUNT", b"TORCHELASTIC_RUN_ID")


def worker_identity(pid: int) -> dict[str, str] | None:
    """torchrun's variables in process ``pid``'s environment; None for a process that is not (yet) a worker
    (a child between fork and exec still has the agent's environment, which has no RANK)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            items = fh.read().split(b"\0")
    except OSError:
        return None
    found = {}
    for item in items:
        key, _, value = item.partition(b"=")
        if key in _ENV_KEYS:
            found[key.decode()] = value.decode(errors="replace")
    if "TORCHELASTIC_RUN_ID" not in found or not found.get("RANK", "").isdigit():
        return None
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [w.decode(errors="replace") for w in fh.read().split(b"\0") if w]
    except OSError:
        return []


def _cpus(pid: int) -> int | None:
    try:
        return len(os.sched_getaffinity(pid))
    except OSError:
        return None


class _Worker:
    """One worker process: its writer (shared by the attempts of its rank), sampler and start time."""

    def __init__(self, pid: int, rank: int, writer: RecordWriter, sampler: Sampler, t0: float) -> None:
        self.pid, self.rank, self.writer, self.sampler, self.t0 = pid, rank, writer, sampler, t0


class WorkerWatch(threading.Thread):
    """Finds the agent's workers as they start and samples each into its rank's file (see the module)."""

    def __init__(
        self,
        agent_pid: int,
        profile_dir: Path,
        ids: dict[str, Any],
        interval_s: float = 1.0,
        expected: int | None = None,
    ) -> None:
        super().__init__(name="hpcx-workers", daemon=True)
        self.agent_pid, self.profile_dir, self.ids, self.interval_s = agent_pid, profile_dir, ids, interval_s
        self.expected = expected
        self.workers: dict[int, _Worker] = {}  # by rank: the latest process of each
        self._writers: dict[int, RecordWriter] = {}
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            self.look()
            # fast while workers are missing (starting, or started again), then twice per interval
            if self._stop_event.wait(FAST_S if self._missing() else self.interval_s / 2):
                break

    def _missing(self) -> bool:
        if self.expected is None:
            return True
        return sum(os.path.exists(f"/proc/{w.pid}") for w in self.workers.values()) < self.expected

    def look(self) -> None:
        """Start recording every worker of the agent not seen yet."""
        known = {w.pid for w in self.workers.values()}
        for pid in children(self.agent_pid):
            if pid in known:
                continue
            found = worker_identity(pid)
            if found is not None:
                with self._lock:
                    self._start(pid, found)

    def _start(self, pid: int, found: dict[str, str]) -> None:
        rank = int(found["RANK"])
        old = self.workers.get(rank)
        if old is not None:  # torchrun started the rank again: a new attempt in the same file
            old.sampler.stop()
        writer = self._writers.get(rank)
        if writer is None:
            step = self.ids.get("step")
            writer = self._writers[rank] = RecordWriter(
                layout.rank_file(self.profile_dir, rank, step), line_flush=False
            )
        writer.write(self._start_record(pid, rank, found))
        sampler = Sampler(pid, writer, rank, interval_s=self.interval_s)
        sampler.start()
        self.workers[rank] = _Worker(pid, rank, writer, sampler, time.time())

    def _start_record(self, pid: int, rank: int, found: dict[str, str]) -> dict[str, Any]:
        return {
            "type": "start",
            "t": time.time(),
            "rank": rank,
            "size": int(found["WORLD_SIZE"]) if found.get("WORLD_SIZE", "").isdigit() else None,
            "local_rank": int(found["LOCAL_RANK"]) if found.get("LOCAL_RANK", "").isdigit() else None,
            "node": self.ids.get("node"),
            "host": socket.gethostname(),
            "pid": pid,
            "launcher": "torchrun",
            "agent_pid": self.agent_pid,
            "restart": int(found.get("TORCHELASTIC_RESTART_COUNT") or 0),
            "job_id": self.ids.get("job_id"),
            "step": self.ids.get("step"),
            "attempt": self.ids.get("attempt", 0),
            "argv": _cmdline(pid),
            "cpus_allowed": _cpus(pid),
            "interval_s": self.interval_s,
            "node_collector": False,
        }

    def finish(self, exit_code: int) -> dict[str, Any]:
        """Stop watching and write each worker's end record; return what the agent's end record says of its
        workers (expected, and the ranks seen). A worker is the agent's child, not ours: its own exit status
        cannot be read, so each carries the agent's (0 only when every worker of the node ended 0); its CPU
        time and memory are its sampler's last figures and peak."""
        self._stop_event.set()
        self.join(timeout=10)
        self.look()  # a worker that started since the last look and still lives
        with self._lock:
            for worker in self.workers.values():
                worker.sampler.stop()
                last = worker.sampler.last_sample or {}
                worker.writer.write(
                    {
                        "type": "end",
                        "t": time.time(),
                        "rank": worker.rank,
                        "exit_code": exit_code,
                        "exit_code_of": "torchrun agent",
                        "wall_s": round(last.get("t", worker.t0) - worker.t0, 3),
                        "cpu_s": last.get("cpu_s", 0.0),
                        "peak_rss_mb": worker.sampler.peak_rss_mb,
                        "samples": worker.sampler.samples,
                        "sampler_cpu_s": round(worker.sampler.cpu_s, 4),
                    }
                )
            for writer in self._writers.values():
                writer.close()
            return {"workers_expected": self.expected, "worker_ranks": sorted(self._writers)}
