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
    build_resources,
    check_token,
    parse_array,
)
from hpcx.submit.preflight import check, check_array, choose_partition
from hpcx.submit.sbatch_script import ScriptDirectives, parse_directives
from hpcx.submit.vocabulary import OPTIONS, PASSED_KEYS, STEP_ENV, flag_of, passed_on, request_key

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD = {
    "time": "time_min",
    "mem": "mem_mb",
    "mem_per_cpu": "mem_per_cpu_mb",
    "mem_per_gpu": "mem_per_gpu_mb",
}


# A request's sbatch options (checked and passed on), as the command line and a sweep spec's resources name them
# (the command line's others: --set, -r, --array).
RESOURCE_KEYS = tuple(request_key(o) for o in OPTIONS)
_CHECKED = tuple(request_key(o) for o in OPTIONS if o.checked)


@dataclass
class Request:
    """What the user asked for, before defaults: resource options as typed, --set pairs, the command."""

    kind: str | None
    options: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    workdir: Path = field(default_factory=Path.cwd)
    named: dict[str, str] = field(default_factory=dict)  # --resource NAME=VALUE
    spelled: dict[str, str] = field(default_factory=dict)  # option key -> the flag typed (-n): errors name it
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
    directives: list[tuple[str, str | None]] = field(default_factory=list)  # extra (flag, value) pairs
    script_text: str | None = None
    unchecked: list[str] = field(default_factory=list)
    user_dirs: tuple[Path, ...] = ()
    array: ArraySpec | None = None
    task_table: bool = False  # a sweep: each array task reads its parameters from the run's tasks.jsonl
    inputs: tuple[str, ...] = ()  # data the job declares it reads: fingerprinted into the manifest
    profile: bool = False  # the ranks record profiles and trace communication (see profile_env)
    passed: list[str] = field(default_factory=list)  # own script: sbatch options beside it, as written
    # sbatch options hpcx does not check, passed on as written; defaults for the job's srun steps (--cpu-bind)
    passed_on: list[tuple[str, str | None]] = field(default_factory=list)
    step_env: dict[str, str] = field(default_factory=dict)
    chdir: str | None = (
        None  # -D of a job hpcx renders: where it runs, relative to where it is submitted from
    )


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


