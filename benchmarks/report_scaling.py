"""report_scaling: how long `hpcx report` takes for a large job, and whether it grows linearly with ranks.

A synthetic run directory is written with hpcx's real record writers (hpcx.rundir.records.RecordWriter, the format
hpcx.run writes): 256 ranks, 32 per node, one hour at the default 1 s sampling (3,600 samples per rank; per
node 3,600 samples with RAPL edges every 10 s), one comm file per rank, Slurm accounting rows. Timed: what
`hpcx report` does after finding the run: build the report (merge, accounting, advice), render the terminal
text, write report.json and render and write report.html (matplotlib plots). Writing the records is not timed.

- ``report_256rank_hour_s``: median seconds for 256 ranks (target < 5 s);
- ``report_scaling_2x``: the same for 512 ranks over 256, the median of the ratios of alternating runs
  (target <= 2.2: linear, with some slack).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _common import REPO, alternate, main, result, stats, timing_row

sys.path.insert(0, str(REPO))

from hpcx.reports import build_report, render_text, write_html, write_report
from hpcx.rundir.records import RecordWriter, node_file, rank_file
from hpcx.runs import Run

HOUR_S = 3600
RANKS_PER_NODE = 32
T0 = 1_700_000_000.0


def write_run(root: Path, ranks: int) -> Run:
    """A finished job's run directory: manifest, job record, accounting, rank, node and comm records."""
    run = Run(f"bench-{ranks}", root / f"bench-{ranks}")
    profile = run.dir / "profile"
    profile.mkdir(parents=True)
    res = {
        "nodes": ranks // RANKS_PER_NODE,
        "ntasks_per_node": RANKS_PER_NODE,
        "cpus_per_task": 1,
        "mem_mb": 256_000,
        "time_min": 240,
    }
    manifest = {
        "kind": {"value": "mpi"},
        "command": ["python", "train.py"],
        "resources": {k: {"value": v, "source": "cli"} for k, v in res.items()},
    }
    (run.dir / "manifest.json").write_text(json.dumps(manifest))
    (run.dir / "job.json").write_text(json.dumps({"scheduler": "slurm", "job_id": "1000"}))
    for rank in range(ranks):
        _write_rank(profile, rank)
    for node in range(ranks // RANKS_PER_NODE):
        _write_node(profile, f"n{node:04d}", node * RANKS_PER_NODE)
    os.sync()  # a report reads records written long before: not while the kernel still writes them back
    return run


def _write_rank(profile: Path, rank: int) -> None:
    node = f"n{rank // RANKS_PER_NODE:04d}"
    w = RecordWriter(rank_file(profile, rank), line_flush=False)
    w.write(
        {
            "type": "start",
            "t": T0,
            "rank": rank,
            "size": 0,
            "local_rank": rank % RANKS_PER_NODE,
            "node": node,
            "host": node,
            "attempt": 0,
            "cpus_allowed": 1,
            "interval_s": 1.0,
        }
    )
    w.write({"type": "source", "t": T0, "rank": rank, "name": "process", "status": "measured"})
    for i in range(1, HOUR_S + 1):
        w.write(
            {
                "type": "sample",
                "t": T0 + i,
                "rank": rank,
                "rss_mb": 2000.0 + i % 97,
                "hwm_mb": 2100.0,
                "cpu_s": i * 0.9,
                "threads": 4,
                "read_bytes": i * 4096,
                "write_bytes": i * 512,
            }
        )
    w.write(
        {
            "type": "end",
            "t": T0 + HOUR_S,
            "rank": rank,
            "exit_code": 0,
            "wall_s": float(HOUR_S),
            "cpu_s": HOUR_S * 0.9,
            "peak_rss_mb": 2100.0,
            "samples": HOUR_S,
        }
    )
    w.close()
    c = RecordWriter(profile / f"comm-rank-{rank:05d}-p{1000 + rank}.jsonl")
    entry = {
        "lib": "torch",
        "call": "all_reduce",
        "bucket": 2**24,
        "ranks": 256,
        "calls": 36_000,
        "bytes": 36_000 * 2**24,
        "seconds": 600.0 + rank % 7,
        "algbw_gbs": 1.0,
        "busbw_gbs": 2.0,
    }
    c.write(
        {
            "type": "comm",
            "t": T0 + HOUR_S,
            "rank": rank,
            "format": "hpcx.comm/1",
            "pid": 1000 + rank,
            "wall_s": float(HOUR_S),
            "seconds": entry["seconds"],
            "entries": [entry],
        }
    )
    c.close()


def _write_node(profile: Path, node: str, rank: int) -> None:
    w = RecordWriter(node_file(profile, node), line_flush=False)
    w.write({"type": "start", "t": T0, "node": node, "host": node, "rank": rank, "interval_s": 1.0})
    w.write(
        {
            "type": "source",
            "t": T0,
            "node": node,
            "name": "rapl",
            "status": "measured",
            "zones": {"intel-rapl:0": "package-0", "intel-rapl:0:0": "dram"},
        }
    )
    for i in range(HOUR_S + 1):
        memory = {"used_mb": 64000.0 + i % 13, "available_mb": 190000.0}
        network = {"rx_bytes": i * 10**6, "tx_bytes": i * 10**6}
        sample = {"type": "sample", "t": T0 + i, "node": node, "memory": memory, "network": network}
        if i % 10 == 0 or i == HOUR_S:
            sample.update(edge=True, rapl={"package_j": i * 400.0, "dram_j": i * 30.0, "wraps": 0})
        w.write(sample)
    w.write({"type": "end", "t": T0 + HOUR_S, "node": node, "samples": HOUR_S + 1})
    w.close()


ACCOUNTING = {
    "finished": True,
    "rows": [
        {
            "JobID": "1000",
            "State": "COMPLETED",
            "ExitCode": "0:0",
            "Elapsed": "01:00:05",
            "TotalCPU": "1-00:00:00",
            "MaxRSS": "",
            "AllocTRES": "cpu=256,node=8",
            "NodeList": "n[0000-0007]",
            "Start": "s",
            "End": "e",
            "JobName": "bench",
        }
    ],
}


def report_case(run: Run) -> Callable[[], None]:
    """What `hpcx report` does after finding the run: build, render, write report.json and report.html."""

    def case() -> None:
        doc = build_report(run, ACCOUNTING)
        render_text(doc)
        write_report(run, doc)
        write_html(run, doc)

    return case


def run(quick: bool) -> list[dict]:
    repeats = 2 if quick else 5
    with tempfile.TemporaryDirectory(prefix="hpcx-report-bench-") as tmp:
        cases = {ranks: report_case(write_run(Path(tmp), ranks)) for ranks in (256, 512)}
        # Round-robin, so the load of others on a shared machine hits both sizes alike.
        times = alternate({str(k): v for k, v in cases.items()}, repeats)
    ratios = [b / a for a, b in zip(times["256"], times["512"])]
    return [
        timing_row("report_256rank_hour_s", times["256"], "none (hpcx's own report)", unit="s")
        | {"target": 5.0},
        result(
            "report_scaling_2x",
            round(statistics.median(ratios), 2),
            "x",
            "256 ranks (ratio of medians: "
            f"{statistics.median(times['512']) / statistics.median(times['256']):.2f})",
            2.2,
            iqr=round(stats(ratios)["iqr"], 2),
            n=repeats,
        ),
    ]


if __name__ == "__main__":
    raise SystemExit(main("report_scaling", run, __doc__))
