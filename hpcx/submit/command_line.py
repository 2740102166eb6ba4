"""What the submitting commands (render, submit, sweep, rerun) compute from the command line's words: the request
of KIND or SCRIPT with its options, a sweep with --profile applied, the documents --dry-run prints, and what a
rerun submits. The commands themselves (hpcx.cli) only parse, call these and print."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcx.errors import UsageError
from hpcx.rundir.tasks import fill_command
from hpcx.submit.after import after_job_ids
from hpcx.submit.request import RESOURCE_KEYS, Prepared, Request, parse_pairs, with_profile
from hpcx.submit.submission import render_preview, script_args, submit

if TYPE_CHECKING:
    from hpcx.submit.rerun import Plan
    from hpcx.submit.sweep_submit import PreparedSweep


def script_path(target: str) -> Path | None:
    """KIND|SCRIPT: a path (a / in it, or a .sh or .sbatch name) is the user's own batch script, else a kind."""
    return Path(target) if ("/" in target or target.endswith((".sh", ".sbatch"))) else None


def job_request(
    target: str,
    command: tuple[str, ...],
    options: dict[str, Any],
    root: Path,
    after: tuple[str, ...] = (),
    inputs: tuple[str, ...] = (),
) -> Request:
    """The request of `hpcx submit|render KIND|SCRIPT [options] COMMAND...` (``options`` as click parsed them).
    --after RUN is decided here from RUN's outcome (a success needs no dependency, a failure is refused, see
    hpcx.submit.after): only runs still active become Slurm dependencies."""
    script = script_path(target)
    after_ids = after_job_ids(root, after) if after else ()
    return Request(
        kind=None if script else target,
        options={k: options[k] for k in RESOURCE_KEYS},
        variables=parse_pairs("--set", options["sets"]),
        named=parse_pairs("--resource", options["resources"]),
        command=command,
        workdir=Path.cwd(),
        after=after_ids,
        script=script,
        array=options["array"],
        inputs=inputs,
    )


def job_preview(prep: Prepared, workdir: Path, root: Path) -> dict[str, Any]:
    """What --dry-run and render show: the script, where each value came from, how the partition was chosen, and
    the sbatch options passed on as written, which hpcx does not check."""
    workdir = run_dir_of(prep, workdir)
    doc: dict[str, Any] = {
        "script": render_preview(prep, workdir, root),
        "partition": prep.partition.name,
        "sources": prep.sources,
        "explain": _explain_partition(prep),
        "choice": prep.choice,
        "passed_on": [f if v is None else f"{f}={v}" for f, v in prep.passed_on],
    }
    if prep.script_text is not None:
        doc["sbatch_args"] = script_args(prep, root / "RUN-ID", workdir)
        doc["unchecked_directives"] = prep.unchecked
    return doc


def submit_document(prep: Prepared, workdir: Path, root: Path, *, dry_run: bool) -> dict[str, Any]:
    """What `hpcx submit` prints: the job submitted (run id, run directory, job id, ...), or with ``dry_run``
    what render shows, submitting nothing."""
    if dry_run:
        return {"dry_run": True, **job_preview(prep, workdir, root)}
    return submit(prep, run_dir_of(prep, workdir), root)


def run_dir_of(prep: Prepared, workdir: Path) -> Path:
    """The directory the job runs in: -D (relative to where it is submitted from, as sbatch reads it), else there."""
    return (workdir / prep.chdir).resolve() if prep.chdir else workdir


def _explain_partition(prep: Prepared) -> str:
    """Why the job goes to its partition: how it was chosen and why the others were not, or who named it."""
    if not prep.choice:
        return f"partition {prep.spec.resources.partition} from {prep.sources['partition']}"
    explain = prep.choice["why"]
    others = [f"{name} ({problems[0]})" for name, problems in prep.choice["rejected"].items()]
    if others:
        explain += "; not: " + "; ".join(others)
    return explain


def spec_path(spec: str | None) -> Path:
    """`hpcx sweep SPEC.yaml`'s spec; UsageError without one (the command's other form is --retry-failed RUN)."""
    if spec is None:
        raise UsageError("no sweep spec given", hint="hpcx sweep SPEC.yaml, or hpcx sweep --retry-failed RUN")
    return Path(spec)


def sweep_with_profile(ps: PreparedSweep, profile: bool | None) -> PreparedSweep:
    """``ps`` with the command line's ``--profile``/``--no-profile`` applied to its job (None: as resolved)."""
    return dataclasses.replace(ps, prep=with_profile(ps.prep, profile))


def sweep_preview(ps: PreparedSweep, workdir: Path, root: Path) -> dict[str, Any]:
    """What `hpcx sweep --dry-run` prints: each task with the command it will run, the arrays, the script."""
    tasks = [{**t.to_dict(), "command": fill_command(ps.spec.command, t.to_dict())} for t in ps.tasks]
    return {"dry_run": True, "tasks": tasks, **_arrays_and_script(ps, workdir, root)}


def _arrays_and_script(ps: PreparedSweep, workdir: Path, root: Path) -> dict[str, Any]:
    return {
        "arrays": [c.array_spec(ps.max_parallel) for c in ps.chunks],
        "script": render_preview(ps.prep, workdir, root),
    }


def rerun_document(todo: Plan, like: dict[str, Any], root: Path, *, dry_run: bool) -> dict[str, Any]:
    """What `hpcx rerun` prints with ``like`` (the run it is like, the warnings): the run submitted from ``todo``
    (a job or a sweep), or with ``dry_run`` what would be submitted."""
    from hpcx.submit.sweep_submit import submit_sweep

    ps = todo.sweep
    if ps is not None and dry_run:
        tasks = [t.to_dict() for t in ps.tasks]
        return {"dry_run": True, **like, "tasks": tasks, **_arrays_and_script(ps, todo.workdir, root)}
    if ps is not None:
        return {**submit_sweep(ps, todo.workdir, root), **like}
    assert todo.prep is not None  # a plan holds a job where it holds no sweep
    if dry_run:
        return {"dry_run": True, **like, **job_preview(todo.prep, todo.workdir, root)}
    return {**submit(todo.prep, todo.workdir, root), **like}
