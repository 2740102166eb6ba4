"""From a request to a submitted job: resolve values (with their sources), check, render, record, submit."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hpcx import __version__, _proc
from hpcx.errors import CommandError, HpcxError, UsageError
from hpcx.fsutil import atomic_write_json
from hpcx.launchers import launch_argv
from hpcx.preflight import check
from hpcx.runs import Run, create_run, discard_run, record_job, write_file
from hpcx.schedulers import get_scheduler
from hpcx.site import Partition, Site, runs_root
from hpcx.spec import RESOURCE_FIELDS, JobSpec, Resources, build_resources, format_time
from hpcx.templates import Rendered, render

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD = {"time": "time_min", "mem": "mem_mb"}
_SITE_DEFAULT_KEYS = ("time", "nodes", "ntasks_per_node", "cpus_per_task", "mem", "account", "qos")


@dataclass
class Request:
    """What the user asked for, before defaults: resource options as typed, --set pairs, the command."""

    kind: str | None
    options: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    workdir: Path = field(default_factory=Path.cwd)


@dataclass
class Prepared:
    spec: JobSpec
    sources: dict[str, str]
    partition: Partition
    site: Site


def parse_sets(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Parse ``--set NAME=VALUE`` pairs; NAME must be a shell identifier."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _VAR_NAME.match(name):
            raise UsageError(
                f"--set {pair!r} is not NAME=VALUE", hint="NAME: letters, digits, _; e.g. --set lr=0.1"
            )
        out[name] = value
    return out


def resolve(request: Request, site: Site) -> Prepared:
    """Apply defaults (site, partition, builtin) under the user's options, remembering each value's source."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in _SITE_DEFAULT_KEYS:
        if key in site.defaults:
            values[key], sources[key] = site.defaults[key], "site"
    for key, value in request.options.items():
        if value is not None:
            values[key], sources[key] = value, "cli"
    if "partition" not in values:
        if not site.default_partition and len(site.partitions) != 1:
            raise UsageError(
                "no --partition given and the site names no default_partition",
                hint=f"pass --partition (one of {', '.join(site.partitions)})",
            )
        values["partition"] = site.default_partition or next(iter(site.partitions))
        sources["partition"] = "site"
    part = site.partitions.get(values["partition"])
    if "time" not in values and part is not None and part.default_time_min:
        values["time"], sources["time"] = part.default_time_min, "site"
    res = build_resources(values)
    # Sources are keyed by Resources field (time -> time_min, mem -> mem_mb); unset fields are builtin defaults.
    sources = {_FIELD.get(k, k): v for k, v in sources.items()}
    for key in RESOURCE_FIELDS:
        sources.setdefault(key, "default")
    kind = request.kind or site.defaults.get("kind") or "serial"
    sources["kind"] = "cli" if request.kind else ("site" if site.defaults.get("kind") else "default")
    spec = JobSpec(
        kind=kind, resources=res, command=tuple(request.command), variables=dict(request.variables)
    )
    if not spec.command:
        raise UsageError(
            "no command given", hint="put it after --, e.g. hpcx submit serial -- python train.py"
        )
    partition = check(res, site)
    return Prepared(spec, sources, partition, site)


def _gres(res: Resources, part: Partition) -> str | None:
    if not res.gpus_per_node:
        return None
    return f"gpu:{part.gpu_type}:{res.gpus_per_node}" if part.gpu_type else f"gpu:{res.gpus_per_node}"


def context(prep: Prepared, *, run_id: str, run_dir: Path, workdir: Path) -> dict[str, Any]:
    """Everything a template may use. User values stay raw here: the renderer quotes each one."""
    res, site = prep.spec.resources, prep.site
    job = {
        **asdict(res),
        "ntasks": res.ntasks,
        "time": format_time(res.time_min),
        "gres": _gres(res, prep.partition),
    }
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
        "launch": launch_argv(site.launcher_for(prep.partition), res),
        "command": list(prep.spec.command),
        "vars": dict(prep.spec.variables),
        "hpcx_version": __version__,
    }


def render_script(prep: Prepared, *, run_id: str, run_dir: Path, workdir: Path) -> Rendered:
    return render(
        prep.spec.kind,
        context(prep, run_id=run_id, run_dir=run_dir, workdir=workdir),
        prep.site.template_dirs,
    )


def render_preview(prep: Prepared, workdir: Path) -> Rendered:
    """The script as it would be submitted, with a placeholder run id (nothing is created)."""
    root, _ = runs_root(prep.site)
    return render_script(prep, run_id="RUN-ID", run_dir=root / "RUN-ID", workdir=workdir)


def _git(workdir: Path) -> dict[str, Any]:
    try:
        head = _proc.run(["git", "rev-parse", "HEAD"], cwd=workdir, timeout_s=10).stdout.strip()
        dirty = bool(_proc.run(["git", "status", "--porcelain"], cwd=workdir, timeout_s=20).stdout.strip())
    except (CommandError, OSError):
        return {"commit": None}
    return {"commit": head, "dirty": dirty}


def manifest(prep: Prepared, run: Run, rendered: Rendered, workdir: Path) -> dict[str, Any]:
    """The provenance record of a run: what was asked, what was resolved (with sources), and where it ran."""
    resolved = {k: {"value": v, "source": prep.sources[k]} for k, v in asdict(prep.spec.resources).items()}
    return {
        "schema": "hpcx.manifest/1",
        "run_id": run.id,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "kind": {"value": prep.spec.kind, "source": prep.sources["kind"]},
        "resources": resolved,
        "command": list(prep.spec.command),
        "variables": prep.spec.variables,
        "workdir": str(workdir),
        "site": {
            "name": prep.site.name,
            "source": prep.site.source,
            "sha256": prep.site.sha256,
            "cluster": prep.site.cluster,
            "scheduler": prep.site.scheduler,
        },
        "template": {"path": rendered.template_path, "sha256": rendered.template_sha256},
        "git": _git(workdir),
        "versions": {"hpcx": __version__, "python": platform.python_version()},
        "host": platform.node(),
        "user": os.environ.get("USER") or str(os.getuid()),
    }


def submit(prep: Prepared, workdir: Path) -> dict[str, Any]:
    """Create the run directory, write script and manifest, submit; on failure leave nothing behind."""
    root, _ = runs_root(prep.site)
    run = create_run(root)
    try:
        rendered = render_script(prep, run_id=run.id, run_dir=run.dir, workdir=workdir)
        script = write_file(run, "job.sbatch", rendered.text, mode=0o755)
        doc = manifest(prep, run, rendered, workdir)
        atomic_write_json(run.dir / "manifest.json", doc)
        job_id = get_scheduler(prep.site.scheduler).submit(script, run.dir)
    except (HpcxError, OSError, KeyboardInterrupt):
        discard_run(run)
        raise
    submitted = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    record_job(run, {"scheduler": prep.site.scheduler, "job_id": job_id, "submitted_at": submitted})
    return {
        "run_id": run.id,
        "run_dir": str(run.dir),
        "job_id": job_id,
        "scheduler": prep.site.scheduler,
        "partition": prep.partition.name,
    }
