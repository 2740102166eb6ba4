"""sampler_tree_us: one sample of a rank's process tree on a node with about 300 processes.

The rank here is this benchmark's process with two children. Enough detached ``sleep`` processes are started
(not descendants: started by a shell that exits) to bring the node to 300 processes, then
``ProcessTree.read`` is timed both ways in one run, alternating blocks: the kernel's per-thread children
lists (``/proc/PID/task/TID/children``, the default) and the fallback scan of all of /proc (psutil's
``children(recursive=True)``, used where the kernel lacks the lists). The value is the median per read.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from _common import REPO, main, result

sys.path.insert(0, str(REPO))
TARGET_PROCS = 300


def _procs() -> int:
    return sum(1 for p in os.listdir("/proc") if p.isdigit())


def run(quick: bool) -> list[dict]:
    from hpcx.profiling.sources import ProcessTree

    extra = max(0, TARGET_PROCS - _procs() - 2)
    out = subprocess.run(
        [
            "sh",
            "-c",
            f"for i in $(seq {extra}); do setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!; done",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    sleepers = [int(x) for x in out.split()]
    kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        procs = _procs()
        trees = {
            "children_files": ProcessTree(os.getpid(), True),
            "proc_scan": ProcessTree(os.getpid(), False),
        }
        times: dict[str, list[float]] = {k: [] for k in trees}
        for tree in trees.values():
            tree.open()
            assert tree.read(False)["threads"] >= 3
        for _ in range(5 if quick else 20):
            for name, tree in trees.items():
                for _ in range(20):
                    t = time.perf_counter()
                    tree.read(False)
                    times[name].append((time.perf_counter() - t) * 1e6)
    finally:
        for kid in kids:
            kid.kill()
            kid.wait(timeout=10)
        for pid in sleepers:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
    rows = []
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=4)
        rows.append(
            result(
                f"sampler_tree_us_{name}",
                round(statistics.median(ts), 1),
                "us",
                f"{procs} processes on the node, a 3-process tree",
                iqr=round(q[2] - q[0], 1),
                n=len(ts),
            )
        )
    return rows


if __name__ == "__main__":
    sys.exit(main("sampler_tree_us", run, __doc__))
