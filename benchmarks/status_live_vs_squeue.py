"""``hpcx status SWEEP --tasks`` on a 1,000-task sweep with 10,000 metric records per task, against one raw
``squeue`` of the same jobs.

Set-up: a real sweep of 1,000 tasks submitted with hpcx's own CLI (``python -m hpcx --json sweep SPEC``, the
spec asking for ``hold: true``, so sbatch gets ``--hold`` and no task ever runs), one job array. Then, as if
every task had run, each task's rank-0 metrics file (``metrics/task-NNNNN/rank-00000.jsonl``) gets 10,000
records in the exact bytes ``hpcx.runtime.log(step, loss=..., lr=..., total_steps=...)`` writes (checked
against hpcx.rundir.records.RecordWriter before the files are written), and one heartbeat written by
hpcx.runtime.metrics.Heartbeat.

Two phases over the same jobs, each timed in alternating rounds (a fresh ``python -m hpcx status RUN --tasks``,
HPCX_RUNS = the temporary runs root, HPCX_SITE=examples/sites/testbed.yaml; then the squeue query hpcx itself
issues, ``squeue -h -r --me --states=all -O FORMAT``):

- pending: the array held in the queue. hpcx reads no file of a task that has not started (PENDING tasks have
  written nothing), so this phase measures the task table without the live read.
- live: the held array cancelled (``scancel ID``: every task CANCELLED, still listed by squeue for MinJobAge).
  Each task is then a started one and its ``live`` fields come from the tails of its two files, which is the
  work the metric is about; rows for this phase are checked to carry live fields for every task. A run that
  is finished asks sacct once per status for its accounting record (hpcx.runs.provenance), and an array
  cancelled while pending is never recorded as finished, so this phase's status also pays one sacct call:
  ``sacct_accounting_ms`` times it alone.

metric status_live_vs_squeue = median wall time of the status in the live phase / median wall time of the
squeue query, target <= 2.0. files_opened_per_task = opens (``strace -f -e trace=openat,open``, attempts,
failed ones included) of paths under the sweep's run directory during one status in the live phase, divided by
the number of tasks, target <= 2; the total and the most opens of any one task's files are extra rows.

The array is always cancelled (scancel by id, then by the sweep's unique job name) and the temporary directory
removed, also on errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

NAME = "status_live_vs_squeue"
N_TASKS = 1000
N_RECORDS = 10_000
SITE = c.REPO / "examples" / "sites" / "testbed.yaml"
PARTITION = "debug"
SLURM_TOOLS = ("sbatch", "squeue", "scancel", "scontrol", "sacct")
STEP_S = 0.5  # seconds between two logged steps of a task
TOTAL_STEPS = 20_000  # the length each task declares (log(total_steps=...)): half done
_OPEN = re.compile(r'\bopen(?:at)?\((?:AT_FDCWD, |\d+, )?"([^"]*)"')
_TASK_DIR = re.compile(r"/task-(\d+)/")


def _slurm(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _config() -> dict[str, str]:
    conf = _slurm(["scontrol", "show", "config"])
    if conf.returncode != 0:
        raise c.Skip(f"no Slurm controller answers: {conf.stderr.strip()[:200]}")
    pairs = (line.partition("=") for line in conf.stdout.splitlines())
    return {k.strip(): v.strip() for k, _, v in pairs}


def _preflight() -> int:
    """Skip unless the cluster is up and takes a 1,000-task array; returns MinJobAge in seconds."""
    missing = [t for t in (*SLURM_TOOLS, "strace") if shutil.which(t) is None]
    if missing:
        raise c.Skip(f"tools not found: {', '.join(missing)}")
    if not SITE.is_file():
        raise c.Skip(f"site file {SITE} is missing")
    conf = _config()
    max_jobs = int(conf.get("MaxJobCount", "10000").split()[0])
    max_array = int(conf.get("MaxArraySize", "1001").split()[0])
    if max_array < N_TASKS:
        raise c.Skip(f"MaxArraySize is {max_array}: a {N_TASKS}-task sweep needs several arrays")
    queued = _slurm(["squeue", "-h", "-r", "--states=all", "-o", "%i"])
    in_queue = len(queued.stdout.split()) if queued.returncode == 0 else 0
    if in_queue + N_TASKS > max_jobs * 0.9:
        raise c.Skip(f"MaxJobCount is {max_jobs} and {in_queue} jobs are queued: no room for {N_TASKS} more")
    return int(conf.get("MinJobAge", "300").split()[0])


# ---------------------------------------------------------------- set-up: the sweep and its files


def _write_spec(workdir: Path, job_name: str) -> Path:
    """A held 1,000-task sweep whose tasks would run ``true`` (they never do)."""
    values = ", ".join(str(i) for i in range(N_TASKS))
    spec = workdir / "sweep.yaml"
    spec.write_text(
        f"name: {job_name}\n"
        "kind: serial\n"
        f'resources: {{time: "00:01:00", partition: {PARTITION}, hold: true}}\n'
        'command: ["true", "{x}"]\n'
        f"parameters:\n  grid: {{x: [{values}]}}\n"
    )
    return spec


def _submit(spec: Path, env: dict[str, str], ids: list[str]) -> dict[str, Any]:
    """``hpcx --json sweep SPEC``; the array ids go into ``ids`` as soon as they are known."""
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "--json", "sweep", str(spec)],
        env=env,
        cwd=spec.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hpcx sweep exited {proc.returncode}: {proc.stderr[-2000:]}")
    doc: dict[str, Any] = json.loads(proc.stdout)
    ids.extend(str(i) for i in doc["job_ids"])
    if doc["tasks"] != N_TASKS or doc["arrays"] != 1:
        raise RuntimeError(f"hpcx sweep made {doc['tasks']} tasks in {doc['arrays']} arrays")
    return doc


def _record(task: int, step: int, t0: float) -> dict[str, Any]:
    """The record ``hpcx.runtime.log(step, total_steps=TOTAL_STEPS, loss=..., lr=...)`` makes, first attempt."""
    loss = 1.0 / (1.0 + 0.001 * step) + 0.0001 * task
    metric = {"loss": loss, "lr": 0.001}
    head = {"type": "metric", "t": t0 + step * STEP_S, "rank": 0, "attempt": 0, "step": step}
    return {**head, **metric, "total_steps": TOTAL_STEPS}


def _line(task: int, step: int, t0: float, version: int) -> str:
    """:func:`_record` as RecordWriter writes it (compact JSON, the format version first), made several times
    faster than json.dumps: 10 million records are written."""
    r = _record(task, step, t0)
    return (
        f'{{"v":{version},"type":"metric","t":{r["t"]!r},"rank":0,"attempt":0,"step":{step},'
        f'"loss":{r["loss"]!r},"lr":{r["lr"]!r},"total_steps":{TOTAL_STEPS}}}\n'
    )


def _check_line_format(scratch: Path, t0: float) -> None:
    """The fast lines must be byte for byte what hpcx.rundir.records.RecordWriter writes."""
    from hpcx.rundir.records import FORMAT_VERSION, RecordWriter

    samples = [(0, 0), (7, 1), (N_TASKS - 1, N_RECORDS - 1)]
    path = scratch / "format-check.jsonl"
    writer = RecordWriter(path)
    for task, step in samples:
        writer.write(_record(task, step, t0))
    writer.close()
    ours = "".join(_line(task, step, t0, FORMAT_VERSION) for task, step in samples)
    if path.read_text() != ours:
        raise RuntimeError(f"record format drifted: hpcx writes {path.read_text()!r}, the set-up {ours!r}")
    path.unlink()


def _write_task_files(run_dir: Path, now: float) -> int:
    """Every task's rank-0 metrics (N_RECORDS records, the last one 10 s ago) and heartbeat; returns the bytes
    of one metrics file."""
    from hpcx.rundir.layout import heartbeat_file, metrics_dir, rank_file
    from hpcx.rundir.records import FORMAT_VERSION
    from hpcx.runtime.metrics import HEARTBEAT_EVERY_S, Heartbeat

    t0 = now - 10.0 - (N_RECORDS - 1) * STEP_S
    _check_line_format(run_dir.parent, t0)
    size = 0
    for task in range(N_TASKS):
        directory = metrics_dir(run_dir, task)
        directory.mkdir(parents=True, exist_ok=True)
        body = "".join(_line(task, step, t0, FORMAT_VERSION) for step in range(N_RECORDS))
        rank_file(directory, 0).write_text(body)
        Heartbeat(heartbeat_file(directory, 0), HEARTBEAT_EVERY_S, 0, 0).beat()
        size = len(body)
    return size


# ---------------------------------------------------------------- checks, timing, opens


def _status_rows(env: dict[str, str], run_id: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "--json", "status", run_id, "--tasks"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hpcx status exited {proc.returncode}: {proc.stderr[-2000:]}")
    rows: list[dict[str, Any]] = json.loads(proc.stdout)["runs"]
    return rows


def _check_rows(rows: list[dict[str, Any]], state: str, live: bool) -> str | None:
    """What is wrong with status's rows (one per task, all in ``state``, live fields iff ``live``), or None."""
    if sorted(r["task"] for r in rows if r.get("task") is not None) != list(range(N_TASKS)):
        return f"status listed {len(rows)} rows, not one per task of {N_TASKS}"
    states = Counter(r["state"] for r in rows)
    if set(states) != {state}:
        return f"states {dict(states)}, expected {state}"
    with_live = [r for r in rows if r.get("live")]
    stale = [r for r in with_live if r["live"]["step"] != N_RECORDS - 1]
    if len(with_live) != (N_TASKS if live else 0) or stale:
        return f"{len(with_live)} of {len(rows)} rows carry live fields ({len(stale)} not at the last step)"
    return None


