"""Merge per-rank profile records, the comm records and Slurm's accounting into report.json (hpcx.report/3).

Pure over the records; the I/O is at the two ends."""

from __future__ import annotations

import bisect
import json
import statistics
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hpcx.errors import UsageError
from hpcx.fsutil import atomic_write, read_json
from hpcx.reports.accounting import summarize_accounting
from hpcx.reports.advice import advise
from hpcx.reports.comm import summarize_comm
from hpcx.reports.once import source_status
from hpcx.reports.sharing import is_jobs_own, mark_shared, sharing_of
from hpcx.reports.timelines import carbon, node_details, profiler_cost, regions
from hpcx.rundir.records import (
    READABLE_VERSIONS,
    last_attempt_steps,
    rank_files,
    read_io_totals,
    read_nodes,
    read_records,
)
from hpcx.runs import Run, id_ranges, job_ids, task_job_id
from hpcx.runs.logs import stderr_file
from hpcx.runs.provenance import ACCOUNTING
from hpcx.schedulers.base import ACTIVE_STATES

REPORT_SCHEMA = "hpcx.report/3"
# Timelines in the report are for reading, not analysis (the records keep every sample). A node's: an hour at
# 1 s becomes one point every 6 s. A rank's: at most 300 points, as many as the page's rank x time heatmap has
# columns, which keeps a 256-rank report a few MB and its build linear in ranks (decoding the samples kept is
# most of its time).
MAX_TIMELINE_POINTS = 600
RANK_TIMELINE_POINTS = 300
_START, _SAMPLE, _END = b'"type":"start"', b'"type":"sample"', b'"type":"end"'  # as RecordWriter writes them


