"""From a request to a submitted job: resolve values (with their sources), check, render, record, submit."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hpcx import __version__
from hpcx.errors import HpcxError, RejectedError, UsageError
from hpcx.fsutil import atomic_write_json
from hpcx.runs import Run, create_run, discard_run, record_job, write_file
from hpcx.schedulers import get_scheduler
from hpcx.schedulers.base import scrubbed_env
from hpcx.site import Partition, Site
from hpcx.site.config import UserConfig, env_defaults, layered, origins
from hpcx.spec import (
    RESOURCE_FIELDS,
    ArraySpec,
    JobSpec,
    Resources,
    build_resources,
    check_token,
    format_time,
    parse_array,
    parse_count,
)
from hpcx.submit.launchers import launch_argv
from hpcx.submit.preflight import check, check_array, choose_partition
from hpcx.submit.sbatch_script import parse_directives
from hpcx.templates import Rendered, Shell, quote, render

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD = {"time": "time_min", "mem": "mem_mb"}


@dataclass
class Request:
    """What the user asked for, before defaults: resource options as typed, --set pairs, the command."""

    kind: str | None
    options: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    workdir: Path = field(default_factory=Path.cwd)
    named: dict[str, str] = field(default_factory=dict)  # --resource NAME=VALUE
    after: tuple[str, ...] = ()  # job ids this job waits for (afterok)
    script: Path | None = None  # an existing batch script instead of a template kind
    array: str | None = None  # --array, Slurm syntax
    inputs: tuple[str, ...] = ()  # --input PATH: data to fingerprint


@dataclass
class Prepared:
    spec: JobSpec
    sources: dict[str, str]
    partition: Partition
    site: Site
    choice: dict[str, Any] = field(default_factory=dict)  # how the partition was chosen
    directives: list[tuple[str, str]] = field(default_factory=list)  # extra (flag, value) pairs
    script_text: str | None = None
    unchecked: list[str] = field(default_factory=list)
    user_dirs: tuple[Path, ...] = ()
    array: ArraySpec | None = None
    task_table: bool = False  # a sweep: each array task reads its parameters from the run's tasks.jsonl
    inputs: tuple[str, ...] = ()  # data the job declares it reads: fingerprinted into the manifest
    profile: bool = False  # the ranks record profiles and trace communication (see profile_env)
    passed: list[str] = field(default_factory=list)  # own script: sbatch options beside it, as written


def parse_pairs(option: str, pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Parse ``NAME=VALUE`` pairs given to ``option``; NAME must be a shell identifier."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _VAR_NAME.match(name):
            raise UsageError(
                f"{option} {pair!r} is not NAME=VALUE", hint=f"NAME: letters, digits, _; e.g. {option} lr=0.1"
            )
        out[name] = value
    return out


def _named_directives(named: dict[str, str], site: Site) -> list[tuple[str, str]]:
    """``--resource NAME=VALUE`` pairs as (flag, value), for resources the site names."""
    out = []
    for name, value in named.items():
        res = site.resources.get(name)
        if res is None:
            known = ", ".join(site.resources) or "none"
            raise UsageError(
                f"--resource {name} is not a resource of site {site.name}", hint=f"known: {known}"
            )
        if res.choices and value not in res.choices:
            raise RejectedError(
                f"--resource {name}={value} is not offered by site {site.name}",
                hint=f"choose one of {', '.join(res.choices)}",
            )
        if not value or any(c in value for c in "\n\r\0"):
            raise UsageError(f"--resource {name}={value!r} needs a one-line value")
        out.append((res.flag, value))
    return out


def resolve(request: Request, site: Site, user: UserConfig | None = None) -> Prepared:
    """Apply defaults under the user's options (cli > script > env > user > site > builtin), remembering each
    value's source, choose the partition if none is given, and run the pre-flight checks."""
    user = user or UserConfig(None)
    directives = None
    script_text = None
    if request.script is not None:
        script_text = _read_script(request.script)
        directives = parse_directives(script_text)
    _check_variable_names(request.variables)
    values, sources = layered(
        [
            ("cli", request.options),
            ("script", directives.options if directives else {}),
            ("env", env_defaults()),
            ("user", user.defaults),
            ("site", site.defaults),
        ]
    )
    origin = origins(sources, site_file=site.source, user_file=user.path)  # errors name where a value was set
    kind = values.pop("kind", None)
    kind_source = sources.pop("kind", "default")
    profile = values.pop("profile", False), sources.pop("profile", "default")  # --profile: with_profile
    if request.kind:
        kind, kind_source = request.kind, "cli"
    if script_text is None and not request.command:
        raise UsageError(
            "no command given",
            hint="put it after the kind and its options, e.g. hpcx submit serial python train.py",
        )
    passed = _passed_options(values, sources) if script_text is not None else []
    if request.script is not None and "name" not in values:  # sbatch's default: the script's file name (the
        passed.append(f"--job-name={request.script.name}")  # run's copy is job.sbatch, so it is said here)
        values["name"], sources["name"] = _script_name(request.script), "default"
    elif "name" not in values:  # squeue and sacct show what runs, not a column of 'hpcx'
        values["name"], sources["name"] = default_job_name(request.command), "default"
    node_range = None
    if script_text is not None and _NODE_RANGE.match(str(values.get("nodes", ""))):
        node_range = str(values["nodes"])  # --nodes=MIN-MAX: the job must fit on MIN nodes
        values["nodes"] = node_range.split("-")[0]
    if directives is not None and directives.ntasks:
        _spread_tasks(values, sources, directives.ntasks, site)
    choice: dict[str, Any] = {}
    if "partition" not in values:
        res_guess = build_resources({k: v for k, v in values.items() if k != "partition"}, origins=origin)
        part, choice = choose_partition(res_guess, site, time_given="time" in values, origins=origin)
        values["partition"], sources["partition"] = part.name, "auto"
        if script_text is not None:  # the job goes where it was checked, not to Slurm's default partition
            passed.append(f"--partition={part.name}")
    part = site.partitions.get(values["partition"])
    if "time" not in values and part is not None and part.default_time_min:
        values["time"], sources["time"] = part.default_time_min, "partition"
    res = build_resources(values, origins=origin)
    # Sources are keyed by Resources field (time -> time_min, mem -> mem_mb); unset fields are builtin defaults.
    sources = {_FIELD.get(k, k): v for k, v in sources.items()}
    for key in RESOURCE_FIELDS:
        sources.setdefault(key, "default")
    sources["kind"] = kind_source if script_text is None else "script"
    sources["profile"] = profile[1]
    spec = JobSpec(
        kind=(kind or "serial") if script_text is None else "script",
        resources=res,
        command=tuple(request.command),
        variables=dict(request.variables),
    )
    partition = check(res, site, origin)
    if directives is not None and directives.gpu_type:
        _check_gpu_type(directives.gpu_type, res, partition)
    if node_range:
        _check_node_range(node_range, directives.ntasks if directives else None, partition)
    array = parse_array(request.array) if request.array else None
    if array is not None:
        check_array(array, partition)
    elif spec.kind == "array":
        raise UsageError(
            "job kind 'array' needs --array", hint="e.g. --array 0-9 (indices) or 0-99%10 (throttled)"
        )
    extra = _named_directives(request.named, site)
    if request.after:
        # Slurm ends a job whose dependency can never hold (an upstream failed after this submission) instead of
        # leaving it pending as DependencyNeverSatisfied for good.
        extra += [("--dependency", "afterok:" + ":".join(request.after)), ("--kill-on-invalid-dep", "yes")]
    unchecked = directives.unchecked if directives else []
    return Prepared(
        spec,
        sources,
        partition,
        site,
        choice,
        extra,
        script_text,
        unchecked,
        user.template_dirs,
        array,
        inputs=tuple(request.inputs),
        profile=bool(profile[0]),
        passed=passed,
    )