def _await_rows(env: dict[str, str], run_id: str, state: str, live: bool, wait_s: float = 60) -> None:
    """Poll status until every task is in ``state`` (a cancel takes a tick of slurmctld to show)."""
    deadline = time.monotonic() + wait_s
    while True:
        problem = _check_rows(_status_rows(env, run_id), state, live)
        if problem is None:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"hpcx status: {problem}")
        time.sleep(2)


def _cases(env: dict[str, str], run_id: str, sacct_ids: list[str] | None) -> dict[str, Any]:
    from hpcx.runs.provenance import ACCOUNTING_FIELDS
    from hpcx.schedulers.slurm import SQUEUE_FORMAT

    py = sys.executable
    cases = {
        "hpcx": c.subprocess_case([py, "-m", "hpcx", "status", run_id, "--tasks"], env=env),
        "squeue": c.subprocess_case(
            ["squeue", "-h", "-r", "--me", "--states=all", "-O", SQUEUE_FORMAT], env=env
        ),
    }
    if sacct_ids is not None:  # the query a finished run's accounting record makes (hpcx.schedulers.slurm)
        argv = ["sacct", "-P", "-n", "-j", ",".join(sacct_ids), "-o", ",".join(ACCOUNTING_FIELDS)]
        cases["sacct"] = c.subprocess_case(argv, env=env)
        cases["hpcx_startup"] = c.subprocess_case([py, "-m", "hpcx", "--version"], env=env)
        cases["squeue_json"] = c.subprocess_case(["squeue", "--json"], env=env)
    return cases


