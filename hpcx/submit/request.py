"""A request and its resolution: the user's options over an own script's #SBATCH lines, HPCX_* variables, the
user config, the site file and builtin defaults, each value with its source; the partition chosen; the checks."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcx.errors import RejectedError, UsageError
from hpcx.site import Partition, Site
from hpcx.site.config import Origin, UserConfig, env_defaults, layered, origins
from hpcx.spec import (
    RESOURCE_FIELDS,
    ArraySpec,
    JobSpec,
    Resources,
    build_resources,
    check_token,
    parse_array,
    parse_count,
)
from hpcx.submit.preflight import check, check_array, choose_partition
from hpcx.submit.sbatch_script import ScriptDirectives, parse_directives

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD = {"time": "time_min", "mem": "mem_mb"}


# A request's resource options, as the command line and a sweep spec's resources: name them (the command line's
# others: --set, -r, --array).
RESOURCE_KEYS = (
    "partition",
    "nodes",
    "ntasks_per_node",
    "cpus_per_task",
    "gpus_per_node",
    "mem",
    "time",
    "account",
    "qos",
    "name",
)


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
    script_text = _read_script(request.script) if request.script is not None else None
    directives = parse_directives(script_text) if script_text is not None else None
    v = _resolve_values(request, site, user, directives)
    res = build_resources(v.values, origins=v.origin)
    kind = "script" if script_text is not None else (v.kind[0] or "serial")
    spec = JobSpec(
        kind=kind, resources=res, command=tuple(request.command), variables=dict(request.variables)
    )
    partition = check(res, site, v.origin)
    array = _checked_shape(spec, partition, request, directives, v.node_range)
    return Prepared(
        spec,
        _field_sources(v.sources, "script" if script_text is not None else v.kind[1], v.profile[1]),
        partition,
        site,
        v.choice,
        _extra_directives(request, site),
        script_text,
        directives.unchecked if directives else [],
        user.template_dirs,
        array,
        inputs=tuple(request.inputs),
        profile=bool(v.profile[0]),
        passed=v.passed,
    )


@dataclass
class _Values:
    """A request's values part-way through resolution: layered, with the job name, partition and time set."""

    values: dict[str, Any]
    sources: dict[str, str]
    origin: dict[str, Origin]  # where each value was set, for the errors
    kind: tuple[Any, str]  # (value, source): the job kind is no resource
    profile: tuple[Any, str]  # (value, source): nor is --profile (see with_profile)
    passed: list[str]  # an own script: the sbatch options given beside it
    node_range: str | None  # an own script's --nodes=MIN-MAX
    choice: dict[str, Any]  # how the partition was chosen


def _resolve_values(
    request: Request, site: Site, user: UserConfig, directives: ScriptDirectives | None
) -> _Values:
    """The layered values of ``request`` with their sources, completed as Slurm would complete them."""
    own_script = request.script is not None
    _check_variable_names(request.variables)
    values, sources = _layers(request, site, user, directives)
    origin = origins(sources, site_file=site.source, user_file=user.path)  # errors name where a value was set
    kind = values.pop("kind", None), sources.pop("kind", "default")
    profile = values.pop("profile", False), sources.pop("profile", "default")  # --profile: with_profile
    if request.kind:
        kind = request.kind, "cli"
    if not own_script and not request.command:
        raise UsageError(
            "no command given",
            hint="put it after the kind and its options, e.g. hpcx submit serial python train.py",
        )
    passed = _passed_options(values, sources) if own_script else []
    _default_name(request, values, sources, passed)
    node_range = _node_range(values) if own_script else None
    if directives is not None and directives.ntasks:
        _spread_tasks(values, sources, directives.ntasks, site)
    choice = _partition_and_time(values, sources, site, origin, passed if own_script else None)
    return _Values(values, sources, origin, kind, profile, passed, node_range, choice)