def summarize_rank(
    records: Iterable[dict[str, Any]], max_points: int = MAX_TIMELINE_POINTS
) -> dict[str, Any]:
    """One rank's numbers from its records: the last attempt's start and end, samples in between; the
    timeline keeps every n-th sample, at most ``max_points``."""
    start: dict[str, Any] = {}
    end: dict[str, Any] | None = None
    samples: list[dict[str, Any]] = []
    for rec in records:
        if rec["type"] == "start":  # a requeued job appends a new attempt: keep only the last one
            start, end, samples = rec, None, []
        elif rec["type"] == "sample":
            samples.append(rec)
        elif rec["type"] == "end":
            end = rec
    last_t = (end or (samples[-1] if samples else start)).get("t", start.get("t", 0.0))
    # hwm_mb (format 2) is the kernel's peak, so a spike between two samples still counts after a kill -9.
    peak = max(
        [max(s["rss_mb"], s.get("hwm_mb", 0.0)) for s in samples] + [end["peak_rss_mb"] if end else 0.0]
    )
    cpu = end["cpu_s"] if end else (samples[-1]["cpu_s"] if samples else 0.0)
    step = -(-len(samples) // max_points) or 1
    return {
        "rank": start.get("rank"),
        "step": start.get("step"),
        "node": start.get("node"),
        "host": start.get("host"),
        "attempt": start.get("attempt", 0),
        "start_t": start.get("t"),
        "wall_s": end["wall_s"] if end else last_t - start.get("t", last_t),
        "cpu_s": cpu,
        "peak_rss_mb": peak,
        "exit_code": end["exit_code"] if end else None,
        "finished": end is not None,
        "samples": len(samples),
        "cpus_allowed": start.get("cpus_allowed"),
        "sampler_cpu_s": end.get("sampler_cpu_s") if end else None,
        "sampler_rss_mb": end.get("sampler_rss_mb") if end else None,
        "timeline": [
            [round(s["t"] - start.get("t", s["t"]), 3), round(s["rss_mb"], 2), round(s["cpu_s"], 3)]
            for s in samples[::step]
        ],
    }


def summarize_rank_file(path: Path, max_points: int = MAX_TIMELINE_POINTS) -> dict[str, Any]:
    """:func:`summarize_rank` of one rank file, parsing only what it needs: a finished rank's end record holds
    its totals and peak, so of its samples only the timeline's are decoded (parsing every line of a 256-rank
    hour is most of the report's time). Lines are told apart by how RecordWriter writes ``type``; a file that
    is not written that way, or a rank without an end record (running, killed), is parsed whole."""
    data = path.read_bytes()
    lines = data.splitlines()  # bytes: most lines are only searched, never decoded
    at = data.rfind(_START)  # the last attempt's start: its line is the number of line ends before it
    first = data.count(b"\n", 0, at) if at >= 0 else None
    last = next((i for i in range(len(lines) - 1, max(len(lines) - 4, -1), -1) if _END in lines[i]), None)
    if first is None or last is None or last < first or not list(_decode(lines[last : last + 1])):
        return summarize_rank(read_records(path), max_points)
    samples = _sample_lines(data, lines, first, last)
    step = -(-len(samples) // max_points) or 1
    picked = [lines[first], *samples[::step], lines[last]]
    summary = summarize_rank(_decode(picked), max_points)
    summary["samples"] = len(samples)
    return summary


def summarize_ranks(profile: Path, max_points: int = MAX_TIMELINE_POINTS) -> list[dict[str, Any]]:
    """Every rank of a profile directory in rank order, each :func:`summarize_rank_file` of its file, or of its
    job steps' files combined by :func:`combine_steps`."""
    ranks = []
    for paths in rank_files(profile).values():
        parts = [r for r in (summarize_rank_file(p, max_points) for p in paths) if r["rank"] is not None]
        if parts:
            ranks.append(combine_steps(parts, max_points))
    return sorted(ranks, key=lambda r: r["rank"])


def combine_steps(parts: list[dict[str, Any]], max_points: int = MAX_TIMELINE_POINTS) -> dict[str, Any]:
    """One rank run by several job steps (one summary each, :func:`summarize_rank`), the way Slurm's job line
    sums its steps: the job's last attempt only; wall time the union of the steps' lifetimes (steps one after
    another add up, concurrent ones count once); CPU time summed; the timeline the steps' sum at each moment
    (a step contributes its RSS while it runs, and its CPU time from its start on), so the peak is the highest
    of any step's own and the sum of those running together at a sample; ``exit_code`` the first failing
    step's, else 0 once every step is over (ended, or without an end record but followed by a later step: it
    was killed and the script went on); ``steps`` each step's own figures. One part comes back as is."""
    kept = last_attempt_steps(parts, start=lambda r: {"t": r["start_t"] or 0.0, "attempt": r["attempt"]})
    if len(kept) <= 1:
        return (kept or parts)[0]
    t0 = kept[0]["start_t"] or 0.0
    lives = [((r["start_t"] or t0), (r["start_t"] or t0) + r["wall_s"]) for r in kept]
    wall = 0.0
    reach = t0
    for a, b in lives:  # sorted by start
        wall += max(0.0, b - max(a, reach))
        reach = max(reach, b)
    offsets = [a - t0 for a, _ in lives]  # each step's start on the rank's clock
    steps_tl = [[(p[0] + d, p[1], p[2]) for p in r["timeline"]] for r, d in zip(kept, offsets)]
    ts = [[p[0] for p in tl] for tl in steps_tl]
    times = sorted({t for step_ts in ts for t in step_ts})
    times = times[:: -(-len(times) // max_points) or 1]
    timeline = []
    # A step without an end record is over too once a later step started after its last sample (killed, as
    # by kill -9 or the OOM killer, and the script went on); only a step still running keeps its last RSS.
    over = [r["finished"] or any(d > (step_ts[-1] if step_ts else 0.0) for d in offsets[i + 1 :])
            for i, (r, step_ts) in enumerate(zip(kept, ts))]  # fmt: skip
    for t in times:
        rss = cpu = 0.0
        for tl, step_ts, r, done in zip(steps_tl, ts, kept, over):
            if not tl or t < step_ts[0]:
                continue
            if t > step_ts[-1]:  # after its last point: ended (its CPU stays counted) or not sampled since
                cpu += r["cpu_s"] if r["finished"] else tl[-1][2]
                rss += 0.0 if done else tl[-1][1]
                continue
            at = _interp(tl, step_ts, t)
            rss, cpu = rss + at[0], cpu + at[1]
        timeline.append([round(t, 3), round(rss, 2), round(cpu, 3)])
    failed = [r["exit_code"] for r in kept if r["exit_code"]]
    finished = all(over)
    sampler = [r["sampler_cpu_s"] for r in kept]
    return {
        **kept[0],
        "step": None,
        "wall_s": wall,
        "cpu_s": sum(r["cpu_s"] for r in kept),
        "peak_rss_mb": max([r["peak_rss_mb"] for r in kept] + [p[1] for p in timeline]),
        "exit_code": failed[0] if failed else (0 if finished else None),
        "finished": finished,
        "samples": sum(r["samples"] for r in kept),
        "cpus_allowed": max((r["cpus_allowed"] for r in kept if r["cpus_allowed"] is not None), default=None),
        "sampler_cpu_s": None if None in sampler else sum(sampler),
        "sampler_rss_mb": max(
            (r["sampler_rss_mb"] for r in kept if r["sampler_rss_mb"] is not None), default=None
        ),
        "timeline": timeline,
        "steps": [{k: r[k] for k in STEP_FIELDS} for r in kept],
    }


def end_t(rank: dict[str, Any]) -> float:
    """When a rank's last step ended (or was last sampled): its wall time counts the gaps between steps out."""
    steps = rank.get("steps") or [rank]
    return max(s["start_t"] + s["wall_s"] for s in steps if s["start_t"] is not None)


STEP_FIELDS = ("step", "node", "start_t", "wall_s", "cpu_s", "peak_rss_mb", "exit_code", "finished")


def _interp(tl: list[tuple[float, float, float]], ts: list[float], t: float) -> tuple[float, float]:
    """RSS and CPU time of a timeline (``ts`` its times) at ``t`` within its span, linear between points."""
    i = min(bisect.bisect_left(ts, t), len(tl) - 1)
    q = tl[i]
    if i == 0 or q[0] == t:
        return q[1], q[2]
    p = tl[i - 1]
    f = (t - p[0]) / (q[0] - p[0])
    return p[1] + (q[1] - p[1]) * f, p[2] + (q[2] - p[2]) * f


def _sample_lines(data: bytes, lines: list[bytes], first: int, last: int) -> list[bytes]:
    """The sample lines between the start line ``first`` and the end line ``last``. RecordWriter writes the
    few other records (sources) right after the start, so when the samples counted in the bytes fill the
    rest, they are one slice; otherwise each line is searched."""
    between = last - first - 1
    count = b"\n".join(lines[first + 1 : last]).count(_SAMPLE) if between > 0 else 0
    head = between - count
    if count and head >= 0 and _SAMPLE in lines[first + 1 + head] and _SAMPLE in lines[last - 1]:
        if not any(_SAMPLE in lines[first + 1 + i] for i in range(head)):
            return lines[first + 1 + head : last]
    return [line for line in lines[first:last] if _SAMPLE in line]


def _decode(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    """The records of whole lines; a torn one is skipped. One json.loads for them all when they parse (the
    usual case: a third of the time of one call per line)."""
    try:
        records = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:  # JSONDecodeError, or UnicodeDecodeError from a torn multi-byte character
        records = None
    if records is not None:
        yield from (r for r in records if isinstance(r, dict) and r.get("v") in READABLE_VERSIONS)
        return
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn line
        if isinstance(record, dict) and record.get("v") in READABLE_VERSIONS:
            yield record


def build_report(
    run: Run,
    accounting: dict[str, Any] | None = None,
    *,
    task: int | None = None,
    site_energy: dict[str, Any] | None = None,
    site_name: str | None = None,
    max_points: int = MAX_TIMELINE_POINTS,
    shared: dict[str, list[str]] | None = None,
    node_jobs: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The report document of ``run`` from its profile records, manifest and Slurm accounting (given, else
    accounting.json when the run has one). Either source alone makes a report; with neither (a job not yet
    started, or not a Slurm job and never profiled) it raises UsageError saying so.

    An array job or sweep keeps each task's records in ``profile/task-NNNNN/``: the run's report lists the
    tasks (``tasks``) beside Slurm's totals, and ``task=N`` reports one task rank by rank. ``site_energy`` is
    the site's ``energy`` block (carbon intensity, PUE). ``shared``: per node, the other jobs that ran on it
    meanwhile (:func:`hpcx.reports.sharing.shared_jobs`; None when unknown): RAPL's whole-package energy on
    such a node is labelled as the node's and left out of the job's energy and carbon. ``node_jobs``: every
    job on the run's nodes in its window (:func:`hpcx.reports.sharing.query_node_jobs`), from which
    ``shared`` is worked out for the job, the task, or each array task."""
    if accounting is None and (run.dir / ACCOUNTING).exists():
        accounting = read_json(run.dir / ACCOUNTING)
    tasks_dir = run.dir / "profile"
    profile = tasks_dir if task is None else tasks_dir / f"task-{task:05d}"
    if task is not None and not profile.is_dir():
        have = sorted(int(p.name[5:]) for p in tasks_dir.glob("task-[0-9]*") if p.name[5:].isdigit())
        raise UsageError(
            f"run {run.id} has no records of task {task} (no {profile})",
            hint=f"its tasks with records: {id_ranges(have)}"
            if have
            else "it is not an array job or sweep, or no task has started; leave out --task",
        )
    if task is not None and accounting is not None:
        accounting = task_accounting(run, accounting, task)
    acct = summarize_accounting(accounting)
    ranks = summarize_ranks(profile, min(max_points, RANK_TIMELINE_POINTS))
    task_rows = summarize_tasks(run, accounting, node_jobs) if task is None else None
    if shared is None and node_jobs is not None:
        shared = sharing_of(node_jobs, accounting, _own_ids(run, task))
    if not ranks and acct is None and not task_rows:
        raise UsageError(
            f"run {run.id} has no profile records in {profile} and no Slurm accounting record",
            hint="the job has not started yet; submit with --profile for hpcx's own records",
        )
    manifest = run.manifest
    res = {k: v["value"] for k, v in manifest.get("resources", {}).items()}
    merged = read_nodes(profile)  # every node file parsed once, for energy, timelines and comm energy
    nodes = summarize_nodes(profile, merged)
    shared_j = mark_shared(nodes, shared)
    details = node_details(merged, max_points)
    # Each rank's node and last attempt: a requeued job's earlier processes wrote their own comm, regions and
    # I/O files, which must not add to the last attempt's times.
    lives = {r["rank"]: (r["node"], r["start_t"], end_t(r)) for r in ranks
             if r["node"] and r["start_t"] is not None}  # fmt: skip
    since = {rank: life[1] for rank, life in lives.items()}
    comm = summarize_comm(profile, {r["rank"]: r["wall_s"] for r in ranks}, lives, merged)
    region_doc = regions(profile, [r["rank"] for r in ranks], since)
    summary = summarize(ranks, acct, res, nodes, comm)
    summary["energy_shared_j"] = shared_j or None
    if task_rows and not ranks:
        summary.update(array_summary(task_rows, acct))
        summary["energy_shared_j"] = sum(t["energy_shared_j"] or 0.0 for t in task_rows) or None
        summary["longest_task_s"] = (acct or {}).get("elapsed_max_s") or max(
            (t["wall_s"] for t in task_rows if t["wall_s"] is not None), default=None)  # fmt: skip
    summary.update(gpu_summary(details, region_doc))
    profiler = profiler_cost(ranks, profile, sum(c["calls"] for c in comm["calls"]) if comm else None)
    summary["profiler_share"] = profiler["sampler_share"]
    summary.update(slowest_rank(ranks, comm))
    carbon_doc = carbon(summary["energy_j"], site_energy or {}, site_name, shared_j)
    summary["carbon_g"] = carbon_doc.get("g_co2e")
    report = {
        "schema": REPORT_SCHEMA,
        "run_id": run.id,
        "job_id": run.job.get("job_id"),
        "task": task,
        "kind": manifest.get("kind", {}).get("value"),
        "command": manifest.get("command"),
        "resources": res,
        "summary": summary,
        "accounting": acct,
        "ranks": ranks,
        "io": summarize_io(profile, [r["rank"] for r in ranks], since),
        "nodes": nodes,
        "source_status": source_status(nodes),
        "comm": comm,
        "node_timelines": list(details.values()),
        "regions": region_doc,
        "carbon": carbon_doc,
        "profiler": profiler,
        "tasks": task_rows,
        "provenance": provenance(manifest),
        "advice": advise(summary, comm, details, region_doc),
    }
    summary["failure"] = failure(run, report)
    report["line"] = grep_line(report)
    return report


STDERR_TAIL_LINES = 5
STDERR_LINE_CHARS = 240
# A job that has not ended (Slurm's ACTIVE_STATES, or UNFINISHED from hpcx's records): no failure to explain yet.
_NOT_ENDED = ACTIVE_STATES | {"UNFINISHED"}


def failure(run: Run, report: dict[str, Any]) -> dict[str, Any] | None:
    """Why a job (or an array's first failed task) ended badly, for the line after its state: Slurm's reason
    (sacct's Reason, else what its state and exit code say) and the last lines of the stderr log of the job,
    or of the task, with the failing rank when hpcx's records name one. None when it completed or runs."""
    s, acct = report["summary"], report.get("accounting") or {}
    if s["state"] == "COMPLETED" or s["state"] in _NOT_ENDED:
        return None
    task = report.get("task")
    failed = [t for t in report.get("tasks") or [] if t["state"] not in ("COMPLETED", *_NOT_ENDED)]
    state, code, signal = s["state"], s["exit_code"], acct.get("signal") or 0
    if task is None and failed:
        task, state, code, signal = failed[0]["task"], failed[0]["state"], failed[0]["exit_code"], 0
    log = stderr_file(run, task)  # the template's, the local backend's or an own script's -e/-o
    tail: list[str] = []
    if log is not None:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        tail = [ln[:STDERR_LINE_CHARS] for ln in lines[-STDERR_TAIL_LINES:]]
    reason = acct.get("reason")
    if reason is None:
        how = f", killed by signal {signal}" if signal else f", exit code {code}" if code is not None else ""
        reason = f"none given ({state}{how})"
    ranks = s["failed_ranks"] if task is None or task == report.get("task") else []
    return {
        "task": task if report.get("task") is None else None,
        "state": state,
        "rank": ranks[0] if ranks else None,
        "reason": reason,
        "log": None if log is None else _shown(log, run.dir),
        "stderr_tail": tail,
    }


def _shown(path: Path, run_dir: Path) -> str:
    """A log's path relative to the run directory when it is inside it, else as it is."""
    try:
        return path.resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def task_accounting(run: Run, accounting: dict[str, Any], task: int) -> dict[str, Any] | None:
    """accounting.json cut down to one array task's rows (the task and its steps)."""
    wanted = task_job_id(run, task)
    rows = [r for r in accounting.get("rows", []) if r["JobID"].split(".")[0] == wanted]
    return {**accounting, "rows": rows} if rows else None


def _own_ids(run: Run, task: int | None) -> list[str]:
    """The Slurm ids that are the run's own: its jobs (an array's tasks with them), or one task's."""
    return job_ids(run.job) if task is None else [task_job_id(run, task)]


def summarize_tasks(
    run: Run, accounting: dict[str, Any] | None, node_jobs: list[dict[str, str]] | None = None
) -> list[dict[str, Any]] | None:
    """One row per array task with records (``profile/task-NNNNN/``): Slurm's state and exit code for it
    when accounting has them, and its ranks' wall and CPU seconds, CPU efficiency and peak memory, with its
    measured energy (RAPL of a node other jobs or tasks shared, by ``node_jobs``, apart as
    ``energy_shared_j``). None for a run that is not an array (no task directories)."""
    dirs = sorted(p for p in (run.dir / "profile").glob("task-[0-9]*") if p.is_dir() and p.name[5:].isdigit())
    if not dirs:
        return None
    cpus = int(run.manifest.get("resources", {}).get("cpus_per_task", {}).get("value") or 1)
    params = _task_params(run)
    rows = []
    for path in dirs:
        task = int(path.name[5:])
        ranks = summarize_ranks(path, 1)
        task_acct = task_accounting(run, accounting, task) if accounting else None
        acct = summarize_accounting(task_acct)
        wall = max((r["wall_s"] for r in ranks), default=None)
        cpu = sum(r["cpu_s"] for r in ranks) if ranks else None
        nodes = summarize_nodes(path)
        shared_j = mark_shared(
            nodes, sharing_of(node_jobs, task_acct, _own_ids(run, task)) if node_jobs else None
        )
        energies = [e["energy_j"] for n in nodes for k, e in n["energy"].items() if is_jobs_own(k, e)]
        state, _ = _state(ranks, acct) if ranks or acct else ("PENDING", "profile")
        rows.append({
            "task": task,
            "state": state,
            "exit_code": acct["exit_code"] if acct else max(
                (r["exit_code"] for r in ranks if r["exit_code"] is not None), default=None),
            "ranks": len(ranks),
            "wall_s": wall,
            "cpu_s": cpu,
            "cpu_efficiency": cpu / (len(ranks) * cpus * wall) if cpu is not None and wall else None,
            "peak_rss_mb": max((r["peak_rss_mb"] for r in ranks), default=None),
            "energy_j": sum(energies) if energies else None,
            "energy_shared_j": shared_j or None,
            "attempt": max((r["attempt"] for r in ranks), default=None),
            "params": params.get(task, {}),
        })  # fmt: skip
    return rows


def _task_params(run: Run) -> dict[int, dict[str, Any]]:
    """Each sweep task's parameters (tasks.jsonl; the seed among them), empty for a plain array job."""
    table = run.dir / "tasks.jsonl"
    out: dict[int, dict[str, Any]] = {}
    if table.exists():
        for line in table.read_text().splitlines():
            try:
                row = json.loads(line)
                out[int(row["task"])] = {**row.get("params", {}),
                                         **({"seed": row["seed"]} if row.get("seed") is not None else {})}  # fmt: skip
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a torn last line
    return out


def slowest_rank(ranks: list[dict[str, Any]], comm: dict[str, Any] | None) -> dict[str, Any]:
    """The rank with the most time outside traced communication calls (ranks waiting for a slow one in a
    collective end together, so wall time alone hides it), its seconds and the median rank's."""
    if not ranks:
        return {"slowest_rank": None, "slowest_rank_busy_s": None, "median_rank_busy_s": None}
    in_comm = {r["rank"]: r["seconds"] for r in (comm or {}).get("ranks", [])}
    busy = {r["rank"]: r["wall_s"] - in_comm.get(r["rank"], 0.0) for r in ranks}
    rank = max(busy, key=lambda k: busy[k])
    return {"slowest_rank": rank, "slowest_rank_busy_s": busy[rank],
            "median_rank_busy_s": statistics.median(busy.values())}  # fmt: skip


def array_summary(tasks: list[dict[str, Any]], acct: dict[str, Any] | None) -> dict[str, Any]:
    """What the tasks say of an array job as a whole: their energy summed (each task's own measured
    counters), the memory peak of the largest task, and without Slurm's record, the state and exit code from
    the tasks' own (any failed task fails the array; a task without an end record leaves it unfinished)."""
    energies = [t["energy_j"] for t in tasks if t["energy_j"] is not None]
    out: dict[str, Any] = {}
    if energies:
        out.update(energy_j=sum(energies), energy_kwh=sum(energies) / 3.6e6)
    peaks = [t for t in tasks if t["peak_rss_mb"] is not None]
    if peaks:  # the largest task's largest rank: tasks run apart, so their peaks never add up
        top = max(peaks, key=lambda t: t["peak_rss_mb"])
        out.update(mem_peak_mb=top["peak_rss_mb"], mem_peak_where=f"task {top['task']}",
                   mem_peak_source="profile (the largest task's largest rank)")  # fmt: skip
    if acct is None:
        states = {t["state"] for t in tasks}
        state = "FAILED" if "FAILED" in states else "UNFINISHED" if states - {"COMPLETED"} else "COMPLETED"
        codes = [t["exit_code"] for t in tasks if t["exit_code"] is not None]
        out.update(state=state, state_source="profile", finished=state != "UNFINISHED",
                   exit_code=max(codes, default=None))  # fmt: skip
    return out


def gpu_summary(
    details: dict[tuple[str, int], dict[str, Any]], region_doc: dict[str, Any] | None
) -> dict[str, Any]:
    """The GPUs at a glance: how many were sampled, their mean utilisation, the idlest one's idle share,
    NVML's peak memory used (whole device) and torch's allocator peak (the tensors the job held)."""
    # A node with several job steps has a file, and GPU statistics, per step: count each GPU once, by the
    # step that sampled it most.
    unique: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
    for (node, _step), d in details.items():
        for g in d["gpus"]:
            key = (node, g["index"])
            if key not in unique or g["samples"] > unique[key][1]["samples"]:
                unique[key] = (d["node"], g)
    gpus = list(unique.values())
    util = [g["util_mean_pct"] for _, g in gpus if g["util_mean_pct"] is not None]
    idle = [(g["idle_share"], f"{node} GPU {g['index']}") for node, g in gpus if g["idle_share"] is not None]
    mem = [g["mem_used_peak_mb"] for _, g in gpus if g["mem_used_peak_mb"] is not None]
    alloc = [c["allocated_peak_mb"] for c in (region_doc or {}).get("cuda_memory", [])]
    worst = max(idle, key=lambda x: x[0], default=(None, None))  # the first of equals, as the advice names
    return {
        "gpus": len(gpus),
        "gpu_util_mean_pct": sum(util) / len(util) if util else None,
        "gpu_idle_share_max": worst[0],
        "gpu_idle_where": worst[1],
        "gpu_mem_used_peak_mb": max(mem, default=None),
        "gpu_alloc_peak_mb": max(alloc, default=None),
    }


def provenance(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the report shows of where the run came from: the manifest's creation, host, user, git, site,
    template, Python, modules and Slurm version (the full record stays in manifest.json)."""
    git = manifest.get("git") or {}
    python = manifest.get("python") or {}
    site = manifest.get("site") or {}
    template = manifest.get("template") or {}
    return {
        "created": manifest.get("created"),
        "host": manifest.get("host"),
        "user": manifest.get("user"),
        "workdir": manifest.get("workdir"),
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "git_branch": git.get("branch"),
        "git_remote": git.get("remote_url"),
        "site": site.get("name"),
        "site_sha256": site.get("sha256"),
        "template": template.get("path"),
        "template_sha256": template.get("sha256"),
        "python": python.get("version") if isinstance(python, dict) else None,
        "hpcx": python.get("hpcx") if isinstance(python, dict) else None,
        "modules": list((manifest.get("modules") or {}).get("loaded") or []),
        "slurm": (manifest.get("slurm") or {}).get("version"),
        "variables": manifest.get("variables") or {},
    }


def summarize(
    ranks: list[dict[str, Any]],
    acct: dict[str, Any] | None,
    res: dict[str, Any],
    nodes: list[dict[str, Any]],
    comm: dict[str, Any] | None,
) -> dict[str, Any]:
    """The summary: hpcx's numbers from the ranks (None without records) beside Slurm's, and the best of
    the two for state, elapsed time and memory, each with where it came from."""
    cpus_per_task = int(res.get("cpus_per_task") or 1)
    wall = max((r["wall_s"] for r in ranks), default=None)
    cpu = sum(r["cpu_s"] for r in ranks) if ranks else None
    # CPU efficiency against what was allocated: ranks x cpus per task x wall time.
    alloc = len(ranks) * cpus_per_task * (wall or 0)
    exits = [r["exit_code"] for r in ranks if r["exit_code"] is not None]
    state, state_source = _state(ranks, acct)
    energies = [e["energy_j"] for n in nodes for k, e in n["energy"].items() if is_jobs_own(k, e)]
    mem_peak, where, mem_source = _memory_peak(ranks, acct, res)
    a = acct or {}
    return {
        "ranks": len(ranks),
        "nodes": sorted({r["node"] for r in ranks if r["node"]}),
        "wall_s": wall if wall is not None else a.get("elapsed_s"),
        "cpu_s": cpu if cpu is not None else a.get("total_cpu_s"),
        "cpu_efficiency": cpu / alloc if cpu is not None and alloc > 0 else None,
        "cpu_efficiency_slurm": a.get("cpu_efficiency"),
        "peak_rss_mb_max": max((r["peak_rss_mb"] for r in ranks), default=None),
        "peak_rss_mb_sum": sum(r["peak_rss_mb"] for r in ranks) if ranks else None,
        "all_finished": bool(ranks) and all(r["finished"] for r in ranks),
        "failed_ranks": [r["rank"] for r in ranks if r["exit_code"] not in (0, None)],
        "state": state,
        "state_source": state_source,
        "finished": a["finished"] if acct else bool(ranks) and all(r["finished"] for r in ranks),
        "exit_code": a["exit_code"] if acct else max(exits, default=None),
        "elapsed_s": a.get("elapsed_s") if a.get("elapsed_s") is not None else wall,
        "time_limit_s": int(res["time_min"]) * 60 if res.get("time_min") else None,
        "cpus_per_task": cpus_per_task,
        "mem_req_mb": _mem_request(res, acct),
        "mem_peak_mb": mem_peak,
        "mem_peak_where": where,
        "mem_peak_source": mem_source,
        "energy_j": sum(energies) if energies else None,
        "energy_kwh": sum(energies) / 3.6e6 if energies else None,
        "comm_share": comm["share"] if comm else None,
    }


def _state(ranks: list[dict[str, Any]], acct: dict[str, Any] | None) -> tuple[str, str]:
    """Slurm's state when it has one; else what the records say: every rank ended (COMPLETED or FAILED by
    the exit codes), or UNFINISHED (still running, or killed before the ranks wrote their end)."""
    if acct is not None:
        return acct["state"], "sacct"
    if not ranks or not all(r["finished"] for r in ranks):
        return "UNFINISHED", "profile"
    return ("COMPLETED" if all(r["exit_code"] == 0 for r in ranks) else "FAILED"), "profile"


def _mem_request(res: dict[str, Any], acct: dict[str, Any] | None) -> float | None:
    """Memory per node asked for: the request, else what Slurm allocated (AllocTRES mem over nodes)."""
    if res.get("mem_mb"):
        return float(res["mem_mb"])
    if acct and acct["alloc_mem_mb"] and acct["alloc_nodes"]:
        return acct["alloc_mem_mb"] / acct["alloc_nodes"]
    return None


def _memory_peak(
    ranks: list[dict[str, Any]], acct: dict[str, Any] | None, res: dict[str, Any]
) -> tuple[float | None, str | None, str | None]:
    """The largest node's peak (its ranks' peaks added: an upper bound, as they need not coincide), where,
    and its source; without records, Slurm's MaxRSS (the largest task) times the tasks per node."""
    if ranks:
        per_node: dict[str, list[dict[str, Any]]] = {}
        for r in ranks:
            per_node.setdefault(str(r["node"]), []).append(r)
        node, members = max(per_node.items(), key=lambda kv: sum(r["peak_rss_mb"] for r in kv[1]))
        top = max(members, key=lambda r: r["peak_rss_mb"])
        where = f"node {node}" + (
            f", largest rank {top['rank']}" if len(members) > 1 else f", rank {top['rank']}"
        )
        return sum(r["peak_rss_mb"] for r in members), where, "profile"
    if acct and acct["max_rss_mb"] is not None:
        tasks = int(res.get("ntasks_per_node") or 1)
        return acct["max_rss_mb"] * tasks, None, "sacct MaxRSS x tasks per node"
    return None, None, None


def grep_line(report: dict[str, Any]) -> str:
    """One line for grep and awk: ``hpcx: job=... state=...``, every field present, ``na`` when unknown."""
    s = report["summary"]
    eff = s["cpu_efficiency_slurm"] if s["cpu_efficiency_slurm"] is not None else s["cpu_efficiency"]
    fields = {
        "job": report["job_id"],
        "state": s["state"],
        "elapsed_s": _num(s["elapsed_s"], "{:.0f}"),
        "eff_cpu": _num(eff, "{:.3f}"),
        "mem_peak_mb": _num(s["mem_peak_mb"], "{:.0f}"),
        "mem_req_mb": _num(s["mem_req_mb"], "{:.0f}"),
        "energy_kwh": _num(s["energy_kwh"], "{:.6f}"),
        "comm_share": _num(s["comm_share"], "{:.3f}"),
    }
    return "hpcx: " + " ".join(f"{k}={'na' if v is None else v}" for k, v in fields.items())


def _num(value: float | None, fmt: str) -> str | None:
    return None if value is None else fmt.format(value)


def summarize_nodes(
    profile_dir: Path, merged: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Per node (records of its lowest local rank; of each job step's, merged, when several steps ran on it):
    each sensor's status (with the reason when unavailable) and each energy figure with its method, window
    and coverage, a node's energy counted once however many steps read it. Empty for runs recorded before
    format 2. ``merged``: :func:`hpcx.rundir.records.read_nodes` of the directory, when the caller has it."""
    if merged is None:
        merged = read_nodes(profile_dir)
    rows = []
    for name, node in sorted(merged.items()):
        sources = {
            src: {k: rec[k] for k in ("status", "reason") if k in rec} for src, rec in node["sources"].items()
        }
        energy = {
            key: {k: v for k, v in e.items() if k in NODE_ENERGY_KEYS} for key, e in node["energy"].items()
        }
        rows.append({"node": node["start"].get("node") or name, "sources": sources, "energy": energy})
    return rows


NODE_ENERGY_KEYS = (
    "status",
    "reason",
    "energy_j",
    "window_s",
    "method",
    "coverage",
    "steps",
    "rule",
)  # schema


def summarize_io(
    profile_dir: Path, ranks: list[int], since: dict[int, float] | None = None
) -> dict[str, Any]:
    """Bytes, seconds and rate per rank and in all, read and write (hpcx.profiling.iometrics records), and each HDF5
    file's layout as the writer chose it (mpio, per-rank fallback, serial) with the reason. ``since``: per
    rank, the start of its last attempt (older process files are left out)."""
    per_rank = read_io_totals(profile_dir, since)
    rows = []
    for rank in ranks:
        entry = per_rank.get(rank, {})
        row: dict[str, Any] = {"rank": rank}
        for op in ("read", "write"):
            t = entry.get(op, {"bytes": 0, "seconds": 0.0, "calls": 0})
            row[op] = {**t, "mb_per_s": t["bytes"] / 2**20 / t["seconds"] if t["seconds"] > 0 else None}
        rows.append(row)
    total = {
        op: {k: sum(r[op][k] for r in rows) for k in ("bytes", "seconds", "calls")}
        for op in ("read", "write")
    }
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(profile_dir.glob("io-rank-*.jsonl")):
        for record in read_records(path):
            if record.get("type") == "hdf5_open" and record.get("rank") == 0:
                files[record["path"]] = {k: record.get(k) for k in ("layout", "reason", "ranks", "fs_type")}
    return {"ranks": rows, "total": total, "hdf5_files": files}


def report_stem(report: dict[str, Any]) -> str:
    """``report`` for a run, ``task-NNNNN`` for one array task's report."""
    return "report" if report.get("task") is None else f"task-{report['task']:05d}"


def write_report(run: Run, report: dict[str, Any]) -> Path:
    """Write report/report.json (report/task-NNNNN.json for one task) atomically; return its path."""
    (run.dir / "report").mkdir(exist_ok=True)
    # Compact: indented JSON is written by Python's slow encoder, seconds for a large job; jq reads either.
    text = json.dumps(report, sort_keys=True, separators=(",", ":"), default=str) + "\n"
    return atomic_write(run.dir / "report" / f"{report_stem(report)}.json", text)


def write_html(run: Run, report: dict[str, Any]) -> Path:
    """Write report/report.html (or task-NNNNN.html) atomically; ImportError without matplotlib."""
    from hpcx.reports.html import render_html

    page = render_html(report)
    (run.dir / "report").mkdir(exist_ok=True)
    return atomic_write(run.dir / "report" / f"{report_stem(report)}.html", page)
