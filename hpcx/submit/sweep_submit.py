"""Submit a sweep: one task table, one job array per chunk of MaxArraySize tasks, one run directory."""

from __future__ import annotations

import datetime as _dt
import difflib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hpcx.errors import HpcxError, UsageError
from hpcx.fsutil import YamlError, atomic_write, atomic_write_json, load_yaml
from hpcx.rundir.layout import MANIFEST_FILE, SCRIPT_FILE, SWEEP_SPEC_FILE, TASK_TABLE
from hpcx.rundir.tasks import table_text
from hpcx.runs import Run, create_run, discard_run, record_job

# A sweep's task states are the run's business (hpcx.runs.state); still importable from here.
from hpcx.runs.state import summarize as summarize
from hpcx.runs.state import task_states as task_states
from hpcx.schedulers import FINISHED_STATES, JobRef, get_scheduler, slurm
from hpcx.schedulers.base import scrubbed_env
from hpcx.site.config import UserConfig
from hpcx.submit.preflight import SLURM_DEFAULT_MAX_ARRAY_SIZE
from hpcx.submit.request import RESOURCE_KEYS
from hpcx.submit.submission import Prepared, Request, manifest, render_script, resolve
from hpcx.submit.sweeps import Chunk, SweepError, SweepSpec, Task, chunks, expand, parse_spec


@dataclass
class PreparedSweep:
    spec: SweepSpec
    doc: dict[str, Any]
    prep: Prepared
    tasks: list[Task]
    chunks: list[Chunk]
    max_parallel: int | None
    limits: dict[str, Any]
    max_array_size: int = SLURM_DEFAULT_MAX_ARRAY_SIZE


def load_spec(path: Path) -> tuple[SweepSpec, dict[str, Any]]:
    """Read and validate a sweep file; errors name the file and the problem (exit 2 unreadable or not YAML, 3
    not a sweep hpcx can expand)."""
    try:
        doc = load_yaml(path.read_text())
    except OSError as exc:
        raise UsageError(f"sweep spec {str(path)!r} cannot be read: {exc.strerror}") from exc
    except YamlError as exc:  # exit 2 (usage), like a site file's: nothing was checked yet
        tab = "indent with spaces: YAML does not allow tabs" if "\t" in path.read_text() else None
        raise UsageError(f"sweep spec {str(path)!r} is not valid YAML: {exc}", hint=tab) from exc
    return parse_spec(doc), doc


def prepare(
    spec: SweepSpec, doc: dict[str, Any], site: Any, user: UserConfig | None, max_parallel: int | None = None
) -> PreparedSweep:
    """Resolve and check the sweep's job like `hpcx submit`, expand its tasks and split them into arrays."""
    from hpcx.submit.sweeps import check_max_parallel

    if max_parallel is not None:
        # an option: exit 2, as click's own checks
        check_max_parallel("--max-parallel", max_parallel, UsageError)
    unknown = set(spec.resources) - set(RESOURCE_KEYS)
    if unknown:
        near = [
            f"{k} -> {m[0]}" for k in sorted(unknown) if (m := difflib.get_close_matches(k, RESOURCE_KEYS, 1))
        ]
        raise SweepError(
            f"unknown resource(s) {', '.join(sorted(unknown))} in the sweep spec",
            hint=(f"did you mean {', '.join(near)}? " if near else "")
            + "resources are sbatch's job options with _ for - (ntasks, mem_per_cpu, gpus_per_node, ...): "
            "docs/user.md lists them",
        )
    _no_placeholders(spec)
    options = {k: (str(v) if v is not None else None) for k, v in spec.resources.items()}
    options.setdefault("name", spec.name)
    prep = resolve(Request(spec.kind, options, spec.variables, tuple(spec.command)), site, user)
    prep.task_table = True
    prep.inputs = tuple(spec.inputs)
    tasks = expand(spec)
    limits = live_limits(site.scheduler)
    max_array = max_array_size(prep.partition.max_array_size, limits)
    parts = chunks(len(tasks), max_array)
    check_queue(len(tasks), len(parts), limits)
    return PreparedSweep(spec, doc, prep, tasks, parts, max_parallel or spec.max_parallel, limits, max_array)


def max_array_size(site_limit: int | None, limits: dict[str, Any]) -> int:
    """The tasks one array may hold: the smaller of the site file's max_array_size and the live MaxArraySize
    (a site file written for a larger limit must not make sbatch refuse the array), else Slurm's default."""
    known = [n for n in (site_limit, limits.get("MaxArraySize")) if n]
    return min(known) if known else SLURM_DEFAULT_MAX_ARRAY_SIZE


def _no_placeholders(spec: SweepSpec) -> None:
    """Resources are the job array's, one set for all its tasks: a placeholder there cannot vary per task."""
    from hpcx.submit.sweeps import placeholders

    for key, value in spec.resources.items():
        used = placeholders(str(value))
        if used:
            raise SweepError(
                f"resources.{key} {str(value)!r} uses {{{used[0]}}}, but resources cannot vary within a sweep: "
                "all its tasks share one job array's resources",
                hint=f"give {key} one value, and run one sweep per {key} (e.g. two spec files)",
            )