def _in_process(env: dict[str, str], run_id: str, run_dir: Path, repeats: int) -> dict[str, list[float]]:
    """The live phase in this process (imports done): the whole status, and the tail reads alone."""
    from hpcx.cli import main as hpcx_main
    from hpcx.runs.live import tasks_live

    def status() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            code = hpcx_main(["status", run_id, "--tasks"])
        if code != 0:
            raise RuntimeError(f"hpcx status exited {code} in-process")

    states = dict.fromkeys(range(N_TASKS), "CANCELLED")
    saved = {k: os.environ.get(k) for k in ("HPCX_RUNS", "HPCX_SITE")}
    os.environ.update({k: env[k] for k in saved})
    try:
        return c.alternate({"status": status, "tails": lambda: tasks_live(run_dir, states)}, repeats)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _opens(env: dict[str, str], run_id: str, run_dir: Path, trace: Path) -> dict[str, int]:
    """One status under strace: opens of paths under ``run_dir`` (attempts) in all, and of the busiest task."""
    argv = ["strace", "-f", "-qq", "-e", "trace=openat,open", "-o", str(trace)]
    argv += [sys.executable, "-m", "hpcx", "status", run_id, "--tasks"]
    c.subprocess_case(argv, env=env)()
    prefix = str(run_dir)
    paths = [m.group(1) for m in map(_OPEN.search, trace.read_text().splitlines()) if m]
    ours = [p for p in paths if p == prefix or p.startswith(prefix + "/")]
    per_task = Counter(m.group(1) for m in map(_TASK_DIR.search, ours) if m)
    trace.unlink()
    return {"total": len(ours), "max_task": max(per_task.values(), default=0), "tasks": len(per_task)}


