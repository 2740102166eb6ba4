"""From a resolved request to a submitted job: render the script, write the run directory (script, manifest),
hand both to the scheduler. The request and its resolution are in hpcx.submit.request, --after's decisions in
hpcx.submit.after; their names stay importable from here."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hpcx import __version__
from hpcx.errors import HpcxError, UsageError
from hpcx.fsutil import atomic_write_json
from hpcx.rundir.layout import MANIFEST_FILE, SCRIPT_FILE, TASK_TABLE
from hpcx.runs import Run, create_run, discard_run, record_job, write_file
from hpcx.schedulers import get_scheduler
from hpcx.schedulers.base import scrubbed_env
from hpcx.site import Partition, Site
from hpcx.spec import Resources, format_time
from hpcx.submit.after import after_job_ids
from hpcx.submit.launchers import launch_argv
from hpcx.submit.request import (
    JOB_NAME_MAX,
    Prepared,
    Request,
    default_job_name,
    parse_pairs,
    resolve,
    with_profile,
)
from hpcx.templates import Rendered, Shell, quote, render

__all__ = [
    "JOB_NAME_MAX",
    "TASK_ID_EXPR",
    "Prepared",
    "Request",
    "after_job_ids",
    "context",
    "default_job_name",
    "log_patterns",
    "manifest",
    "parse_pairs",
    "preempt_settings",
    "profile_env",
    "render_preview",
    "render_script",
    "resolve",
    "run_cmd",
    "script_args",
    "submit",
    "with_profile",
]


def profile_env(prep: Prepared) -> dict[str, str]:
    """What the ranks find in their environment: with ``--profile`` (or ``defaults.profile: true``) hpcx.run
    records the rank's profile and switches communication tracing on in the program it starts; with the
    command line's ``--no-profile`` nothing records a profile; otherwise the ranks record their samples
    (memory, CPU time) without tracing."""
    if prep.profile:
        return {"HPCX_PROFILE": "1", "HPCX_PROFILE_COMM": "1"}
    return {"HPCX_PROFILE": "0"} if prep.sources.get("profile") == "cli" else {}


def _without_python(command: list[str]) -> list[str]:
    if command and Path(command[0]).name.startswith("python"):
        return command[1:]
    return command


def _gres(res: Resources, part: Partition) -> str | None:
    """The job's GPUs per node as a --gres value (for an admin's own header block), typed as the partition's."""
    if res.gres:
        return res.gres
    if not res.gpus_per_node:
        return None
    return f"gpu:{part.gpu_type}:{res.gpus_per_node}" if part.gpu_type else f"gpu:{res.gpus_per_node}"


def shape_directives(res: Resources, sources: dict[str, str]) -> list[tuple[str, str | None]]:
    """The job's shape as sbatch options, exactly as asked (by the user, their defaults or the site's): ``-n 4``
    stays ``--ntasks=4``, never a node count and tasks per node that Slurm would place differently; what nobody
    asked is left to sbatch's own defaults (one node, one task, one CPU), which are hpcx's too."""
    asked = {k for k, v in sources.items() if v != "default"}
    typed = (lambda n: f"{res.gpu_type}:{n}") if res.gpu_type else str
    out: list[tuple[str, str | None]] = []
    if "nodes" in asked:
        out.append(("--nodes", f"{res.nodes}-{res.nodes_max}" if res.nodes_max else str(res.nodes)))
    if res.ntasks is not None:
        out.append(("--ntasks", str(res.ntasks)))
    if "ntasks_per_node" in asked:
        out.append(("--ntasks-per-node", str(res.ntasks_per_node)))
    if "cpus_per_task" in asked:
        out.append(("--cpus-per-task", str(res.cpus_per_task)))
    for key, value in (
        ("ntasks_per_gpu", res.ntasks_per_gpu),
        ("cpus_per_gpu", res.cpus_per_gpu),
        ("gpus", typed(res.gpus) if res.gpus else None),
        ("gpus_per_node", typed(res.gpus_per_node) if res.gpus_per_node else None),
        ("gpus_per_task", typed(res.gpus_per_task) if res.gpus_per_task else None),
        ("gres", res.gres),
        ("mem", f"{res.mem_mb}M" if res.mem_mb else ("0" if res.mem_mb == 0 else None)),
        ("mem_per_cpu", f"{res.mem_per_cpu_mb}M" if res.mem_per_cpu_mb else None),
        ("mem_per_gpu", f"{res.mem_per_gpu_mb}M" if res.mem_per_gpu_mb else None),
        ("constraint", res.constraint),
        ("nodelist", res.nodelist),
        ("exclude", res.exclude),
    ):
        if value is not None:
            out.append(("--" + key.replace("_", "-"), str(value)))
    if res.exclusive is not None:
        out.append(("--exclusive", f"{res.exclusive}" or None))
    return out


