"""Pre-flight warnings for a training script whose framework would not fit the job it is submitted as: a literal
``Trainer(num_nodes=4)`` or ``devices=`` in the script (or in a LightningCLI config file or its ``--trainer.*``
options), torchrun's ``--nnodes``/``--nproc-per-node`` and accelerate's ``--num_machines``/``--num_processes``
against -N, the tasks per node and the GPUs per node. Such a job would hang at its rendezvous until the time limit,
or stop at once: each disagreement is one sentence naming both numbers, where each was set and the fix.

The user's files are read, never imported or run: a regular file of at most MAX_FILE_BYTES, parsed with ast (or
yaml.safe_load for a config file); a file that cannot be read or parsed gives no warning, never an error. Only a
number that both sides spell out is compared; a warning never refuses the job."""

from __future__ import annotations

import ast
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from hpcx.site.config import origins
from hpcx.spec import Origin, Resources, parse_gres, spell
from hpcx.submit.command_line import run_dir_of
from hpcx.submit.request import Prepared

MAX_FILE_BYTES = 2 * 1024 * 1024  # a training script or config file is far smaller; more is not read at all

__all__ = [
    "MAX_FILE_BYTES",
    "Command",
    "framework_warnings",
    "parse_command",
    "read_bounded",
    "script_settings",
]


@dataclass(frozen=True)
class Count:
    """One number of the job's layout (nodes, processes per node): its value, the phrase that says where it was
    asked ("the job asks -N 2 (2 nodes)") and the change on that side that would make it ``n`` ("ask -N 4")."""

    value: int
    asked: str
    change: Callable[[int], str]
    given: bool = True  # False: a default nobody asked for (sbatch's one task per node)


@dataclass(frozen=True)
class Setting:
    """A framework's number found in the user's files or command line: ``key`` (num_nodes, devices), its value,
    where it is ("train.py:14 Trainer(num_nodes=4)") and the change there that would make it ``n``."""

    key: str
    value: int
    where: str
    change: Callable[[int], str]


@dataclass(frozen=True)
class Command:
    """What a job's command runs: the Python script (as written) or module, the words after it, and the launcher
    in front of it (torchrun, accelerate launch) with its options as typed (flag -> value)."""

    script: str | None = None
    module: str | None = None
    script_args: tuple[str, ...] = ()
    launcher: str | None = None
    options: dict[str, str] = field(default_factory=dict)


# --- the command ---------------------------------------------------------------------------------------------

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"python[0-9.]*")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_PYTHON_VALUE_OPTIONS = ("-W", "-X", "-Q")  # options whose value is the next word
_TORCHRUN_MODULES = ("torch.distributed.run", "torch.distributed.launch")
# A launcher's options that take no value; any other option takes the next word (unless that is a .py file).
_NO_VALUE = {
    "torchrun": {"--standalone", "--no-python", "--no_python", "--run-path", "--run_path", "-m", "--module"},
    "accelerate launch": {
        *("--cpu", "--multi_gpu", "--multi-gpu", "--tpu", "--use_deepspeed", "--use-deepspeed", "--use_fsdp"),
        *("--use-fsdp", "--use_megatron_lm", "--use-megatron-lm", "--use_xpu", "--use-xpu", "-m", "--module"),
        *("--no_python", "--no-python", "--debug", "-q", "--quiet", "--same_network", "--same-network"),
    },
}


def parse_command(words: Sequence[str]) -> Command:
    """The script, module and launcher of a job's command: ``python [opts] train.py ARGS``, ``python -m pkg.mod``,
    ``torchrun [opts] train.py``, ``python -m torch.distributed.run [opts] train.py``, ``accelerate launch [opts]
    train.py`` (``VAR=value`` words in front are skipped). Anything else is an empty Command."""
    rest = list(words)
    while rest and _ASSIGNMENT.match(rest[0]):
        rest.pop(0)
    program = Path(rest[0]).name if rest else ""
    if program == "torchrun":
        return _launched("torchrun", rest[1:])
    if program == "accelerate" and rest[1:2] == ["launch"]:
        return _launched("accelerate launch", rest[2:])
    return _python(rest[1:]) if _PYTHON.fullmatch(program) else Command()