def _listed_by_squeue(job_id: str) -> int:
    """How many of the array's tasks squeue still lists (they leave it MinJobAge after they end)."""
    proc = _slurm(["squeue", "-h", "-r", "--states=all", "-j", job_id, "-o", "%i"])
    return len(proc.stdout.split()) if proc.returncode == 0 else 0


# ---------------------------------------------------------------- the run


def _cancel(ids: list[str], job_name: str) -> None:
    if ids:
        _slurm(["scancel", *ids])
    # An array submitted but not yet recorded (an interrupt inside hpcx sweep) carries our unique name.
    user = os.environ.get("USER") or str(os.getuid())
    _slurm(["scancel", "--name", job_name, "--user", user])


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that cancels the jobs


def _set_up(
    tmp: Path, env: dict[str, str], job_name: str, ids: list[str]
) -> tuple[str, Path, dict[str, Any]]:
    """The held sweep (its array id into ``ids``) and every task's files: run id, run directory, set-up costs."""
    workdir = tmp / "work"
    workdir.mkdir()
    t0 = time.perf_counter()
    doc = _submit(_write_spec(workdir, job_name), env, ids)
    out: dict[str, Any] = {"submit_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    out["file_bytes"] = _write_task_files(Path(doc["run_dir"]), time.time())
    out["files_s"] = time.perf_counter() - t0
    return doc["run_id"], Path(doc["run_dir"]), out


def _phases(tmp: Path, job_name: str, ids: list[str], repeats: int, min_job_age_s: int) -> dict[str, Any]:
    """Set up the sweep, then time and trace both phases (see the module's docstring)."""
    env = c.python_env({"HPCX_RUNS": str(tmp / "runs"), "HPCX_SITE": str(SITE)})
    run_id, run_dir, out = _set_up(tmp, env, job_name, ids)
    _await_rows(env, run_id, "PENDING", live=False)
    out["pending"] = c.alternate(_cases(env, run_id, None), repeats, warmup=1)
    out["pending_opens"] = _opens(env, run_id, run_dir, tmp / "pending.strace")

    _slurm(["scancel", *ids])
    cancelled_at = time.monotonic()
    _await_rows(env, run_id, "CANCELLED", live=True)
    out["live"] = c.alternate(_cases(env, run_id, ids), repeats, warmup=1)
    out["live_opens"] = _opens(env, run_id, run_dir, tmp / "live.strace")
    out["warm"] = _in_process(env, run_id, run_dir, repeats)
    out["live_window_s"] = time.monotonic() - cancelled_at
    listed = _listed_by_squeue(ids[0])
    if listed < N_TASKS or out["live_window_s"] > min_job_age_s:
        raise RuntimeError(
            f"squeue lists {listed} of {N_TASKS} tasks {out['live_window_s']:.0f} s after the cancel "
            f"(MinJobAge {min_job_age_s} s): the live phase's status may have asked sacct for them; use --quick"
        )
    return out


def run(quick: bool) -> list[dict[str, Any]]:
    min_job_age_s = _preflight()
    repeats = 5 if quick else 20
    job_name = f"hpcx-bench-live-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="hpcx-bench-status-live-"))
    ids: list[str] = []
    old_handler = signal.signal(signal.SIGTERM, _sigterm)
    try:
        out = _phases(tmp, job_name, ids, repeats, min_job_age_s)
    finally:
        _cancel(ids, job_name)
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGTERM, old_handler)
    return _rows(out)


