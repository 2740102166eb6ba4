"""hpcx's pre-flight against Slurm's own, over requests written in sbatch's vocabulary.

300 seeded random requests (tests/slurm/sbatch_vocab.py: -n, -N N and MIN-MAX, --ntasks-per-node, -c, --mem and
0, --mem-per-cpu, --gpus [TYPE:]N, --gpus-per-node, --gpus-per-task, --gres gpu[:TYPE]:N, -C with & and |, -w,
-x, --exclusive, -t in every Slurm form, -p one or a list, each spelled short or long, with = or a space) on
the test cluster, as a user without a site file has them: the live cluster's site (hpcx.site.discover).

metric preflight_agreement_vocab = share of requests where hpcx's accept/reject (`hpcx submit --dry-run`'s, in
process) equals `sbatch --test-only`'s, given the partition hpcx chose or, where it found none, the list of all
partitions; a usage error of hpcx counts as a reject (sbatch refuses those words too) unless sbatch takes them.
Target >= 0.99.

metric render_vs_sbatch_parse_ms = median time hpcx takes to parse and check one request (in process, the
site already read) / median wall time of one `sbatch --test-only` of it (a process and a controller round
trip: what a user waits for instead). Target <= 1.0. Extra rows: the two medians, and the disagreements.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as c

NAME = "preflight_agreement_vocab"
SEED = 20261207


def run(quick: bool) -> list[dict]:
    if shutil.which("sbatch") is None:
        raise c.Skip("sbatch not found")
    if subprocess.run(["scontrol", "ping"], capture_output=True, timeout=30, check=False).returncode != 0:
        raise c.Skip("no Slurm controller answers (scripts/testbed up)")
    from hpcx.site.discover import live_site
    from tests.slurm.sbatch_vocab import hpcx_verdict, requests, sbatch_verdict

    site, why = live_site()
    if site is None:
        raise c.Skip(f"the live cluster's site cannot be read: {why}")
    words_list = requests(60 if quick else 300, SEED)
    agree, hpcx_ms, sbatch_ms, missed = 0, [], [], []
    for words in words_list:
        start = time.perf_counter()
        verdict = hpcx_verdict(words, site)
        hpcx_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        accepted, said = sbatch_verdict(words, verdict.partition)
        sbatch_ms.append((time.perf_counter() - start) * 1000)
        if accepted == verdict.accepted:
            agree += 1
        else:
            missed.append(" ".join(words))
    share = agree / len(words_list)
    h, s = statistics.median(hpcx_ms), statistics.median(sbatch_ms)
    rows = [
        c.result(NAME, round(share, 4), "share", f"sbatch --test-only, {len(words_list)} requests", 0.99)
        | {"better": "higher"},
        c.result("render_vs_sbatch_parse_ms", round(h / s, 4), "ratio", "sbatch --test-only wall time", 1.0),
        c.result("hpcx_parse_check_ms", round(h, 3), "ms", "median, in process"),
        c.result("sbatch_test_only_ms", round(s, 3), "ms", "median wall time"),
    ]
    rows += [c.result(f"disagreement {i + 1}", 0, "-", m) for i, m in enumerate(missed[:10])]
    return rows


if __name__ == "__main__":
    sys.exit(c.main(NAME, run, __doc__))