# Request keys -> sbatch's own option names, for what hpcx passes to sbatch beside a user's own script.
_SBATCH_OPTION = {"partition": "--partition", "nodes": "--nodes", "ntasks_per_node": "--ntasks-per-node",
                  "cpus_per_task": "--cpus-per-task", "gpus_per_node": "--gpus-per-node", "mem": "--mem",
                  "time": "--time", "account": "--account", "qos": "--qos", "name": "--job-name"}  # fmt: skip
_NODE_RANGE = re.compile(r"^\d+-\d+$")


def _passed_options(values: dict[str, Any], sources: dict[str, str]) -> list[str]:
    """What goes on sbatch's command line beside an own script, as written: what the user typed (it overrides
    the script, as with sbatch) and the defaults the user set (HPCX_*, config, site file) for what the script
    leaves open. The script's own directives reach Slurm untouched."""
    return [f"{_SBATCH_OPTION[k]}={v}" for k, v in values.items()
            if k in _SBATCH_OPTION and sources.get(k) in ("cli", "env", "user", "site")]  # fmt: skip


JOB_NAME_MAX = 40  # Slurm takes far longer names, but squeue's and sacct's columns show only the start
_INTERPRETER = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|bash|sh|zsh|Rscript|julia|perl|ruby|node)$")
_INTERPRETER_VALUE_OPTIONS = ("-X", "-W", "-Q", "-e")  # options whose value is the next word
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def default_job_name(command: tuple[str, ...] | list[str]) -> str:
    """The job name when none is given (-J, #SBATCH -J): the program the command runs, as a person names it:
    ``python train.py`` -> ``train``, ``python -m pkg.mod`` -> ``mod``, ``./job.sh`` -> ``job``; made a plain
    name of at most JOB_NAME_MAX characters (anything else becomes ``_``), ``hpcx`` when nothing is left."""
    words = list(command)
    while words and _ASSIGNMENT.match(words[0]):  # FOO=1 python train.py
        words.pop(0)
    program = Path(words[0]).name if words else ""
    if _INTERPRETER.match(program):
        rest = words[1:]
        while rest and rest[0].startswith("-") and rest[0] != "-":
            opt = rest.pop(0)
            if opt == "-m" or (opt.startswith("-m") and not opt.startswith("--")):
                module = opt[2:] or (rest[0] if rest else "")
                return _plain_job_name(module.rsplit(".", 1)[-1])
            if opt == "-c":
                return _plain_job_name(program)  # inline code has no name of its own
            if opt in _INTERPRETER_VALUE_OPTIONS and rest:
                rest.pop(0)
        if rest:
            program = Path(rest[0]).name
    return _plain_job_name(Path(program).stem if "." in program.lstrip(".") else program)