def _ratio(samples: dict[str, list[float]]) -> float:
    return round(c.stats(samples["hpcx"])["median"] / c.stats(samples["squeue"])["median"], 3)


def _rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [*_live_rows(out), *_breakdown_rows(out), *_pending_rows(out), *_setup_rows(out)]


QUERY = "`squeue -h -r --me --states=all -O FORMAT` (hpcx's query)"


def _live_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    live, opens = out["live"], out["live_opens"]
    status = f"fresh `python -m hpcx status RUN --tasks` ({N_TASKS} tasks, {N_RECORDS} records each"
    return [
        c.result(NAME, _ratio(live), "ratio", f"{status}, tasks started: live fields read) / {QUERY}", 2.0),
        c.result(
            "files_opened_per_task",
            round(opens["total"] / N_TASKS, 3),
            "opens",
            "strace: opens under the run directory during one status (live phase) / tasks",
            2.0,
        ),
        c.result(
            "files_opened_run_dir", opens["total"], "opens", "all opens under the run directory, one status"
        ),
        c.result(
            "files_opened_max_task",
            opens["max_task"],
            "opens",
            f"most opens of one task's files ({opens['tasks']} tasks)",
        ),
    ]


def _breakdown_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Where the live phase's time goes: the two processes compared, the sacct call, start-up, in-process."""
    live, warm = out["live"], out["warm"]
    status = f"fresh `python -m hpcx status RUN --tasks` ({N_TASKS} tasks, {N_RECORDS} records each"
    return [
        c.timing_row("status_live_ms", live["hpcx"], f"{status}), tasks CANCELLED"),
        c.timing_row("squeue_live_ms", live["squeue"], f"{QUERY}, the same jobs CANCELLED"),
        c.timing_row(
            "squeue_json_ms", live["squeue_json"], "`squeue --json` (all users; an array is one record)"
        ),
        c.timing_row(
            "sacct_accounting_ms",
            live["sacct"],
            "the sacct query status adds for a finished run's accounting",
        ),
        c.timing_row("hpcx_startup_ms", live["hpcx_startup"], "fresh `python -m hpcx --version`"),
        c.timing_row(
            "status_live_warm_ms",
            warm["status"],
            "hpcx.cli.main(status RUN --tasks) in-process, imports done",
        ),
        c.timing_row(
            "live_read_ms", warm["tails"], f"hpcx.runs.live.tasks_live over {N_TASKS} tasks in-process"
        ),
    ]


def _pending_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    pending, opens = out["pending"], out["pending_opens"]
    return [
        c.result(
            "status_pending_vs_squeue",
            _ratio(pending),
            "ratio",
            f"the same, the array held (PENDING: status reads no task file) / {QUERY}",
        ),
        c.timing_row(
            "status_pending_ms", pending["hpcx"], "fresh `python -m hpcx status RUN --tasks`, tasks PENDING"
        ),
        c.timing_row("squeue_pending_ms", pending["squeue"], f"{QUERY}, the same jobs PENDING"),
        c.result(
            "files_opened_run_dir_pending", opens["total"], "opens", "opens under the run directory, PENDING"
        ),
    ]


def _setup_rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c.result(
            "metrics_file_kib", round(out["file_bytes"] / 1024, 1), "KiB", "one task's rank-0 metrics file"
        ),
        c.result("setup_submit_s", round(out["submit_s"], 2), "s", f"`hpcx sweep` of {N_TASKS} held tasks"),
        c.result("setup_files_s", round(out["files_s"], 2), "s", f"{N_TASKS} metrics files + heartbeats"),
        c.result(
            "live_window_s", round(out["live_window_s"], 1), "s", "cancel to last status timed (< MinJobAge)"
        ),
    ]


if __name__ == "__main__":
    sys.exit(c.main(NAME, run, __doc__))
