"""The JSON documents the dashboard's pages fetch, read from the runs root with hpcx's own readers.

- ``runs_doc``: the run index's rows (as `hpcx runs --json` gives them, live step and metric included);
- ``run_doc``: one run: what it ran, its state and live fields (attempt, resumed step, heartbeat, stalled), the
  stop that ended it, a sweep's tasks with their parameters, and once there is one, its report's headline;
- ``timelines_doc``: the node timelines (memory, network, power, GPUs) and each rank's memory and CPU over time,
  from the profile records of the run's last attempt;
- ``sweep_doc``: each task's parameters and its main metric (last and best value) for the sweep page.

Every file is read only when it resolves inside the runs root (hpcx.ui.access.contained). Values come as the run
wrote them; the page shows them as text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hpcx.rundir.layout import MANIFEST_FILE, TASK_TABLE, node_files, profile_dir, rank_files, report_file
from hpcx.runs import Run
from hpcx.runs.live import higher_is_better
from hpcx.ui.access import contained

MAX_RUNS = 1000  # rows the runs list fetches (newest first)
MAX_POINTS = 400  # per timeline
REPORT_BYTES = 8 * 2**20  # a report.json larger than this is not read by the page


def runs_doc(root: Path) -> dict[str, Any]:
    """The newest MAX_RUNS runs, oldest first, with their states brought up to date (one batched query)."""
    from hpcx.runs.index import RunFilter
    from hpcx.runs.state import list_rows

    rows, matched = list_rows(root, RunFilter(), MAX_RUNS)
    for row in rows:
        row.pop("run_dir", None)  # the page names runs by id
    return {"root": str(root), "runs": rows, "matched": matched}


def _json(root: Path, path: Path, limit: int = REPORT_BYTES) -> Any:
    """A JSON file inside the root, None when it is missing, outside, too large or not JSON."""
    if not contained(root, path):
        return None
    try:
        if path.stat().st_size > limit:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _value(entry: Any) -> Any:
    return entry.get("value") if isinstance(entry, dict) else entry


def run_doc(root: Path, run_dir: Path) -> dict[str, Any]:
    """One run's page: its manifest's headline, its state row(s) and its report's headline."""
    from hpcx.runs import task_ids
    from hpcx.runs.state import run_rows
    from hpcx.runs.stop import stop_record

    run = Run(run_dir.name, run_dir)
    manifest = _json(root, run_dir / MANIFEST_FILE)
    manifest = manifest if isinstance(manifest, dict) else {}
    rows = run_rows([run])[0]
    ids = task_ids(run) if run.job else None
    doc = {
        "run_id": run.id,
        "name": _value((manifest.get("resources") or {}).get("name")),
        "kind": _value(manifest.get("kind")) or run.job.get("kind"),
        "created": manifest.get("created"),
        "command": manifest.get("command"),
        "job_id": run.job.get("job_id"),
        "sweep": "chunks" in run.job,
        "state": rows[0],
        "stopped": stop_record(run_dir, None) if contained(root, run_dir) else None,
        "report": report_headline(root, run_dir, None),
    }
    if ids:
        doc["tasks"] = task_rows(root, run, ids) if doc["sweep"] else [{"task": t} for t in ids]
    return doc


def task_rows(root: Path, run: Run, ids: list[int]) -> list[dict[str, Any]]:
    """A sweep's tasks: parameters from its task table, state and live fields from one batched query."""
    from hpcx.runs.state import run_rows

    params = task_params(root, run.dir)
    rows = run_rows([run], per_task=True)[0]
    return [
        {
            "task": row.get("task"),
            "params": params.get(row["task"], {}) if isinstance(row.get("task"), int) else {},
            "state": row["state"],
            "live": row.get("live"),
            "report": report_file(run.dir, row.get("task")).is_file(),
        }
        for row in rows
    ]


def task_params(root: Path, run_dir: Path) -> dict[int, dict[str, Any]]:
    """Task number -> its parameters, from the sweep's task table ({} without one)."""
    table = run_dir / TASK_TABLE
    if not contained(root, table):
        return {}
    out: dict[int, dict[str, Any]] = {}
    try:
        with open(table, encoding="utf-8") as fh:
            for line in fh:
                row = _line(line)
                if isinstance(row.get("task"), int) and isinstance(row.get("params"), dict):
                    out[row["task"]] = row["params"]
    except OSError:
        return {}
    return out