def _layers(
    request: Request, site: Site, user: UserConfig, directives: ScriptDirectives | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each value from the first layer that sets it, and that layer's name: cli > script > env > user > site."""
    return layered(
        [
            ("cli", request.options),
            ("script", directives.options if directives else {}),
            ("env", env_defaults()),
            ("user", user.defaults),
            ("site", site.defaults),
        ]
    )


def _default_name(
    request: Request, values: dict[str, Any], sources: dict[str, str], passed: list[str]
) -> None:
    """The job name when none is given: an own script's file name, as sbatch's default (the run's copy is
    job.sbatch, so it is said to sbatch), else the program the command runs."""
    if "name" in values:
        return
    if request.script is not None:
        passed.append(f"--job-name={request.script.name}")
        values["name"], sources["name"] = _script_name(request.script), "default"
    else:  # squeue and sacct show what runs, not a column of 'hpcx'
        values["name"], sources["name"] = default_job_name(request.command), "default"


def _node_range(values: dict[str, Any]) -> str | None:
    """An own script's --nodes=MIN-MAX: the job must fit on MIN nodes, which the checks see; None without one."""
    if not _NODE_RANGE.match(str(values.get("nodes", ""))):
        return None
    node_range = str(values["nodes"])
    values["nodes"] = node_range.split("-")[0]
    return node_range


def _partition_and_time(
    values: dict[str, Any],
    sources: dict[str, str],
    site: Site,
    origin: dict[str, Origin],
    passed: list[str] | None,
) -> dict[str, Any]:
    """Choose the partition where none is given (how: the returned choice) and take its default time where no
    layer gives one; ``passed``, for an own script, gets the chosen partition."""
    choice: dict[str, Any] = {}
    if "partition" not in values:
        res_guess = build_resources({k: v for k, v in values.items() if k != "partition"}, origins=origin)
        chosen, choice = choose_partition(res_guess, site, time_given="time" in values, origins=origin)
        values["partition"], sources["partition"] = chosen.name, "auto"
        if passed is not None:  # the job goes where it was checked, not to Slurm's default partition
            passed.append(f"--partition={chosen.name}")
    part = site.partitions.get(values["partition"])
    if "time" not in values and part is not None and part.default_time_min:
        values["time"], sources["time"] = part.default_time_min, "partition"
    return choice


def _field_sources(sources: dict[str, str], kind_source: str, profile_source: str) -> dict[str, str]:
    """Sources keyed by Resources field (time -> time_min, mem -> mem_mb); unset fields are builtin defaults."""
    out = {_FIELD.get(k, k): v for k, v in sources.items()}
    for key in RESOURCE_FIELDS:
        out.setdefault(key, "default")
    out["kind"], out["profile"] = kind_source, profile_source
    return out


def _checked_shape(
    spec: JobSpec,
    partition: Partition,
    request: Request,
    directives: ScriptDirectives | None,
    node_range: str | None,
) -> ArraySpec | None:
    """What the partition's checks leave out: an own script's GPU type and node range, and the array."""
    if directives is not None and directives.gpu_type:
        _check_gpu_type(directives.gpu_type, spec.resources, partition)
    if node_range:
        _check_node_range(node_range, directives.ntasks if directives else None, partition)
    array = parse_array(request.array) if request.array else None
    if array is not None:
        check_array(array, partition)
    elif spec.kind == "array":
        raise UsageError(
            "job kind 'array' needs --array", hint="e.g. --array 0-9 (indices) or 0-99%10 (throttled)"
        )
    return array


def _extra_directives(request: Request, site: Site) -> list[tuple[str, str]]:
    """The sbatch options a request adds beyond its resources: named resources (-r) and --after's dependency."""
    extra = _named_directives(request.named, site)
    if request.after:
        # Slurm ends a job whose dependency can never hold (an upstream failed after this submission) instead of
        # leaving it pending as DependencyNeverSatisfied for good.
        extra += [("--dependency", "afterok:" + ":".join(request.after)), ("--kill-on-invalid-dep", "yes")]
    return extra


# Request keys -> sbatch's own option names, for what hpcx passes to sbatch beside a user's own script.
_SBATCH_OPTION = {
    "partition": "--partition",
    "nodes": "--nodes",
    "ntasks_per_node": "--ntasks-per-node",
    "cpus_per_task": "--cpus-per-task",
    "gpus_per_node": "--gpus-per-node",
    "mem": "--mem",
    "time": "--time",
    "account": "--account",
    "qos": "--qos",
    "name": "--job-name",
}
_NODE_RANGE = re.compile(r"^\d+-\d+$")


def _passed_options(values: dict[str, Any], sources: dict[str, str]) -> list[str]:
    """What goes on sbatch's command line beside an own script, as written: what the user typed (it overrides
    the script, as with sbatch) and the defaults the user set (HPCX_*, config, site file) for what the script
    leaves open. The script's own directives reach Slurm untouched."""
    return [
        f"{_SBATCH_OPTION[k]}={v}"
        for k, v in values.items()
        if k in _SBATCH_OPTION and sources.get(k) in ("cli", "env", "user", "site")
    ]


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
            raise UsageError(
                f"--set {other} and --set {name} both set $HPCX_VAR_{name.upper()}",
                hint="names are upper-cased in the job: keep one of them",
            )


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
        raise RejectedError(
            f"--ntasks {ntasks} needs {nodes} nodes of {cpus_per_node} CPUs, over partition "
            f"{part.name}'s MaxNodes {part.max_nodes}",
            hint=f"ask for at most {tasks_per_node * part.max_nodes} tasks, or another partition",
        )
    if nodes > 1:
        values["nodes"], sources["nodes"] = str(nodes), "script"
        values["ntasks_per_node"] = str(-(-ntasks // nodes))


def _check_node_range(text: str, ntasks: int | None, part: Partition) -> None:
    """--nodes=MIN-MAX: Slurm refuses a MAX over the partition's MaxNodes (at most one node per task counts)."""
    low, high = (int(n) for n in text.split("-"))
    most = min(high, ntasks) if ntasks else high
    if most > part.max_nodes:
        raise RejectedError(
            f"--nodes {text} allows {most} nodes, over partition {part.name}'s MaxNodes {part.max_nodes}",
            hint=f"use --nodes={low}-{part.max_nodes}",
        )


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
    """``prep`` with the command line's ``--profile``/``--no-profile`` applied (None: as resolved), as a new
    value: ``prep`` itself is left as it was."""
    if profile is None:
        return prep
    return dataclasses.replace(prep, profile=profile, sources={**prep.sources, "profile": "cli"})


def _read_script(path: Path) -> str:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"batch script {str(path)!r} cannot be read: {exc}") from exc
    if not text.startswith("#!"):
        raise UsageError(f"batch script {str(path)!r} has no #! line", hint="start it with #!/bin/bash")
    return text