def live_limits(scheduler: str) -> dict[str, Any]:
    """MaxArraySize, MaxJobCount, the user's MaxSubmitJobs and what is queued, from the live Slurm as far as it
    answers (:func:`hpcx.schedulers.slurm.limits`); {} for another scheduler. A silent cluster is checked by
    sbatch itself; the site file's limits still apply."""
    return slurm.limits() if scheduler == "slurm" else {}


def check_queue(n_tasks: int, n_arrays: int, limits: dict[str, Any]) -> None:
    """Refuse before sbatch does (after minutes of retrying) when the queue cannot take the sweep."""
    queued = limits.get("queued", 0)
    cap = limits.get("MaxSubmitJobs")
    if cap is not None and queued + n_tasks > cap:
        raise SweepError(
            f"the sweep has {n_tasks} tasks and you have {queued} jobs queued, but your MaxSubmitJobs is {cap}",
            hint=f"submit at most {max(cap - queued, 0)} tasks now (split the sweep or add exclude rules)",
        )
    max_jobs = limits.get("MaxJobCount")
    held = limits.get("queued_all", queued)
    if max_jobs is not None and held + n_tasks > max_jobs:
        raise SweepError(
            f"the sweep has {n_tasks} tasks, but slurmctld holds at most {max_jobs} job records (MaxJobCount; "
            f"every array task counts) and holds {held} now",
            hint=f"submit at most {max(max_jobs - held, 0)} tasks now, or wait for finished jobs to age out",
        )


def task_table(tasks: list[Task], progress: Callable[[int], None] | None = None) -> str:
    """tasks.jsonl: line N is task N, so a task finds its row without one file per task."""
    return table_text((task.to_dict() for task in tasks), progress)


