"""``hpcx status`` over 1,000 queued jobs against one raw ``squeue --json``.

Set-up: 1,000 held jobs on the Slurm cluster (``sbatch --hold --parsable -p debug -t 1 --wrap true``, one at a
time, each a separate job id), and a temporary runs root (HPCX_RUNS) with one run directory per job made with
hpcx's own API (``hpcx.runs.create_run`` + ``hpcx.runs.record_job``, plus a manifest.json naming kind serial).

metric status_vs_squeue = median wall time of a fresh ``python -m hpcx status --all`` (HPCX_RUNS set,
HPCX_SITE=examples/sites/testbed.yaml) / median wall time of ``squeue --json``, alternating. Target <= 1.5.

Extra rows (no target): the medians behind the ratio; the squeue query hpcx itself issues
(``squeue --json --states=all --me``) and its text fallback (``squeue -h --states=all --me -o ...``); hpcx's
start-up alone (``hpcx --version``); ``hpcx status --all`` in the same process (imports already done); how many
jobs the ``squeue --json`` dump held (Slurm 22.05 ignores --me, --states and --jobs with --json, so both sides
pay for every job the controller still remembers, finished ones included for MinJobAge: wait that long after
an earlier run for comparable numbers); and how long the set-up took. The held jobs are always cancelled
(scancel by id, then by the run's unique job name) and the runs root removed, also on errors, Ctrl-C and
SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

NAME = "status_vs_squeue"
N_JOBS = 1000
SITE = c.REPO / "examples" / "sites" / "testbed.yaml"
PARTITION = "debug"
SLURM_TOOLS = ("sbatch", "squeue", "scancel", "scontrol")


def _slurm(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _preflight() -> None:
    """Skip unless the cluster is up and has room for N_JOBS more jobs."""
    missing = [t for t in SLURM_TOOLS if shutil.which(t) is None]
    if missing:
        raise c.Skip(f"Slurm tools not found: {', '.join(missing)}")
    if not SITE.is_file():
        raise c.Skip(f"site file {SITE} is missing")
    conf = _slurm(["scontrol", "show", "config"])
    if conf.returncode != 0:
        raise c.Skip(f"no Slurm controller answers: {conf.stderr.strip()[:200]}")
    max_jobs = 10000
    for line in conf.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxJobCount" and value.strip().isdigit():
            max_jobs = int(value.strip())
    queued = _slurm(["squeue", "-h", "--states=all", "-o", "%i"])
    in_queue = len(queued.stdout.split()) if queued.returncode == 0 else 0
    if in_queue + N_JOBS > max_jobs * 0.9:
        raise c.Skip(f"MaxJobCount is {max_jobs} and {in_queue} jobs are queued: no room for {N_JOBS} more")


def _submit_held(n: int, job_name: str, ids: list[str]) -> None:
    """Submit ``n`` held jobs one by one, appending each id to ``ids`` as soon as it is known."""
    argv = ["sbatch", "--hold", "--parsable", "-p", PARTITION, "-t", "1", "-J", job_name]
    argv += ["--output=/dev/null", "--error=/dev/null", "--wrap", "true"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SBATCH_", "SLURM_", "SALLOC_"))}
    for _ in range(n):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
        job_id = proc.stdout.strip().split(";")[0]
        if proc.returncode != 0 or not job_id.isdigit():
            raise RuntimeError(f"sbatch failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
        ids.append(job_id)


def _cancel(ids: list[str], job_name: str) -> None:
    for i in range(0, len(ids), 200):
        _slurm(["scancel", *ids[i : i + 200]])
    # Jobs submitted but not yet recorded (an interrupt between sbatch and append) carry our unique name.
    user = os.environ.get("USER") or str(os.getuid())
    _slurm(["scancel", "--name", job_name, "--user", user])


def _make_runs(root: Path, ids: list[str]) -> None:
    from hpcx.runs import create_run, record_job, write_file

    submitted = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    for job_id in ids:
        run = create_run(root)
        record_job(run, {"scheduler": "slurm", "job_id": job_id, "submitted_at": submitted})
        write_file(run, "manifest.json", json.dumps({"kind": {"value": "serial"}}))


def _check_status(env: dict[str, str], ids: list[str]) -> None:
    """hpcx status must report every one of the jobs, pending, before it is timed."""
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "--json", "status", "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hpcx status exited {proc.returncode}: {proc.stderr[-2000:]}")
    rows = json.loads(proc.stdout)["runs"]
    seen = {str(r["job_id"]): r["state"] for r in rows}
    if set(seen) != set(ids):
        raise RuntimeError(f"hpcx status listed {len(seen)} job ids, expected the {len(ids)} submitted")
    not_pending = {s for s in seen.values() if s != "PENDING"}
    if not_pending:
        raise RuntimeError(f"hpcx status reports states {sorted(not_pending)} for held jobs")


def _jobs_in_dump() -> int:
    """How many jobs ``squeue --json`` printed (22.05 ignores --me/--states/--jobs with --json)."""
    proc = _slurm(["squeue", "--json"])
    return len(json.loads(proc.stdout).get("jobs", [])) if proc.returncode == 0 else -1


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that cancels the jobs


def run(quick: bool) -> list[dict[str, Any]]:
    _preflight()
    repeats = 5 if quick else 20
    job_name = f"hpcx-bench-status-{os.getpid()}"
    root = Path(tempfile.mkdtemp(prefix="hpcx-bench-status-runs-"))
    ids: list[str] = []
    old_handler = signal.signal(signal.SIGTERM, _sigterm)
    try:
        t0 = time.perf_counter()
        _submit_held(N_JOBS, job_name, ids)
        submit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _make_runs(root, ids)
        make_runs_s = time.perf_counter() - t0

        env = c.python_env({"HPCX_RUNS": str(root), "HPCX_SITE": str(SITE)})
        _check_status(env, ids)
        py = sys.executable
        cold = c.alternate(
            {
                "hpcx": c.subprocess_case([py, "-m", "hpcx", "status", "--all"], env=env),
                "squeue": c.subprocess_case(["squeue", "--json"], env=env),
                "squeue_me": c.subprocess_case(["squeue", "--json", "--states=all", "--me"], env=env),
                "squeue_text": c.subprocess_case(
                    ["squeue", "-h", "--states=all", "--me", "-o", "%i|%T|%r|%N"], env=env
                ),
                "hpcx_startup": c.subprocess_case([py, "-m", "hpcx", "--version"], env=env),
            },
            repeats,
            warmup=1,
        )
        warm = _warm_status(root, repeats)
        in_dump = _jobs_in_dump()
    finally:
        _cancel(ids, job_name)
        shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGTERM, old_handler)

    ratio = c.stats(cold["hpcx"])["median"] / c.stats(cold["squeue"])["median"]
    n = len(ids)
    return [
        c.result(
            "status_vs_squeue",
            round(ratio, 3),
            "ratio",
            f"fresh `python -m hpcx status --all` over {n} held jobs / one `squeue --json` (medians)",
            1.5,
        ),
        c.timing_row("status_cold_ms", cold["hpcx"], f"fresh `python -m hpcx status --all`, {n} runs"),
        c.timing_row("squeue_json_ms", cold["squeue"], "`squeue --json` (all users, default states)"),
        c.timing_row(
            "squeue_json_me_all_ms", cold["squeue_me"], "`squeue --json --states=all --me` (hpcx's query)"
        ),
        c.timing_row(
            "squeue_text_me_all_ms",
            cold["squeue_text"],
            "`squeue -h --states=all --me -o FORMAT`: hpcx's text fallback (filters apply)",
        ),
        c.timing_row("hpcx_startup_ms", cold["hpcx_startup"], "fresh `python -m hpcx --version`"),
        c.timing_row("status_warm_ms", warm, "in-process hpcx.cli.main(status --all): imports already done"),
        c.result(
            "squeue_json_jobs",
            in_dump,
            "jobs",
            "jobs in one `squeue --json` dump: ours, other users', and finished ones kept for MinJobAge",
        ),
        c.result(
            "setup_submit_s", round(submit_s, 2), "s", f"{n} x `sbatch --hold --parsable` (set-up only)"
        ),
        c.result("setup_runs_s", round(make_runs_s, 2), "s", f"{n} x create_run + record_job (set-up only)"),
    ]


def _warm_status(root: Path, repeats: int) -> list[float]:
    from hpcx.cli import main as hpcx_main

    def status() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            code = hpcx_main(["status", "--all"])
        if code != 0:
            raise RuntimeError(f"hpcx status exited {code} in-process")

    saved = {k: os.environ.get(k) for k in ("HPCX_RUNS", "HPCX_SITE")}
    os.environ.update({"HPCX_RUNS": str(root), "HPCX_SITE": str(SITE)})
    try:
        return c.repeat(status, repeats, warmup=1)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


if __name__ == "__main__":
    sys.exit(c.main(NAME, run, __doc__))
