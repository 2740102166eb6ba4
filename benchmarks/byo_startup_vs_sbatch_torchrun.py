"""A script written for torchrun, with no line of hpcx in it: seconds from the job's start to its first training
step under hpcx's torch-ddp kind, against the hand-written sbatch + srun + torchrun script that framework docs
show, on the same two nodes.

The program is examples/frameworks/plain_ddp.py (gloo, env:// rendezvous, DDP over a small linear model), one
process per node on the test cluster's two nodes. Each job's start is the moment slurmd launched its batch
script (the first node's slurmd log, milliseconds: LogTimeFormat=iso8601_ms); its first step the wall-clock time
rank 0 prints after its first optimizer step. The jobs run one at a time, alternating (A B C A B C ...), after
one untimed round of each.

- hpcx: ``hpcx submit torch-ddp -p debug -N 2 --ntasks-per-node 1 -- python plain_ddp.py`` (srun starts one
  hpcx.run per rank, which gives the script torchrun's variables and samples its process tree);
- hpcx torchrun: the same with ``--set mode=torchrun`` (srun starts one hpcx.run per node over
  hpcx.runtime.torchrun, which runs torchrun with a c10d rendezvous on the first node);
- baseline: an sbatch script as PyTorch's and the clusters' torchrun guides write it: ``srun torchrun --nnodes 2
  --nproc_per_node 1 --rdzv_id $SLURM_JOB_ID --rdzv_backend c10d --rdzv_endpoint $head:29500 plain_ddp.py``.

metric byo_startup_vs_sbatch_torchrun = median seconds to the first step under hpcx / the baseline's. Target
<= 1.1. Extra row (no target): the torchrun mode's ratio. Jobs are cancelled on errors and Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

NAME = "byo_startup_vs_sbatch_torchrun"
SITE = c.REPO / "examples" / "sites" / "testbed.yaml"
SCRIPT = c.REPO / "examples" / "frameworks" / "plain_ddp.py"
STEPS = "3"
FIRST_STEP = re.compile(r"rank 0: first step after [\d.]+ s \(at ([\d.]+)\)")
BASELINE = """#!/bin/bash
#SBATCH -p debug -N 2 --ntasks-per-node=1 -t 5 -J byo-baseline
#SBATCH --output={out}
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
head_ip=127.0.0.1  # the guides resolve $head; the test cluster's nodes share the loopback
export GLOO_SOCKET_IFNAME=lo
srun torchrun --nnodes 2 --nproc_per_node 1 --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d \\
  --rdzv_endpoint "$head_ip:29500" {script} --steps {steps}
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SBATCH_", "SLURM_", "SALLOC_", "HPCX_"))}
    env["PATH"] = (
        f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # jobs run this venv's python, torchrun
    )
    return env


def _slurmd_log(node: str) -> Path:
    conf = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    for line in conf.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "SlurmdLogFile":
            return Path(value.strip().replace("%n", node))
    raise c.Skip("scontrol show config names no SlurmdLogFile")


def _launched_at(job_id: str) -> float:
    """When slurmd launched the job's batch script, from its log (Unix time)."""
    text = _slurmd_log("n1").read_text(errors="replace")
    match = re.search(rf"^\[([^\]]+)\] Launching batch job {job_id} ", text, re.M)
    if not match:
        raise RuntimeError(f"job {job_id}: no 'Launching batch job' line in the slurmd log")
    return dt.datetime.fromisoformat(match.group(1)).astimezone().timestamp()