def _plain_job_name(name: str) -> str:
    """``name`` as a plain token (letters, digits and . _ + : @ -, a letter or digit first), cut to length."""
    plain = re.sub(r"[^A-Za-z0-9._+:@-]+", "_", name).lstrip("._+:@-")[:JOB_NAME_MAX].rstrip("._+:@-")
    return plain or "hpcx"


def _script_name(script: Path) -> str:
    try:
        return check_token("name", script.name) or "hpcx"
    except UsageError:  # a name Slurm would take but hpcx cannot put on an #SBATCH line
        return "hpcx"


def _check_variable_names(variables: dict[str, str]) -> None:
    """--set names become $HPCX_VAR_<NAME> in upper case (as sweeps' $HPCX_PARAM_<NAME>): two names that
    differ only in case would set one variable twice."""
    seen: dict[str, str] = {}
    for name in variables:
        other = seen.setdefault(name.upper(), name)
        if other != name:
            raise UsageError(f"--set {other} and --set {name} both set $HPCX_VAR_{name.upper()}",
                             hint="names are upper-cased in the job: keep one of them")  # fmt: skip


def _spread_tasks(values: dict[str, Any], sources: dict[str, str], ntasks: int, site: Site) -> None:
    """#SBATCH -n N with no node count anywhere: Slurm spreads the tasks over as many nodes as they need, so the
    checks do too (on the partition's largest nodes; without a partition, on the smallest of the largest)."""
    if "nodes" in values or sources.get("ntasks_per_node") != "script":
        return
    part = site.partitions.get(str(values.get("partition")))
    parts = [part] if part else list(site.partitions.values())
    cpus_per_node = min(max([p.cpus_per_node, *(t.cpus for t in p.node_types)]) for p in parts)
    tasks_per_node = max(1, cpus_per_node // parse_count("cpus-per-task", values.get("cpus_per_task", 1)))
    nodes = -(-ntasks // tasks_per_node)
    if part is not None and nodes > part.max_nodes:
        raise RejectedError(f"--ntasks {ntasks} needs {nodes} nodes of {cpus_per_node} CPUs, over partition "
                            f"{part.name}'s MaxNodes {part.max_nodes}",
                            hint=f"ask for at most {tasks_per_node * part.max_nodes} tasks, or another partition")  # fmt: skip
    if nodes > 1:
        values["nodes"], sources["nodes"] = str(nodes), "script"
        values["ntasks_per_node"] = str(-(-ntasks // nodes))


def _check_node_range(text: str, ntasks: int | None, part: Partition) -> None:
    """--nodes=MIN-MAX: Slurm refuses a MAX over the partition's MaxNodes (at most one node per task counts)."""
    low, high = (int(n) for n in text.split("-"))
    most = min(high, ntasks) if ntasks else high
    if most > part.max_nodes:
        raise RejectedError(f"--nodes {text} allows {most} nodes, over partition {part.name}'s MaxNodes "
                            f"{part.max_nodes}", hint=f"use --nodes={low}-{part.max_nodes}")  # fmt: skip


def _check_gpu_type(gpu_type: str, res: Resources, part: Partition) -> None:
    """--gres=gpu:TYPE:N asks for one type of GPU: the partition must have it, where the site says which."""
    offered = {t.gpu_type for t in part.node_types if t.gpus}
    offered |= {part.gpu_type} if part.gpus_per_node else set()
    if None in offered or not offered or gpu_type in offered:
        return
    have = ", ".join(sorted(str(t) for t in offered))
    raise RejectedError(
        f"--gres=gpu:{gpu_type}:{res.gpus_per_node} asks for {gpu_type} GPUs, but partition {part.name} has {have}",
        hint=f"use --gres=gpu:{sorted(str(t) for t in offered)[0]}:{res.gpus_per_node} or another partition",
    )


def with_profile(prep: Prepared, profile: bool | None) -> Prepared:
    """``prep`` with the command line's ``--profile``/``--no-profile`` applied (None: as resolved)."""
    if profile is not None:
        prep.profile, prep.sources["profile"] = profile, "cli"
    return prep


def profile_env(prep: Prepared) -> dict[str, str]:
    """What the ranks find in their environment: with ``--profile`` (or ``defaults.profile: true``) hpcx.run
    records the rank's profile and switches communication tracing on in the program it starts; with the
    command line's ``--no-profile`` nothing records a profile; otherwise the ranks record their samples
    (memory, CPU time) without tracing."""
    if prep.profile:
        return {"HPCX_PROFILE": "1", "HPCX_PROFILE_COMM": "1"}
    return {"HPCX_PROFILE": "0"} if prep.sources.get("profile") == "cli" else {}


def _read_script(path: Path) -> str:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"batch script {str(path)!r} cannot be read: {exc}") from exc
    if not text.startswith("#!"):
        raise UsageError(f"batch script {str(path)!r} has no #! line", hint="start it with #!/bin/bash")
    return text


def _without_python(command: list[str]) -> list[str]:
    if command and Path(command[0]).name.startswith("python"):
        return command[1:]
    return command


def _gres(res: Resources, part: Partition) -> str | None:
    if not res.gpus_per_node:
        return None
    return f"gpu:{part.gpu_type}:{res.gpus_per_node}" if part.gpu_type else f"gpu:{res.gpus_per_node}"


# An array task's id: its index plus the offset of its chunk (sweeps split into arrays below MaxArraySize).
TASK_ID_EXPR = '"$((SLURM_ARRAY_TASK_ID + ${HPCX_TASK_OFFSET:-0}))"'


def run_cmd(python: str, prep: Prepared) -> Shell:
    """``python -m hpcx.run [task options] --``: the wrapper every rank runs its command under."""
    words = f"{quote(python)} -m hpcx.run"
    if prep.array is not None or prep.task_table:
        words += f" --task-id {TASK_ID_EXPR}"
    if prep.task_table:
        words += ' --task-table "$HPCX_RUN_DIR/tasks.jsonl"'
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
    return {"signal": "USR2", "lead_s": min(int(raw), limit_s // 2)}


def context(prep: Prepared, *, run_id: str, run_dir: Path, workdir: Path) -> dict[str, Any]:
    """Everything a template may use. User values stay raw here: the renderer quotes each one."""
    res, site = prep.spec.resources, prep.site
    job = {
        **asdict(res),
        "ntasks": res.ntasks,
        "time": format_time(res.time_min),
        "gres": _gres(res, prep.partition),
        "array": prep.array.text if prep.array else None,
        "array_indices": list(prep.array.indices) if prep.array else [],
        "is_array": prep.array is not None or prep.task_table,  # a sweep's arrays come per chunk, at submit
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
        "run_cmd": run_cmd(site.python or sys.executable, prep),
        "launch": launch_argv(site.launcher_for(prep.partition), res),
        "command": list(prep.spec.command),
        # The command without its leading interpreter, for launchers that start Python themselves (torchrun).
        "script_command": _without_python(list(prep.spec.command)),
        "vars": dict(prep.spec.variables),
        "directives": [{"flag": f, "value": v} for f, v in prep.directives],
        "preempt": preempt_settings(prep),
        "profile_env": profile_env(prep),
        "hpcx_version": __version__,
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
    args = list(prep.passed)
    if prep.array:
        args.append(f"--array={prep.array.text}")
    output, error = log_patterns(prep, run_dir, workdir)
    if not _script_sets(prep, "--output", "-o"):
        args.append(f"--output={output}")
    if not _script_sets(prep, "--output", "-o", "--error", "-e"):  # -o alone: sbatch sends stderr there too
        args.append(f"--error={error}")
    return args + [f"{flag}={value}" for flag, value in prep.directives]


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
    cwd = workdir / (_unchecked_value(prep, "--chdir", "-D") or ".")
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
        "site": {
            "name": prep.site.name,
            "source": prep.site.source,
            "sha256": prep.site.sha256,
            "cluster": prep.site.cluster,
            "scheduler": prep.site.scheduler,
        },
        "template": template,
        "choice": prep.choice,
        "directives": [list(d) for d in prep.directives],
        "unchecked_directives": prep.unchecked,
        **_provenance(workdir, run, prep),
        "versions": {"hpcx": __version__, "python": platform.python_version()},
        "host": platform.node(),
        "user": os.environ.get("USER") or str(os.getuid()),
    }


def submit(prep: Prepared, workdir: Path, root: Path) -> dict[str, Any]:
    """Create the run directory, write script and manifest, submit; on failure leave nothing behind."""
    scheduler = get_scheduler(prep.site.scheduler)
    if prep.site.scheduler != "slurm" and any(f == "--dependency" for f, _ in prep.directives):
        raise UsageError(
            "--after a run that has not finished needs a Slurm site",
            hint="the local backend runs jobs at once, in order: submit when it has finished",
        )
    if not workdir.is_dir():
        raise UsageError(f"working directory {str(workdir)!r} does not exist",
                         hint="jobs run where they were submitted from: create it or submit from elsewhere")  # fmt: skip
    run = create_run(root)
    try:
        logs: dict[str, Any] = {}
        if prep.script_text is None:
            rendered = render_script(prep, run_id=run.id, run_dir=run.dir, workdir=workdir)
            text, args = rendered.text, [f"--array={prep.array.text}"] if prep.array else []
            template = {"path": rendered.template_path, "sha256": rendered.template_sha256}
        else:
            text, args = prep.script_text, script_args(prep, run.dir, workdir)
            template = {"path": None, "sha256": hashlib.sha256(text.encode()).hexdigest()}
            logs = {"log_patterns": sorted(set(log_patterns(prep, run.dir, workdir)))}  # for `hpcx logs`
        script = write_file(run, "job.sbatch", text, mode=0o755)
        atomic_write_json(
            run.dir / "manifest.json", {**manifest(prep, run, template, workdir), "sbatch_args": args, **logs}
        )
        env = {**scrubbed_env(prep.site.allow_env), "HPCX_RUN_ID": run.id, "HPCX_RUN_DIR": str(run.dir),
               **profile_env(prep)}  # fmt: skip
        # sbatch runs in the submission directory, as the user's own sbatch would: $SLURM_SUBMIT_DIR is it
        job_id = scheduler.submit(script, run.dir, env=env, args=args, cwd=workdir)
    except (HpcxError, OSError, KeyboardInterrupt):
        discard_run(run)
        raise
    submitted = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    record_job(run, {"scheduler": prep.site.scheduler, "job_id": job_id, "submitted_at": submitted,
                     "kind": prep.spec.kind})  # fmt: skip
    return {
        "run_id": run.id,
        "run_dir": str(run.dir),
        "job_id": job_id,
        "scheduler": prep.site.scheduler,
        "partition": prep.partition.name,
    }


# --- --after: what a job waits for, from what hpcx knows of each run's outcome ---------------------------------


def after_job_ids(root: Path, keys: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The job ids a job given ``--after KEY ...`` waits for (afterok), decided from each run's outcome as hpcx
    knows it (squeue, else sacct, else the run's accounting.json) rather than left to Slurm, which forgets a
    finished job after MinJobAge and then drops the dependency (the job ran at once, even after a failure):

    - a run that already succeeded needs no dependency (none is given to Slurm);
    - a run that already ended any other way is refused: RejectedError (exit 3) naming its state;
    - a run still pending or running is waited for; a sweep by each of its arrays still active, retries included
      (its finished arrays are judged by their tasks' outcome, a retried task by its last attempt).

    KEY is a run id, a unique prefix of one, or a Slurm job id (of a run, else any job Slurm knows)."""
    waits: list[str] = []
    for key in keys:
        waits += _waits_for(root, key)
    return tuple(dict.fromkeys(waits))


def _waits_for(root: Path, key: str) -> list[str]:
    from hpcx.runs import find_run

    # a job id: of a run, else any job Slurm knows; never a run id prefix (20261207 is both)
    if key.isdigit():
        run = _run_of_job(root, key)
        if run is None:
            return _waits_for_job(key)
    else:
        run = find_run(root, key)
    job = run.job
    if not job.get("job_id"):
        raise RejectedError(f"--after {key}: run {run.id} was never submitted", hint="submit it first")
    if "chunks" in job:
        return _waits_for_sweep(run, key)
    state = _outcome(run)
    if state is None:
        raise RejectedError(
            f"--after {key}: hpcx cannot tell how run {run.id} (job {job['job_id']}) ended: the scheduler no "
            "longer knows the job and the run has no accounting record",
            hint="check the run's logs, then submit without --after if it succeeded",
        )
    return _wait_or_refuse(key, f"run {run.id}", str(job["job_id"]), state)


def _run_of_job(root: Path, job_id: str) -> Run | None:
    """The run that submitted Slurm job ``job_id`` (any array of a sweep), if any: a job id is never taken as a
    run id prefix (run ids start with a date, which job ids can look like)."""
    from hpcx.runs.index import refresh_index

    found = [r["run_id"] for r in refresh_index(root).rows if job_id in r["job_ids"]]
    return Run(found[-1], root / found[-1]) if found else None


def _outcome(run: Run) -> Any:
    """The run's job state (a JobState-like object with state, exit_code, finished), or None when unknown."""
    from hpcx.runs.provenance import ACCOUNTING
    from hpcx.schedulers import JobRef
    from hpcx.schedulers.base import JobState

    job = run.job
    job_id = str(job["job_id"])
    state = get_scheduler(job.get("scheduler", "slurm")).status([JobRef(job_id, run.dir)]).get(job_id)
    if state is not None:
        return state
    acct_path = run.dir / ACCOUNTING  # kept by status/report once the job finished: outlives sacct's memory
    if acct_path.exists():
        from hpcx.fsutil import read_json
        from hpcx.reports.accounting import summarize_accounting

        summary = summarize_accounting(read_json(acct_path))
        if summary and summary.get("finished"):
            return JobState(
                job_id, summary["state"], exit_code=summary["exit_code"], source="accounting.json"
            )
    return None


def _waits_for_job(job_id: str) -> list[str]:
    from hpcx.schedulers import JobRef

    state = get_scheduler("slurm").status([JobRef(job_id, Path.cwd())]).get(job_id)
    if state is None:
        raise RejectedError(
            f"--after {job_id}: Slurm knows no job {job_id} and no run under the runs root submitted it",
            hint="give a run id (`hpcx runs`), or the id of a job Slurm still lists (squeue, sacct)",
        )
    return _wait_or_refuse(job_id, f"job {job_id}", job_id, state)


def _wait_or_refuse(key: str, what: str, job_id: str, state: Any) -> list[str]:
    if not state.finished:
        return [job_id]
    if state.state == "COMPLETED":
        return []  # already satisfied: Slurm would drop a dependency on a job it has forgotten anyway
    code = f", exit code {state.shown_exit_code}" if state.shown_exit_code not in (None, 0) else ""
    given = "--after" if key in what else f"--after {key}"
    raise RejectedError(
        f"{given}: {what} already ended {state.state}{code}, so a job after it would never start",
        hint="run it again (`hpcx rerun`) and wait for the new run, or submit without --after",
    )


def _array_waits(run: Run, job_id: str, state: Any) -> list[str]:
    """What to wait for of one active array of a sweep: the array (afterok), unless one of its own tasks already
    failed (and was retried, or the sweep would have been refused): afterok on that array would never hold, so
    its tasks that have not ended are waited for one by one (afterok:JOB_INDEX), the retry by its own array."""
    from hpcx.schedulers import FINISHED_STATES
    from hpcx.submit.sweep_submit import FAILED_STATES
    from hpcx.submit.sweeps import chunk_tasks

    own = state.task_states or {}
    if not any(s in FAILED_STATES for s in own.values()):
        return [job_id]
    chunks = [c for c in run.job["chunks"] if str(c["job_id"]) == job_id]
    return [
        f"{job_id}_{i}" for _, i, _ in chunk_tasks(chunks) if own.get(i, "PENDING") not in FINISHED_STATES
    ]


def _waits_for_sweep(run: Run, key: str) -> list[str]:
    from hpcx.schedulers import JobRef
    from hpcx.submit.sweep_submit import FAILED_STATES, task_states

    per_task = task_states(run)
    failed = sorted({s for s in per_task.values() if s in FAILED_STATES})
    if failed:
        counts = ", ".join(f"{sum(1 for s in per_task.values() if s == f)} {f}" for f in failed)
        raise RejectedError(
            f"--after {key}: sweep {run.id} has tasks that already ended without success ({counts}), so a job "
            "after it would never start",
            hint=f"hpcx sweep --retry-failed {run.id}, then --after {run.id} waits for the retries too",
        )
    if all(s == "COMPLETED" for s in per_task.values()):
        return []
    arrays = [str(c["job_id"]) for c in run.job["chunks"]]
    states = get_scheduler(run.job.get("scheduler", "slurm")).status([JobRef(j, run.dir) for j in arrays])
    active = [w for j in dict.fromkeys(arrays) if j in states and not states[j].finished
              for w in _array_waits(run, j, states[j])]  # fmt: skip
    if not active:  # every array has ended, yet not every task is known to have completed
        unknown = sorted({s for s in per_task.values() if s != "COMPLETED"})
        raise RejectedError(
            f"--after {key}: sweep {run.id} has ended, but hpcx cannot tell that all its tasks completed "
            f"({', '.join(unknown)})",
            hint=f"check `hpcx status {run.id}`, then submit without --after if they did",
        )
    return active