def _python(rest: list[str]) -> Command:
    """``python``'s own options, then its script or -m module (-c code has neither)."""
    i = 0
    while i < len(rest) and rest[i].startswith("-") and rest[i] != "-":
        opt = rest[i]
        if opt == "-c":
            return Command()
        if opt.startswith("-m") and not opt.startswith("--"):
            module = opt[2:] or (rest[i + 1] if i + 1 < len(rest) else "")
            after = rest[i + (1 if opt[2:] else 2) :]
            if module in _TORCHRUN_MODULES:
                return _launched("torchrun", after)
            return Command(module=module, script_args=tuple(after))
        i += 2 if opt in _PYTHON_VALUE_OPTIONS else 1
    return Command(script=rest[i], script_args=tuple(rest[i + 1 :])) if i < len(rest) else Command()


def _launched(launcher: str, rest: list[str]) -> Command:
    """A launcher's options (``--flag value``, ``--flag=value``) up to the script it starts."""
    options: dict[str, str] = {}
    i = 0
    while i < len(rest) and rest[i].startswith("-") and rest[i] != "--":
        flag, eq, value = rest[i].partition("=")
        takes = not eq and flag not in _NO_VALUE[launcher] and i + 1 < len(rest)
        takes = takes and not rest[i + 1].endswith(".py")  # a flag hpcx does not know, before the script
        options[flag] = rest[i + 1] if takes else value
        i += 2 if takes else 1
    i += 1 if i < len(rest) and rest[i] == "--" else 0
    if i >= len(rest) or {"--no-python", "--no_python"} & options.keys():
        return Command(launcher=launcher, options=options)
    script, args = rest[i], tuple(rest[i + 1 :])
    if {"-m", "--module"} & options.keys():
        return Command(module=script, script_args=args, launcher=launcher, options=options)
    return Command(script=script, script_args=args, launcher=launcher, options=options)


# --- the user's files ----------------------------------------------------------------------------------------


def read_bounded(path: Path, limit: int = MAX_FILE_BYTES) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; None for anything else (missing,
    unreadable, too big, a FIFO or device: opened without blocking and never read)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            data = f.read(limit + 1)
    except OSError:
        return None
    return data if len(data) <= limit else None


def _script_source(cmd: Command, workdir: Path) -> tuple[bytes, str] | None:
    """The bytes of the command's script, or of ``python -m pkg.mod``'s pkg/mod.py or pkg/mod/__main__.py, under
    the job's directory, and its name as the warning gives it; None where there is none to read."""
    if cmd.module is not None and _MODULE.fullmatch(cmd.module):
        base = Path(*cmd.module.split("."))
        candidates = [(workdir / rel, str(rel)) for rel in (base.with_suffix(".py"), base / "__main__.py")]
    elif cmd.script is not None and cmd.script != "-":  # python - reads the program from stdin
        candidates = [(workdir / cmd.script, cmd.script)]
    else:
        return None
    for path, label in candidates:
        source = read_bounded(path)
        if source is not None:
            return source, label
    return None


def _int_literal(node: ast.expr) -> int | None:
    """A whole number >= 1 written as such (``4``); None for "auto", -1, lists, names, booleans."""
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 1:
        return node.value
    return None


def _framework_call(node: ast.AST) -> str | None:
    """``Trainer``/``pl.Trainer``/``L.Fabric``... as written, where ``node`` calls one; else None."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    return ast.unparse(func) if name in ("Trainer", "Fabric") else None


_KEYS = ("num_nodes", "devices")


def script_settings(source: bytes, label: str) -> dict[str, Setting]:
    """Lightning's ``num_nodes=``/``devices=`` in ``source`` (a Python file named ``label``), keyed by name, where
    every Trainer or Fabric call that passes one passes the same whole-number literal: a second Trainer with other
    values (a test on one device) or one computed value makes the number unknown, and it is left out."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    found: dict[str, list[Setting | None]] = {k: [] for k in _KEYS}
    for call, kw in _framework_keywords(tree):
        value = _int_literal(kw.value)
        where = f"{label}:{kw.value.lineno} {call}({kw.arg}={value})"
        found[str(kw.arg)].append(
            None if value is None else Setting(str(kw.arg), value, where, _set_kwarg(str(kw.arg)))
        )
    return {k: v[0] for k, v in found.items() if v and v[0] and all(s and s.value == v[0].value for s in v)}