def _line(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def report_headline(root: Path, run_dir: Path, task: int | None) -> dict[str, Any] | None:
    """What the run page shows of a finished job's report: its one line, summary and advice, and whether
    report.html is there; None before the report exists."""
    doc = _json(root, report_file(run_dir, task))
    if not isinstance(doc, dict):
        return None
    advice: list[Any] = doc["advice"] if isinstance(doc.get("advice"), list) else []
    return {
        "line": doc.get("line"),
        "summary": doc.get("summary") if isinstance(doc.get("summary"), dict) else {},
        "advice": [a for a in advice if isinstance(a, (dict, str))][:20],
        "html": contained(root, report_file(run_dir, task, ".html")),
    }


def timelines_doc(root: Path, run_dir: Path, task: int | None) -> dict[str, Any]:
    """The node timelines and per-rank series of the run's (or task's) profile records, last attempt only."""
    profile = profile_dir(run_dir, task)
    if not contained(root, profile):
        return {"nodes": [], "ranks": []}
    return {"nodes": _nodes(root, profile), "ranks": _ranks(root, profile)}


def _nodes(root: Path, profile: Path) -> list[dict[str, Any]]:
    from hpcx.reports.timelines import node_details
    from hpcx.rundir.records import merge_node_steps, node_name, node_series, read_records

    steps: dict[str, list[dict[str, Any]]] = {}
    for path in node_files(profile):
        if contained(root, path):
            node = node_series(read_records(path))
            steps.setdefault(node_name(node, path), []).append(node)
    merged = {name: merge_node_steps(found) for name, found in steps.items()}
    return [{"node": d["node"], "timeline": d["timeline"]} for d in node_details(merged, MAX_POINTS).values()]


def _ranks(root: Path, profile: Path) -> list[dict[str, Any]]:
    """Per rank, ``t`` (seconds since its first sample), ``rss_mb`` (its process tree's resident memory) and
    ``cpu_cores`` (CPU seconds per second between samples), thinned to MAX_POINTS."""
    from hpcx.rundir.records import read_records

    out = []
    for rank, paths in sorted(rank_files(profile).items()):
        samples: list[dict[str, Any]] = []
        for path in paths if all(contained(root, p) for p in paths) else []:
            for rec in read_records(path):
                if rec.get("type") == "start" and not rec.get("step"):
                    samples = []  # a requeued job's new attempt: the last one is drawn
                elif rec.get("type") == "sample" and isinstance(rec.get("t"), (int, float)):
                    samples.append(rec)
        if samples:
            out.append({"rank": rank, **_columns(sorted(samples, key=lambda s: s["t"]))})
    return out


def _columns(samples: list[dict[str, Any]]) -> dict[str, Any]:
    from hpcx.reports.timelines import rates

    stride = -(-len(samples) // MAX_POINTS) or 1
    picked = samples[::stride]
    t = [round(s["t"] - samples[0]["t"], 3) for s in picked]
    return {
        "t": t,
        "rss_mb": [_number(s.get("rss_mb")) for s in picked],
        "cpu_cores": rates(t, [_number(s.get("cpu_s")) for s in picked], 1.0),
    }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def sweep_doc(root: Path, run_dir: Path) -> dict[str, Any]:
    """Each task's parameters, state, main metric (last value, and the best over the tail the live state
    reads) and step; the parameter names; the metric; whether higher is better."""
    doc = run_doc(root, run_dir)
    tasks = doc.get("tasks") or []
    names = list(dict.fromkeys(k for t in tasks for k in (t.get("params") or {})))
    metric = next(
        (t["live"]["main_metric"] for t in tasks if t.get("live") and t["live"]["main_metric"]), None
    )
    return {
        **doc,
        "params": names,
        "metric": metric,
        "higher_is_better": higher_is_better(metric) if metric else False,
    }


def study_doc(root: Path, run_dir: Path) -> dict[str, Any] | None:
    """A tuning study's page: every trial (parameters, state, value at each rung, how it ended), the best value
    so far over time, the Pareto front of complete trials for several objectives, and the summary `hpcx status`
    shows; None for a run that is no study."""
    from hpcx.tune.store import TrialFiles
    from hpcx.tune.summary import study_spec_doc, study_summary

    if not contained(root, run_dir / "trials"):
        return None
    spec = study_spec_doc(run_dir)
    if spec is None:
        return None
    objectives = [(o["metric"], o.get("direction", "minimize")) for o in spec.get("objectives") or []]
    trials = TrialFiles(run_dir).trials()
    rows = [_trial_row(t) for t in trials.values() if t.doc]
    return {
        "run_id": run_dir.name,
        "name": spec.get("name"),
        "objectives": [{"metric": m, "direction": d} for m, d in objectives],
        "params": [str(p) for p in (spec.get("space") or {})],
        "summary": study_summary(run_dir),
        "trials": rows,
        "best_over_time": best_over_time(rows, objectives[0][1] if objectives else "minimize"),
        "pareto": pareto_front(rows, [d for _, d in objectives]) if len(objectives) > 1 else [],
    }


def _trial_row(trial: Any) -> dict[str, Any]:
    end = trial.end or {}
    return {
        "trial": trial.number,
        "params": trial.params,
        "state": trial.state,
        "rungs": [[r, v] for r, v in sorted(trial.rungs.items())],
        "values": end.get("values"),
        "stopped_rung": end.get("rung") if trial.state == "stopped" else None,
        "reason": end.get("reason"),
        "retry_of": trial.doc.get("retry_of"),
        "created_at": trial.doc.get("created_at"),
        "ended_at": end.get("ended_at"),
    }


def best_over_time(rows: list[dict[str, Any]], direction: str) -> list[list[float]]:
    """``[seconds since the first trial started, best first-objective value so far]`` at each completion."""
    done = sorted(
        (
            r
            for r in rows
            if r["state"] == "complete" and r["values"] and isinstance(r["ended_at"], (int, float))
        ),
        key=lambda r: r["ended_at"],
    )
    starts = [r["created_at"] for r in rows if isinstance(r["created_at"], (int, float))]
    if not done or not starts:
        return []
    t0, best, out = min(starts), None, []
    for row in done:
        value = float(row["values"][0])
        if best is None or (value > best if direction == "maximize" else value < best):
            best = value
        out.append([round(row["ended_at"] - t0, 3), best])
    return out


def pareto_front(rows: list[dict[str, Any]], directions: list[str]) -> list[int]:
    """The trial numbers of the complete trials no other complete trial dominates (hpcx.tune.stopping's rule)."""
    from hpcx.tune.stopping import nondominated_fronts

    done = [
        r for r in rows if r["state"] == "complete" and r["values"] and len(r["values"]) == len(directions)
    ]
    if not done:
        return []
    fronts = nondominated_fronts([tuple(float(v) for v in r["values"]) for r in done], tuple(directions))
    return sorted(done[i]["trial"] for i in fronts[0])