# An array task's id: its index plus the offset of its chunk (sweeps split into arrays below MaxArraySize).
TASK_ID_EXPR = '"$((SLURM_ARRAY_TASK_ID + ${HPCX_TASK_OFFSET:-0}))"'


def run_cmd(python: str, prep: Prepared) -> Shell:
    """``python -m hpcx.run [task options] --``: the wrapper every rank runs its command under."""
    words = f"{quote(python)} -m hpcx.run"
    if prep.array is not None or prep.task_table:
        words += f" --task-id {TASK_ID_EXPR}"
    if prep.task_table:
        words += f' --task-table "$HPCX_RUN_DIR/{TASK_TABLE}"'
    return Shell(words + " --")


SIGNAL_LEAD_MAX_S = 65535  # sbatch: "Invalid --signal specification" above this


def preempt_settings(prep: Prepared) -> dict[str, Any]:
    """Which signal Slurm sends before the time limit, and how early: --set signal_lead_s=N (default 180 s, at
    most half the time limit; Slurm checks about every 30 s, and sbatch refuses a --signal time over 65535 s)."""
    limit_s = prep.spec.resources.time_min * 60
    raw = prep.spec.variables.get("signal_lead_s", "180")
    if not (raw.isascii() and raw.isdigit()) or not 30 <= int(raw) <= SIGNAL_LEAD_MAX_S:
        raise UsageError(
            f"--set signal_lead_s={raw} must be whole seconds, at least 30 (Slurm checks every ~30 s) and at most "
            f"{SIGNAL_LEAD_MAX_S} (sbatch's --signal limit)",
            hint="e.g. --set signal_lead_s=300",
        )
    flags = {flag for flag, _ in prep.passed_on}
    return {
        "signal": "USR2",
        "lead_s": min(int(raw), limit_s // 2),
        "own_signal": "--signal" in flags,  # the user's --signal replaces hpcx's warning
        "no_requeue": "--no-requeue" in flags,
    }


def context(prep: Prepared, *, run_id: str, run_dir: Path, workdir: Path) -> dict[str, Any]:
    """Everything a template may use. User values stay raw here: the renderer quotes each one."""
    res, site = prep.spec.resources, prep.site
    job = _job_context(prep)
    return {
        "kind": prep.spec.kind,
        "job": job,
        "run": {"id": run_id, "dir": str(run_dir), "workdir": str(workdir)},
        "site": {
            "name": site.name,
            "module_system": site.module_system,
            "modules": list(site.modules),
            "env": dict(site.env),
        },
        "scheduler": site.scheduler,
        "python": site.python or sys.executable,
        "run_cmd": run_cmd(site.python or sys.executable, prep),
        "launch": launch_argv(site.launcher_for(prep.partition), res),
        "command": list(prep.spec.command),
        # The command without its leading interpreter, for launchers that start Python themselves (torchrun).
        "script_command": _without_python(list(prep.spec.command)),
        "vars": dict(prep.spec.variables),
        "directives": [{"flag": f, "value": v} for f, v in prep.directives],
        "preempt": preempt_settings(prep),
        "profile_env": profile_env(prep),
        "step_env": dict(prep.step_env),
        "hpcx_version": __version__,
    }


def _job_context(prep: Prepared) -> dict[str, Any]:
    """The job's resources as templates see them: every Resources field, and the derived values sbatch takes."""
    res = prep.spec.resources
    return {
        **asdict(res),
        "ntasks": res.tasks,
        "gpus_per_node": res.gpus_on_node,
        # values hpcx parsed and checked (plain tokens, host lists, feature expressions): written as typed
        "shape": [
            {"flag": f, "value": v if v is None else Shell(v)} for f, v in shape_directives(res, prep.sources)
        ],
        "time": format_time(res.time_min),
        "gres": _gres(res, prep.partition),
        "array": prep.array.text if prep.array else None,
        "array_indices": list(prep.array.indices) if prep.array else [],
        "is_array": prep.array is not None or prep.task_table,  # a sweep's arrays come per chunk, at submit
    }


def render_script(prep: Prepared, *, run_id: str, run_dir: Path, workdir: Path) -> Rendered:
    ctx = context(prep, run_id=run_id, run_dir=run_dir, workdir=workdir)
    site = prep.site
    return render(
        prep.spec.kind, ctx, site.template_dirs, user_dirs=prep.user_dirs, locked=site.locked_blocks
    )


def render_preview(prep: Prepared, workdir: Path, root: Path) -> str:
    """The script as it would be submitted, with a placeholder run id (nothing is created)."""
    if prep.script_text is not None:
        return prep.script_text
    return render_script(prep, run_id="RUN-ID", run_dir=root / "RUN-ID", workdir=workdir).text


def script_args(prep: Prepared, run_dir: Path, workdir: Path) -> list[str]:
    """sbatch options beside a user's own script. Its #SBATCH lines reach Slurm as written (they were checked);
    hpcx adds only what the user gave on the command line or as a default of their own (see _passed_options),
    the run directory's log paths where the script names none, the array, the admin-named resources and the
    dependencies. (sbatch runs in the directory the script was submitted from, so the job does too.)"""
    args = _with_step_env(list(prep.passed), prep.step_env)
    if prep.array:
        args.append(f"--array={prep.array.text}")
    output, error = log_patterns(prep, run_dir, workdir)
    if not _script_sets(prep, "--output", "-o"):
        args.append(f"--output={output}")
    if not _script_sets(prep, "--output", "-o", "--error", "-e"):  # -o alone: sbatch sends stderr there too
        args.append(f"--error={error}")
    return args + [f"{flag}={value}" for flag, value in prep.directives]


def _with_step_env(args: list[str], step_env: dict[str, str]) -> list[str]:
    """An own script's step defaults (--cpu-bind: SLURM_CPU_BIND) reach its environment through --export: added to
    the user's --export, or beside the whole environment (sbatch's default, ALL)."""
    if not step_env:
        return args
    pairs = ",".join(f"{k}={v}" for k, v in step_env.items())
    for i, arg in enumerate(args):
        if arg.startswith("--export="):
            args[i] = f"{arg},{pairs}"
            return args
    return [*args, f"--export=ALL,{pairs}"]


def _script_sets(prep: Prepared, *names: str) -> bool:
    return any(u.split("=")[0] in names for u in prep.unchecked)


def _unchecked_value(prep: Prepared, *names: str) -> str | None:
    found = None
    for item in prep.unchecked:
        name, sep, value = item.partition("=")
        if sep and name in names:
            found = value
    return found


def log_patterns(prep: Prepared, run_dir: Path, workdir: Path) -> tuple[str, str]:
    """Where an own script's stdout and stderr go, as absolute sbatch patterns: its own -o/-e (relative to the
    directory it runs in, as Slurm reads them), else the run directory's logs/."""
    is_array = prep.array or _script_sets(prep, "--array", "-a")
    ours = f"{run_dir}/logs/slurm-{'%A_%a' if is_array else '%j'}"
    typed = [a.split("=", 1)[1] for a in prep.passed if a.startswith("--chdir=")]  # -D beside the script wins
    cwd = workdir / (typed[-1] if typed else _unchecked_value(prep, "--chdir", "-D") or ".")
    own_out, own_err = _unchecked_value(prep, "--output", "-o"), _unchecked_value(prep, "--error", "-e")
    output = str(cwd / own_out) if own_out else f"{ours}.out"
    error = str(cwd / own_err) if own_err else (output if own_out else f"{ours}.err")
    return output, error


def _provenance(workdir: Path, run: Run, prep: Prepared) -> dict[str, Any]:
    from hpcx.runs import provenance  # only submissions need it: render and --dry-run stay fast

    return provenance.collect(workdir, run.dir, prep.site, inputs=prep.inputs)


def manifest(prep: Prepared, run: Run, template: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The provenance record of a run: what was asked, what was resolved (with sources), where it ran from
    (git, Python packages, modules, Slurm, the redacted environment, input fingerprints: see hpcx.runs.provenance)."""
    import platform  # submit only: keeps render and --dry-run light

    resolved = {k: {"value": v, "source": prep.sources[k]} for k, v in asdict(prep.spec.resources).items()}
    return {
        "schema": "hpcx.manifest/1",
        "run_id": run.id,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "kind": {"value": prep.spec.kind, "source": prep.sources["kind"]},
        "profile": {"value": prep.profile, "source": prep.sources["profile"]},
        "resources": resolved,
        "command": list(prep.spec.command),
        "variables": prep.spec.variables,
        "workdir": str(workdir),
        "site": _site_record(prep.site),
        "template": template,
        "choice": prep.choice,
        "directives": [list(d) for d in prep.directives],
        "unchecked_directives": prep.unchecked,
        **_provenance(workdir, run, prep),
        "versions": {"hpcx": __version__, "python": platform.python_version()},
        "host": platform.node(),
        "user": os.environ.get("USER") or str(os.getuid()),
    }


def _site_record(site: Site) -> dict[str, Any]:
    """Which site file the run was checked against: its name, path and hash, the cluster and the scheduler."""
    return {
        "name": site.name,
        "source": site.source,
        "sha256": site.sha256,
        "cluster": site.cluster,
        "scheduler": site.scheduler,
    }


def submit(
    prep: Prepared, workdir: Path, root: Path, *, before: Callable[[Run], None] | None = None
) -> dict[str, Any]:
    """Create the run directory, write script and manifest, submit; on failure leave nothing behind.
    ``before`` writes what the job reads from its run directory at its start (a study's spec) before sbatch."""
    scheduler = get_scheduler(prep.site.scheduler)
    _check_submittable(prep, workdir)
    run = create_run(root)
    try:
        if before is not None:
            before(run)
        text, args, template, logs = _script_and_args(prep, run, workdir)
        script = write_file(run, SCRIPT_FILE, text, mode=0o755)
        atomic_write_json(
            run.dir / MANIFEST_FILE, {**manifest(prep, run, template, workdir), "sbatch_args": args, **logs}
        )
        env = {
            **scrubbed_env(prep.site.allow_env),
            "HPCX_RUN_ID": run.id,
            "HPCX_RUN_DIR": str(run.dir),
            **profile_env(prep),
        }
        # sbatch runs in the submission directory, as the user's own sbatch would: $SLURM_SUBMIT_DIR is it
        job_id = scheduler.submit(script, run.dir, env=env, args=args, cwd=workdir)
    except (HpcxError, OSError, KeyboardInterrupt):
        discard_run(run)
        raise
    submitted = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    record_job(
        run,
        {
            "scheduler": prep.site.scheduler,
            "job_id": job_id,
            "submitted_at": submitted,
            "kind": prep.spec.kind,
        },
    )
    return {
        "run_id": run.id,
        "run_dir": str(run.dir),
        "job_id": job_id,
        "scheduler": prep.site.scheduler,
        "partition": prep.partition.name,
    }


def _check_submittable(prep: Prepared, workdir: Path) -> None:
    """What only submitting needs: a Slurm site for a dependency, and the directory the job runs in."""
    if prep.site.scheduler != "slurm" and any(f == "--dependency" for f, _ in prep.directives):
        raise UsageError(
            "--after a run that has not finished needs a Slurm site",
            hint="the local backend runs jobs at once, in order: submit when it has finished",
        )
    if not workdir.is_dir():
        raise UsageError(
            f"working directory {str(workdir)!r} does not exist",
            hint="jobs run where they were submitted from: create it or submit from elsewhere",
        )


def _script_and_args(
    prep: Prepared, run: Run, workdir: Path
) -> tuple[str, list[str], dict[str, Any], dict[str, Any]]:
    """The script for ``run`` (rendered from the template, or the user's own), sbatch's options beside it, the
    manifest's record of the template, and an own script's log paths (for `hpcx logs`)."""
    if prep.script_text is None:
        rendered = render_script(prep, run_id=run.id, run_dir=run.dir, workdir=workdir)
        args = [f"--array={prep.array.text}"] if prep.array else []
        return rendered.text, args, {"path": rendered.template_path, "sha256": rendered.template_sha256}, {}
    text, args = prep.script_text, script_args(prep, run.dir, workdir)
    template = {"path": None, "sha256": hashlib.sha256(text.encode()).hexdigest()}
    return text, args, template, {"log_patterns": sorted(set(log_patterns(prep, run.dir, workdir)))}