def _wait(job_id: str, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        if out and out.split("\n")[0] not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING", ""):
            if not out.startswith("COMPLETED"):
                raise RuntimeError(f"job {job_id} ended {out}")
            return
        time.sleep(0.5)
    subprocess.run(["scancel", job_id], timeout=30, check=False)
    raise RuntimeError(f"job {job_id} did not finish in {timeout_s} s")


def _first_step(job_id: str, log: Path) -> float:
    _wait(job_id)
    for _ in range(20):  # the output file may reach the disk a moment after sacct says COMPLETED
        match = FIRST_STEP.search(log.read_text(errors="replace")) if log.exists() else None
        if match:
            return float(match.group(1)) - _launched_at(job_id)
        time.sleep(0.25)
    raise RuntimeError(f"job {job_id}: no first-step line in {log}")


class Cases:
    def __init__(self, root: Path) -> None:
        self.root, self.jobs, self.seconds = root, [], {"hpcx": [], "hpcx_torchrun": [], "baseline": []}

    def hpcx(self, *extra: str) -> float:
        env = {**_env(), "HPCX_RUNS": str(self.root / "runs"), "HPCX_SITE": str(SITE)}
        argv = [sys.executable, "-m", "hpcx", "--json", "submit", "torch-ddp", "-p", "debug", "-N", "2"]
        argv += ["--ntasks-per-node", "1", "-t", "5", *extra, "--", "python", str(SCRIPT), "--steps", STEPS]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=c.REPO)
        if proc.returncode != 0:
            raise RuntimeError(f"hpcx submit failed: {proc.stderr[-1000:]}")
        doc = json.loads(proc.stdout)
        self.jobs.append(doc["job_id"])
        return _first_step(
            doc["job_id"], self.root / "runs" / doc["run_id"] / "logs" / f"slurm-{doc['job_id']}.out"
        )

    def baseline(self) -> float:
        out = self.root / f"baseline-{len(self.jobs)}.out"
        script = self.root / "baseline.sbatch"
        script.write_text(BASELINE.format(out=out, script=SCRIPT, steps=STEPS))
        proc = subprocess.run(
            ["sbatch", "--parsable", str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
            cwd=c.REPO,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sbatch failed: {proc.stderr[-1000:]}")
        job_id = proc.stdout.strip().split(";")[0]
        self.jobs.append(job_id)
        return _first_step(job_id, out)

    def round(self, record: bool) -> None:
        for name, fn in (("hpcx", self.hpcx), ("hpcx_torchrun", lambda: self.hpcx("--set", "mode=torchrun"))):
            value = fn()
            if record:
                self.seconds[name].append(value)
        value = self.baseline()
        if record:
            self.seconds["baseline"].append(value)


def run(quick: bool) -> list[dict[str, Any]]:
    for tool in ("sbatch", "sacct", "scontrol", "scancel"):
        if shutil.which(tool) is None:
            raise c.Skip(f"Slurm tool {tool} not found")
    if subprocess.run(["scontrol", "ping"], capture_output=True, timeout=30).returncode != 0:
        raise c.Skip("no Slurm controller answers (scripts/testbed up)")
    if not _slurmd_log("n1").exists():
        raise c.Skip("the first node's slurmd log is not readable here (the test cluster's is)")
    root = Path(tempfile.mkdtemp(prefix="hpcx-bench-byo-"))
    cases = Cases(root)
    try:
        cases.round(record=False)
        for _ in range(3 if quick else 7):
            cases.round(record=True)
    finally:
        if cases.jobs:
            subprocess.run(["scancel", *cases.jobs], capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)
    s = {name: c.stats(v) for name, v in cases.seconds.items()}
    base = s["baseline"]["median"]
    rows = [
        c.result(NAME, round(s["hpcx"]["median"] / base, 3), "x", "sbatch + srun + torchrun", 1.1),
        c.result(
            "byo_startup_torchrun_mode_vs_sbatch_torchrun",
            round(s["hpcx_torchrun"]["median"] / base, 3),
            "x",
            "sbatch + srun + torchrun",
        ),
    ]
    for name, label in (
        ("hpcx", "hpcx torch-ddp"),
        ("hpcx_torchrun", "hpcx mode=torchrun"),
        ("baseline", "sbatch"),
    ):
        rows.append(c.timing_row(f"first_step_s_{name}", cases.seconds[name], label, unit="s"))
    return rows


if __name__ == "__main__":
    sys.exit(c.main(NAME, run, __doc__))