def _framework_keywords(tree: ast.AST) -> list[tuple[str, ast.keyword]]:
    """(the call as written, the keyword) for each num_nodes= or devices= of a Trainer or Fabric call."""
    out = []
    for node in ast.walk(tree):
        call = _framework_call(node)
        if call is not None and isinstance(node, ast.Call):
            out += [(call, kw) for kw in node.keywords if kw.arg in _KEYS]
    return out


def _set_kwarg(key: str) -> Callable[[int], str]:
    return lambda n: f"set {key}={n}"


def _yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; {} where it cannot be read or parsed."""
    data = read_bounded(path)
    try:
        doc = yaml.safe_load(data.decode()) if data is not None else None
    except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: bad UTF-8, a date like 2024-13-45
        return {}
    return doc if isinstance(doc, dict) else {}


def _config_settings(word: str, workdir: Path) -> dict[str, Setting]:
    """``trainer: {num_nodes: N, devices: D}`` of a LightningCLI config file (``word`` as the command names it)."""
    trainer = _yaml_mapping(workdir / word).get("trainer")
    if not isinstance(trainer, dict):
        return {}
    out: dict[str, Setting] = {}
    for key in _KEYS:
        value = trainer.get(key)
        if type(value) is int and value >= 1:
            out[key] = Setting(key, value, f"{word}'s trainer.{key}: {value}", _set_yaml(key, word))
    return out


def _set_yaml(key: str, word: str) -> Callable[[int], str]:
    return lambda n: f"set trainer.{key}: {n} in {word}"


def _option_words(args: Sequence[str]) -> list[tuple[str, str]]:
    """(flag, value) for each option of ``args`` written ``--flag value`` or ``--flag=value``."""
    out = []
    for i, word in enumerate(args):
        flag, eq, value = word.partition("=")
        if word.startswith("-") and (eq or i + 1 < len(args)):
            out.append((flag, value if eq else args[i + 1]))
    return out


def args_settings(args: Sequence[str], workdir: Path) -> dict[str, Setting]:
    """A LightningCLI's numbers from the script's arguments, later ones winning as in jsonargparse: each
    ``--config FILE``/``-c FILE``'s trainer section and ``--trainer.num_nodes N``/``--trainer.devices D``."""
    out: dict[str, Setting] = {}
    for flag, value in _option_words(args):
        if flag in ("--config", "-c"):
            out.update(_config_settings(value, workdir))
        elif (
            flag.startswith("--trainer.")
            and flag[len("--trainer.") :] in _KEYS
            and value.isascii()
            and value.isdigit()
        ):
            key = flag[len("--trainer.") :]
            if int(value) >= 1:
                out[key] = Setting(key, int(value), f"{flag} {value}", _pass(flag))
    return out


def _pass(flag: str) -> Callable[[int], str]:
    return lambda n: f"pass {flag} {n}"


def _settings(cmd: Command, workdir: Path) -> dict[str, Setting]:
    """Lightning's numbers for the command's script: the script's literals, under those its arguments give."""
    found = _script_source(cmd, workdir)
    return {**(script_settings(*found) if found else {}), **args_settings(cmd.script_args, workdir)}