def submit_sweep(
    ps: PreparedSweep, workdir: Path, root: Path, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Write the run directory (task table, script, manifest) and submit one array per chunk.

    A failure part-way cancels what was submitted and removes the run directory: nothing half-done remains.
    """
    scheduler = get_scheduler(ps.prep.site.scheduler)
    run = create_run(root)
    submitted: list[dict[str, Any]] = []
    try:
        table = task_table(ps.tasks, progress)
        atomic_write(run.dir / TASK_TABLE, table)
        atomic_write(run.dir / SWEEP_SPEC_FILE, yaml.safe_dump(ps.doc, sort_keys=False))
        rendered = render_script(ps.prep, run_id=run.id, run_dir=run.dir, workdir=workdir)
        script = atomic_write(run.dir / SCRIPT_FILE, rendered.text, mode=0o755)
        doc = manifest(
            ps.prep, run, {"path": rendered.template_path, "sha256": rendered.template_sha256}, workdir
        )
        doc["sweep"] = _sweep_record(ps, run, table)
        atomic_write_json(run.dir / MANIFEST_FILE, doc)
        _submit_chunks(
            scheduler,
            script,
            run,
            ps.chunks,
            ps.max_parallel,
            out=submitted,
            allow_env=ps.prep.site.allow_env,
            cwd=workdir,
        )
    except (HpcxError, OSError, KeyboardInterrupt):
        if submitted:
            scheduler.cancel([JobRef(c["job_id"], run.dir) for c in submitted])
        discard_run(run)
        raise
    _record_chunks(run, ps.prep.site.scheduler, submitted)
    return {
        "run_id": run.id,
        "run_dir": str(run.dir),
        "job_id": submitted[0]["job_id"],
        "job_ids": [c["job_id"] for c in submitted],
        "tasks": len(ps.tasks),
        "arrays": len(submitted),
        "scheduler": ps.prep.site.scheduler,
        "partition": ps.prep.partition.name,
    }


def _sweep_record(ps: PreparedSweep, run: Run, table: str) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": ps.spec.name,
        "tasks": len(ps.tasks),
        "seed": ps.spec.seed,
        "max_parallel": ps.max_parallel,
        "chunks": [[c.offset, c.count] for c in ps.chunks],
        "max_array_size": ps.max_array_size,
        "tasks_sha256": hashlib.sha256(table.encode()).hexdigest(),
        "limits": ps.limits,
    }


def _submit_chunks(
    scheduler: Any,
    script: Path,
    run: Run,
    parts: list[Chunk],
    max_parallel: int | None,
    indices: list[list[int]] | None = None,
    out: list[dict[str, Any]] | None = None,
    allow_env: tuple[str, ...] = (),
    cwd: Path | None = None,
) -> list[dict[str, Any]]:
    """One array per chunk. With --max-parallel each chunk waits for the one before, so the whole sweep never
    runs more than max_parallel tasks at once (a %N throttle holds within one array only).

    Each submitted array is appended to ``out`` at once, so a caller can cancel them when a later one fails.
    ``allow_env``: the site's inherited SBATCH_*/SLURM_* variables that may reach sbatch, as for `hpcx submit`.
    ``cwd``: where sbatch runs, the sweep's submission directory (the tasks' $SLURM_SUBMIT_DIR, as with sbatch)."""
    out = [] if out is None else out

    def one(n: int, chunk: Chunk, after: str | None) -> dict[str, Any]:
        spec = ",".join(map(str, indices[n])) if indices else chunk.array_spec(None)
        args = [f"--array={spec}{f'%{max_parallel}' if max_parallel else ''}"]
        if after:
            args.append(f"--dependency=afterany:{after}")
        env = {
            **scrubbed_env(allow_env),
            "HPCX_RUN_ID": run.id,
            "HPCX_RUN_DIR": str(run.dir),
            "HPCX_TASK_OFFSET": str(chunk.offset),
        }
        job_id = scheduler.submit(script, run.dir, env=env, args=args, cwd=cwd)
        count = len(indices[n]) if indices else chunk.count
        return {
            "job_id": job_id,
            "offset": chunk.offset,
            "count": count,
            **({"indices": indices[n]} if indices else {}),
        }

    if max_parallel or len(parts) == 1 or scheduler.name != "slurm":
        for n, chunk in enumerate(parts):
            chained = bool(max_parallel and out and scheduler.name == "slurm")
            out.append(one(n, chunk, out[-1]["job_id"] if chained else None))
        return out
    # Independent arrays: submit them concurrently (each sbatch is a round trip to slurmctld).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(parts))) as pool:
        futures = [pool.submit(one, n, chunk, None) for n, chunk in enumerate(parts)]
        failure = None
        for f in futures:
            try:
                out.append(f.result())
            except (HpcxError, OSError) as exc:
                failure = failure or exc
    if failure is not None:
        raise failure
    return out


def _record_chunks(run: Run, scheduler: str, chunks_: list[dict[str, Any]]) -> None:
    old = run.job
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    record = {
        "scheduler": scheduler,
        "job_id": old.get("job_id", chunks_[0]["job_id"]),
        "kind": "sweep",
        "submitted_at": old.get("submitted_at", now),
        "chunks": [*old.get("chunks", []), *chunks_],
    }
    record_job(run, record)


# Tasks worth running again: every way of finishing except success.
FAILED_STATES = FINISHED_STATES - {"COMPLETED"}


def submission_dir(run: Run) -> Path:
    """Where the run was submitted from, which its jobs (and their retries and reruns) run in: UsageError when it
    is gone (the script's own --chdir names it, so the tasks would fail at their start)."""
    workdir = Path(run.manifest.get("workdir") or Path.cwd())
    if not workdir.is_dir():
        raise UsageError(
            f"run {run.id} was submitted from {workdir}, which no longer exists",
            hint="recreate that directory (the job runs there), or submit anew",
        )
    return workdir


def retry_failed(run: Run, allow_env: tuple[str, ...] = ()) -> dict[str, Any]:
    """Submit the sweep's tasks that ended without completing (failed, timed out, cancelled, ...) again, as
    arrays over just those task ids, into the same run; ``states`` counts every task's state before."""
    if "chunks" not in run.job:
        raise UsageError(
            f"run {run.id} is not a sweep", hint="--retry-failed takes the run id of `hpcx sweep`"
        )
    states = task_states(run)
    failed = sorted(t for t, s in states.items() if s in FAILED_STATES)
    counts = summarize(states)
    if not failed:
        return {"run_id": run.id, "retried": [], "job_ids": [], "states": counts, "retried_states": {}}
    sweep = run.manifest.get("sweep", {})
    max_array = max((c["count"] for c in run.job["chunks"] if "indices" not in c), default=1) or 1
    max_array = int(sweep.get("max_array_size") or sweep.get("limits", {}).get("MaxArraySize", max_array))
    groups: dict[int, list[int]] = {}
    for t in failed:
        groups.setdefault(t // max_array * max_array, []).append(t)
    parts = [Chunk(offset, len(ids)) for offset, ids in sorted(groups.items())]
    indices = [[t - offset for t in ids] for offset, ids in sorted(groups.items())]
    scheduler = get_scheduler(run.job.get("scheduler", "slurm"))
    max_parallel = run.manifest.get("sweep", {}).get("max_parallel")
    submitted = _submit_chunks(
        scheduler,
        run.dir / SCRIPT_FILE,
        run,
        parts,
        max_parallel,
        indices,
        allow_env=allow_env,
        cwd=submission_dir(run),
    )
    _record_chunks(run, run.job.get("scheduler", "slurm"), submitted)
    return {
        "run_id": run.id,
        "retried": failed,
        "job_ids": [c["job_id"] for c in submitted],
        "states": counts,
        "retried_states": summarize({t: states[t] for t in failed}),
    }