def _named_directives(named: dict[str, str], site: Site) -> list[tuple[str, str | None]]:
    """``--resource NAME=VALUE`` pairs as (flag, value), for resources the site names."""
    out: list[tuple[str, str | None]] = []
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
    res = build_resources({k: x for k, x in v.values.items() if k in _CHECKED}, origins=v.origin)
    kind = "script" if script_text is not None else (v.kind[0] or "serial")
    spec = JobSpec(
        kind=kind, resources=res, command=tuple(request.command), variables=dict(request.variables)
    )
    partition = check(res, site, v.origin)
    array = _checked_array(spec, partition, request)
    unchecked = {k: x for k, x in v.values.items() if k in PASSED_KEYS}
    return Prepared(
        spec,
        _field_sources(v.sources, "script" if script_text is not None else v.kind[1], v.profile[1]),
        partition,
        site,
        v.choice,
        _extra_directives(request, site, unchecked if script_text is None else {}),
        script_text,
        directives.unchecked if directives else [],
        user.template_dirs,
        array,
        inputs=tuple(request.inputs),
        profile=bool(v.profile[0]),
        passed=v.passed,
        passed_on=passed_on({k: x for k, x in unchecked.items() if k != "chdir" or script_text is not None}),
        chdir=str(unchecked["chdir"]) if unchecked.get("chdir") and script_text is None else None,
        step_env={env: str(unchecked[k]) for k, env in STEP_ENV.items() if unchecked.get(k) is not None},
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
    choice: dict[str, Any]  # how the partition was chosen


def _resolve_values(
    request: Request, site: Site, user: UserConfig, directives: ScriptDirectives | None
) -> _Values:
    """The layered values of ``request`` with their sources, completed as Slurm would complete them."""
    own_script = request.script is not None
    _check_variable_names(request.variables)
    values, sources = _layers(request, site, user, directives)
    _one_memory_request(values, sources)
    origin = origins(sources, site_file=site.source, user_file=user.path)  # errors name where a value was set
    if directives is not None:  # the script's own spelling: #SBATCH -n 4 is named -n, not --ntasks
        origin.update({k: ("script", f) for k, f in directives.spelled.items() if sources.get(k) == "script"})
    origin.update({k: ("cli", f) for k, f in request.spelled.items() if sources.get(k) == "cli"})
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
    choice = _partition_and_time(values, sources, site, origin, passed if own_script else None)
    return _Values(values, sources, origin, kind, profile, passed, choice)


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


# Slurm takes one memory request: a higher layer's (the command line over the script over the defaults) stands.
_MEMORY = ("mem", "mem_per_cpu", "mem_per_gpu")
_RANK = ("cli", "script", "env", "user", "site")


def _one_memory_request(values: dict[str, Any], sources: dict[str, str]) -> None:
    given = sorted((k for k in _MEMORY if k in values), key=lambda k: _RANK.index(sources[k]))
    for key in given[1:]:
        if sources[key] != sources[given[0]]:  # the same layer twice is the user's conflict: refused, named
            del values[key], sources[key]


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
    listed = str(values.get("partition", ""))
    if "partition" not in values or "," in listed:  # none, or -p a,b: hpcx picks, among those if listed
        among = listed.split(",") if listed else None
        guess = {k: v for k, v in values.items() if k in _CHECKED and k != "partition"}
        res_guess = build_resources(guess, origins=origin)
        chosen, choice = choose_partition(
            res_guess, site, time_given="time" in values, origins=origin, among=among
        )
        values["partition"], sources["partition"] = chosen.name, "auto"
        if passed is not None:  # the job goes where it was checked, not to Slurm's default partition
            passed[:] = [a for a in passed if not a.startswith("--partition=")] + [
                f"--partition={chosen.name}"
            ]
    part = site.partitions.get(values["partition"])
    if "time" not in values and part is not None and part.default_time_min:
        values["time"], sources["time"] = part.default_time_min, "partition"
    return choice


def _field_sources(sources: dict[str, str], kind_source: str, profile_source: str) -> dict[str, str]:
    """Sources keyed by Resources field (time -> time_min, mem -> mem_mb); unset fields are builtin defaults."""
    out = {_FIELD.get(k, k): v for k, v in sources.items() if k not in PASSED_KEYS}
    for key in RESOURCE_FIELDS:
        out.setdefault(key, "default")
    out["kind"], out["profile"] = kind_source, profile_source
    return out


def _checked_array(spec: JobSpec, partition: Partition, request: Request) -> ArraySpec | None:
    """The array, checked against the partition (the resources were checked with it)."""
    array = parse_array(request.array) if request.array else None
    if array is not None:
        check_array(array, partition)
    elif spec.kind == "array":
        raise UsageError(
            "job kind 'array' needs --array", hint="e.g. --array 0-9 (indices) or 0-99%10 (throttled)"
        )
    return array


def _extra_directives(
    request: Request, site: Site, unchecked: dict[str, Any]
) -> list[tuple[str, str | None]]:
    """The sbatch options a request adds beyond its resources: the options passed on as written, named resources
    (-r) and --after's dependency (with a -d of the user's: both must hold)."""
    # -D: the run's workdir (its --chdir line); -d: beside --after's dependency
    extra = [(f, v) for f, v in passed_on(unchecked) if f not in ("--dependency", "--chdir")]
    extra += _named_directives(request.named, site)
    own = unchecked.get("dependency")
    if request.after:
        # Slurm ends a job whose dependency can never hold (an upstream failed after this submission) instead of
        # leaving it pending as DependencyNeverSatisfied for good.
        after = "afterok:" + ":".join(request.after)
        extra += [("--dependency", f"{after},{own}" if own else after), ("--kill-on-invalid-dep", "yes")]
    elif own:
        extra.append(("--dependency", str(own)))
    return extra


def _passed_options(values: dict[str, Any], sources: dict[str, str]) -> list[str]:
    """What goes on sbatch's command line beside an own script, as written: what the user typed (it overrides
    the script, as with sbatch) and the defaults the user set (HPCX_*, config, site file) for what the script
    leaves open. The script's own directives reach Slurm untouched."""
    out = []
    for key, value in values.items():
        if (
            key not in RESOURCE_KEYS
            or key in STEP_ENV
            or sources.get(key) not in ("cli", "env", "user", "site")
        ):
            continue
        flag = flag_of(key)
        out.append(flag if value is True or value == "" else f"{flag}={value}")
    return out


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