# --- the job -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """The job's layout where the request fixes it: nodes, tasks per node, GPUs per node."""

    nodes: Count | None
    tasks: Count | None
    gpus: Count | None
    # torch-ddp --set mode=torchrun: the template's own torchrun starts the command's processes
    torchrun_mode: bool


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _request_count(
    key: str, flag: str, value: int, origin: Origin | None, units: tuple[str, str], typed: str = ""
) -> Count:
    """A number of the request, named as it was set: ``-N 2`` typed, ``HPCX_NODES=2``, a default never asked."""
    layer = origin[0] if origin else "default"
    typed_flag = origin[1] if origin and layer == "cli" and origin[1] else flag
    given = layer not in ("default", "auto", "partition")
    if not given:
        asked = f"the job has {_plural(value, *units)} (no {flag} given)"
    else:
        asked = f"the job asks {spell(key, typed or value, origin)} ({_plural(value, *units)})"
    return Count(value, asked, lambda n: f"ask {typed_flag} {n}", given)


_GPUS = ("GPU per node", "GPUs per node")
_TASKS = ("task per node", "tasks per node")


def _gpu_count(res: Resources, o: dict[str, Origin]) -> Count:
    """GPUs per node, named by the option that set them (--gres wins over --gpus-per-node, as in Slurm)."""
    if res.gres_gpus:
        count = _request_count("gres", "--gres", res.gres_gpus, o.get("gres"), _GPUS, str(res.gres))
        return replace(count, change=_gres_change(str(res.gres)))
    typed = f"{res.gpu_type}:{res.gpus_per_node}" if res.gpu_type else ""
    return _request_count(
        "gpus_per_node", "--gpus-per-node", res.gpus_per_node, o.get("gpus_per_node"), _GPUS, typed
    )


def _gres_change(gres: str) -> Callable[[int], str]:
    """``ask --gres gpu:tesla:N,nvme:1``: the --gres list as given with its GPU entry counting N (``--gres N`` names
    no GPU); with several GPU entries, the number they should add up to."""
    entries = parse_gres(gres)
    if sum(g.name == "gpu" for g in entries) != 1:
        return lambda n: f"ask --gres for {_plural(n, *_GPUS)}"
    return lambda n: (
        "ask --gres " + ",".join(str(replace(g, count=n) if g.name == "gpu" else g) for g in entries)
    )


def _job(prep: Prepared, o: dict[str, Origin]) -> _Job:
    """What the request fixes: nodes unless Slurm picks them (-N MIN-MAX, -n without -N), tasks per node unless
    -n or --ntasks-per-gpu leave their spread to Slurm, GPUs per node where asked per node."""
    res = prep.spec.resources
    torchrun_mode = prep.spec.kind == "torch-ddp" and prep.spec.variables.get("mode") == "torchrun"
    spread = res.ntasks is not None or res.ntasks_per_gpu is not None
    nodes_fixed = res.nodes_max is None and (not spread or prep.sources.get("nodes") not in (None, "default"))
    nodes = (
        _request_count("nodes", "-N", res.nodes, o.get("nodes"), ("node", "nodes")) if nodes_fixed else None
    )
    tasks = None
    if (
        not spread
    ):  # with -n, how many land on each node (or the template's torchrun's share) is not one number
        tasks = _request_count(
            "ntasks_per_node", "--ntasks-per-node", res.ntasks_per_node, o.get("ntasks_per_node"), _TASKS
        )
    gpus = _gpu_count(res, o) if res.gpus_on_node else None
    return _Job(nodes, tasks, gpus, torchrun_mode)


def _origins(prep: Prepared, spelled: dict[str, str], user_file: Path | None) -> dict[str, Origin]:
    """Where each request value was set, with the flag as typed on the command line (-N, --nodes)."""
    out = origins(prep.sources, site_file=prep.site.source, user_file=user_file)
    out.update({k: ("cli", f) for k, f in spelled.items() if prep.sources.get(k) == "cli"})
    return out


# --- the comparisons -----------------------------------------------------------------------------------------


def _nodes_ranks(n: int) -> str:
    return f"{n} node's ranks" if n == 1 else f"{n} nodes' ranks"


def _per_node(n: int) -> str:
    return _plural(n, "process per node", "processes per node")


def _waits(who: str, noun: Callable[[int], str], setting: int, job: int) -> str:
    """What the framework would do with ``setting`` where the job has ``job``."""
    if setting > job:
        return f"{who} would wait for {noun(setting)} and hang until the time limit"
    return f"{who} would count {noun(setting)}, not {job}: it stops with an error or leaves the others idle"


def _mismatch(s: Setting | None, job: Count | None, effect: Callable[[int, int], str]) -> list[str]:
    """One sentence where both numbers are known and differ: both, where each was set, what happens, the fix."""
    if s is None or job is None or s.value == job.value:
        return []
    return [
        f"{s.where} but {job.asked}: {effect(s.value, job.value)}; {job.change(s.value)} or {s.change(job.value)}"
    ]


def _launcher_int(cmd: Command, *names: str) -> tuple[str, int] | None:
    """The flag as typed and its whole-number value, for the first of ``names`` the launcher was given; None for
    none or a value that is no plain count (gpu, auto, 1:4)."""
    for flag in names:
        value = cmd.options.get(flag)
        if value is not None and value.isascii() and value.isdigit() and int(value) >= 1:
            return flag, int(value)
    return None


def _launcher_setting(cmd: Command, key: str, *names: str) -> Setting | None:
    found = _launcher_int(cmd, *names)
    if found is None:
        return None
    flag, value = found
    return Setting(key, value, f"{cmd.launcher} {flag} {value}", _pass(flag))


def _accelerate_setting(cmd: Command, key: str, workdir: Path) -> Setting | None:
    """accelerate's num_machines or num_processes: its option, else its --config_file's value."""
    found = _launcher_setting(cmd, key, f"--{key}", f"--{key.replace('_', '-')}")
    word = cmd.options.get("--config_file") or cmd.options.get("--config-file")
    if found is not None or not word:
        return found
    value = _yaml_mapping(workdir / word).get(key)
    if type(value) is not int or value < 1:
        return None
    return Setting(key, value, f"{word}'s {key}: {value}", lambda n: f"set {key}: {n} in {word}")


def _slots(job: _Job) -> Count | None:
    """What a launcher's processes per node should match: the GPUs per node, else the tasks per node where they
    were asked (a launcher in a job of one task, sbatch's default, may start several processes on its CPUs)."""
    return job.gpus or (job.tasks if job.tasks and job.tasks.given else None)


def _in_all(job: _Job) -> Count | None:
    """The job's processes in all (nodes x GPUs or tasks per node), for accelerate's --num_processes."""
    per = _slots(job)
    if job.nodes is None or per is None:
        return None
    n = job.nodes.value
    return Count(
        n * per.value,
        f"{per.asked} on {_plural(n, 'node', 'nodes')} ({n * per.value} in all)",
        lambda t: per.change(t // n) if t % n == 0 else f"ask {t} in all",
    )


def _rendezvous(launcher: str | None) -> Callable[[int, int], str]:
    return lambda s, j: _waits(f"{launcher}'s rendezvous", lambda n: _plural(n, "node", "nodes"), s, j)


def _launcher_warnings(cmd: Command, job: _Job, workdir: Path) -> list[str]:
    """torchrun's or accelerate's own numbers against the request."""
    if cmd.launcher == "torchrun":
        procs = _launcher_setting(cmd, "nproc_per_node", "--nproc-per-node", "--nproc_per_node")
        return [
            *_mismatch(_launcher_setting(cmd, "nnodes", "--nnodes"), job.nodes, _rendezvous(cmd.launcher)),
            *_mismatch(procs, _slots(job), lambda s, j: f"torchrun would start {_per_node(s)}"),
        ]
    if cmd.launcher == "accelerate launch":
        machines = _accelerate_setting(cmd, "num_machines", workdir)
        procs = _accelerate_setting(cmd, "num_processes", workdir)
        return [
            *_mismatch(machines, job.nodes, _rendezvous(cmd.launcher)),
            *_mismatch(procs, _in_all(job), lambda s, j: f"accelerate would start {s} processes in all"),
        ]
    return []


def _runs_with(cmd: Command, s: Setting | None) -> Count | None:
    """A launcher's number as the script meets it: "torchrun runs it with --nnodes 2"."""
    if s is None:
        return None
    return Count(s.value, f"{cmd.launcher} runs it with {s.where.removeprefix(f'{cmd.launcher} ')}", s.change)


def _torchrun_layout(cmd: Command) -> tuple[Count | None, Count | None]:
    """The nodes and processes per node torchrun gives the script: its options, else its defaults (1 and 1)."""
    nodes = _runs_with(cmd, _launcher_setting(cmd, "nnodes", "--nnodes"))
    procs = _runs_with(cmd, _launcher_setting(cmd, "nproc_per_node", "--nproc-per-node", "--nproc_per_node"))
    if nodes is None and "--nnodes" not in cmd.options:  # --nnodes 1:4 (elastic) is not one number
        said = "--standalone" if "--standalone" in cmd.options else "its default --nnodes 1"
        nodes = Count(1, f"torchrun runs it with {said}", _pass("--nnodes"))
    if procs is None and not {"--nproc-per-node", "--nproc_per_node"} & cmd.options.keys():
        procs = Count(1, "torchrun runs it with its default --nproc-per-node 1", _pass("--nproc-per-node"))
    return nodes, procs


def _accelerate_layout(cmd: Command, workdir: Path) -> tuple[Count | None, Count | None]:
    """The machines accelerate runs the script on and its processes per machine (--num_processes is in all)."""
    machines = _accelerate_setting(cmd, "num_machines", workdir)
    total = _accelerate_setting(cmd, "num_processes", workdir)
    if machines is None or total is None or total.value % machines.value:
        return _runs_with(cmd, machines), None
    m = machines.value
    said = total.where.removeprefix(f"{cmd.launcher} ")
    per = Count(
        total.value // m,
        f"{cmd.launcher} runs it with {said} on {_plural(m, 'machine', 'machines')}",
        lambda n: total.change(n * m),
    )
    return _runs_with(cmd, machines), per


def _lightning_layout(cmd: Command, job: _Job, workdir: Path) -> tuple[Count | None, Count | None]:
    """The nodes and processes per node the script's Lightning meets: a launcher's in the command, the template's
    torchrun's (GPUs, else tasks per node), else one rank per task (the tasks per node)."""
    if cmd.launcher == "torchrun":
        return _torchrun_layout(cmd)
    if cmd.launcher == "accelerate launch":
        return _accelerate_layout(cmd, workdir)
    return job.nodes, ((job.gpus or job.tasks) if job.torchrun_mode else job.tasks)


def framework_warnings(
    prep: Prepared, workdir: Path, spelled: dict[str, str] | None = None, user_file: Path | None = None
) -> list[str]:
    """One sentence for each number of the job's training framework that disagrees with the request: Lightning's
    literal num_nodes/devices (the script, its LightningCLI config and --trainer.* options) against the nodes and
    processes per node it will meet, and a torchrun or accelerate launcher's own numbers against -N and the GPUs or
    tasks per node. ``workdir`` is where hpcx submit runs (-D is applied), ``spelled`` the request's flags as typed
    (key -> -N), ``user_file`` the user config. An own batch script, or a number not spelled out, gives none."""
    if prep.script_text is not None or not prep.spec.command:
        return []
    try:
        return _warnings(prep, workdir, spelled or {}, user_file)
    except Exception:  # a warning the check cannot work out is no reason to stop the submission
        return []


def _warnings(prep: Prepared, workdir: Path, spelled: dict[str, str], user_file: Path | None) -> list[str]:
    job = _job(prep, _origins(prep, spelled, user_file))
    cmd = parse_command(prep.spec.command)
    workdir = run_dir_of(prep, workdir)
    out = [] if job.torchrun_mode else _launcher_warnings(cmd, job, workdir)
    found = _settings(cmd, workdir)
    nodes, per_node = _lightning_layout(cmd, job, workdir)
    out += _mismatch(found.get("num_nodes"), nodes, lambda s, j: _waits("Lightning", _nodes_ranks, s, j))
    out += _mismatch(found.get("devices"), per_node, lambda s, j: _waits("Lightning", _per_node, s, j))
    return out
