"""sbatch's job options as hpcx reads them: each spelling (long and short), the request key it sets, whether hpcx
checks it or passes it on to Slurm as written, and the group `sbatch --help` lists it under. One table for the
command line, an own script's #SBATCH lines and a sweep spec's ``resources:``. Pure data and lookups."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

PARALLEL, CONSTRAINT, CONSUMABLE, AFFINITY, GPU = (
    "Parallel run options",
    "Constraint options",
    "Consumable resources related options",
    "Affinity/Multi-core options",
    "GPU scheduling options",
)
GROUPS = (PARALLEL, CONSTRAINT, CONSUMABLE, AFFINITY, GPU)


@dataclass(frozen=True)
class Option:
    """One sbatch option. ``value``: "required" (--opt=V), "flag" (--opt) or "optional" (--opt[=V])."""

    long: str
    short: str | None
    group: str
    help: str
    checked: bool = False  # hpcx reasons about it before Slurm sees it (else: passed on, not checked)
    value: str = "required"
    metavar: str = "VALUE"

    @property
    def key(self) -> str:
        """The request key: the long name with _ for - (``--mem-per-cpu`` -> ``mem_per_cpu``)."""
        return self.long[2:].replace("-", "_")


def _o(long: str, short: str | None, group: str, help: str, **kw: object) -> Option:
    return Option(long, short, group, help, **kw)  # type: ignore[arg-type]


OPTIONS: tuple[Option, ...] = (
    # checked: the resource model (hpcx.spec.Resources) and the pre-flight reason about these
    _o(
        "--partition",
        "-p",
        PARALLEL,
        "Partition, or a comma list to choose among (default: chosen "
        "automatically, the one that fits with the least waste).",
        checked=True,
        metavar="NAME[,NAME...]",
    ),
    _o("--nodes", "-N", PARALLEL, "Nodes: N or MIN-MAX.", checked=True, metavar="N[-M]"),
    _o(
        "--ntasks",
        "-n",
        PARALLEL,
        "Tasks (ranks) in all; Slurm spreads them over the nodes.",
        checked=True,
        metavar="N",
    ),
    _o("--ntasks-per-node", None, PARALLEL, "Tasks (ranks) per node.", checked=True, metavar="N"),
    _o("--cpus-per-task", "-c", PARALLEL, "CPUs per task.", checked=True, metavar="N"),
    _o(
        "--time",
        "-t",
        PARALLEL,
        "Wall-clock limit: MM, HH:MM:SS, D-HH or D-HH:MM:SS.",
        checked=True,
        metavar="TIME",
    ),
    _o("--account", "-A", PARALLEL, "Account to charge.", checked=True, metavar="NAME"),
    _o("--qos", "-q", PARALLEL, "Quality of service.", checked=True, metavar="NAME"),
    _o(
        "--job-name",
        "-J",
        PARALLEL,
        "Job name (default: the program the command runs: train for python train.py).",
        checked=True,
        metavar="NAME",
    ),
    _o("--constraint", "-C", CONSTRAINT, "Node features: a&b, a|b.", checked=True, metavar="LIST"),
    _o(
        "--mem",
        None,
        CONSTRAINT,
        "Memory per node: 4000M, 4G; 0 for all of each node's.",
        checked=True,
        metavar="SIZE",
    ),
    _o(
        "--nodelist",
        "-w",
        CONSTRAINT,
        "These nodes, all of them: n[1-4],gpu01.",
        checked=True,
        metavar="HOSTS",
    ),
    _o("--exclude", "-x", CONSTRAINT, "Never these nodes.", checked=True, metavar="HOSTS"),
    _o(
        "--exclusive",
        None,
        CONSUMABLE,
        "Whole nodes, shared with no other job.",
        checked=True,
        value="optional",
        metavar="[user|mcs]",
    ),
    _o(
        "--mem-per-cpu",
        None,
        CONSUMABLE,
        "Memory per allocated CPU (not with --mem).",
        checked=True,
        metavar="SIZE",
    ),
    _o("--cpus-per-gpu", None, GPU, "CPUs per allocated GPU.", checked=True, metavar="N"),
    _o("--gpus", "-G", GPU, "GPUs in all: [TYPE:]N.", checked=True, metavar="[TYPE:]N"),
    _o("--gpus-per-node", None, GPU, "GPUs per node: [TYPE:]N.", checked=True, metavar="[TYPE:]N"),
    _o("--gpus-per-task", None, GPU, "GPUs per task: [TYPE:]N.", checked=True, metavar="[TYPE:]N"),
    _o(
        "--mem-per-gpu", None, GPU, "Memory per allocated GPU (not with --mem).", checked=True, metavar="SIZE"
    ),
    _o("--ntasks-per-gpu", None, GPU, "Tasks per allocated GPU.", checked=True, metavar="N"),
    _o(
        "--gres",
        None,
        CONSTRAINT,
        "Generic resources: gpu[:TYPE]:N[,NAME[:TYPE]:N...].",
        checked=True,
        metavar="LIST",
    ),
    # passed on to Slurm as written
    _o(
        "--begin", "-b", PARALLEL, "Start no sooner than: now+1hour, 16:00, 2026-12-24T08:00.", metavar="TIME"
    ),
    _o(
        "--chdir",
        "-D",
        PARALLEL,
        "Directory the job runs in (default: where you submit from).",
        metavar="DIR",
    ),
    _o("--comment", None, PARALLEL, "A comment Slurm keeps with the job.", metavar="TEXT"),
    _o(
        "--dependency",
        "-d",
        PARALLEL,
        "Slurm dependency (afterok:ID, afterany:ID, singleton, ...), beside --after.",
        metavar="TYPE:ID[:ID...]",
    ),
    _o(
        "--export",
        None,
        PARALLEL,
        "Environment variables the job gets: ALL, NONE, NAME[=VALUE],...",
        metavar="NAMES",
    ),
    _o("--hold", "-H", PARALLEL, "Submit the job held (scontrol release starts it).", value="flag"),
    _o("--licenses", "-L", PARALLEL, "Licenses the job needs: name[:N],...", metavar="LIST"),
    _o("--mail-type", None, PARALLEL, "Mail on: BEGIN, END, FAIL, ALL, ...", metavar="TYPES"),
    _o("--mail-user", None, PARALLEL, "Who gets the mail.", metavar="ADDRESS"),
    _o("--nice", None, PARALLEL, "Lower the job's priority by this much.", value="optional", metavar="[N]"),
    _o(
        "--no-requeue",
        None,
        PARALLEL,
        "Never requeue the job (hpcx's preemption requeue is then off).",
        value="flag",
    ),
    _o("--priority", None, PARALLEL, "The job's priority (operators only).", metavar="N"),
    _o(
        "--signal",
        None,
        PARALLEL,
        "Signal before the time limit: [B:]SIG[@SECONDS] (replaces hpcx's USR2 "
        "warning, so the job checkpoints only if it handles SIG itself).",
        metavar="SPEC",
    ),
    _o(
        "--time-min",
        None,
        PARALLEL,
        "Least time limit the job accepts (lets the backfill start it sooner).",
        metavar="TIME",
    ),
    _o("--wckey", None, PARALLEL, "Workload characterization key.", metavar="KEY"),
    _o("--deadline", None, PARALLEL, "Remove the job if it cannot end by then.", metavar="TIME"),
    _o("--distribution", "-m", PARALLEL, "How tasks go to nodes: block, cyclic, ...", metavar="TYPE"),
    _o("--overcommit", "-O", PARALLEL, "Overcommit resources.", value="flag"),
    _o("--oversubscribe", "-s", PARALLEL, "Share nodes with other jobs beyond their CPUs.", value="flag"),
    _o("--spread-job", None, PARALLEL, "Spread the job over as many nodes as possible.", value="flag"),
    _o("--use-min-nodes", None, PARALLEL, "With -N MIN-MAX, prefer MIN.", value="flag"),
    _o("--reservation", None, CONSTRAINT, "Run in this reservation.", metavar="NAME"),
    _o("--contiguous", None, CONSTRAINT, "Nodes in one contiguous range.", value="flag"),
    _o("--mincpus", None, CONSTRAINT, "Least CPUs per node.", metavar="N"),
    _o("--tmp", None, CONSTRAINT, "Least temporary disk per node.", metavar="SIZE"),
    _o("--hint", None, AFFINITY, "compute_bound, memory_bound, multithread, nomultithread.", metavar="HINT"),
    _o(
        "--cpu-bind",
        None,
        AFFINITY,
        "How srun binds each step's tasks to CPUs (a default for the job's steps: SLURM_CPU_BIND).",
        metavar="TYPE",
    ),
    _o("--ntasks-per-core", None, AFFINITY, "Tasks per core.", metavar="N"),
    _o("--ntasks-per-socket", None, AFFINITY, "Tasks per socket.", metavar="N"),
    _o("--threads-per-core", None, AFFINITY, "Threads per core.", metavar="N"),
    _o("--gpu-bind", None, GPU, "How tasks bind to GPUs (a default for the job's steps).", metavar="TYPE"),
    _o("--gpu-freq", None, GPU, "GPU frequency.", metavar="SPEC"),
)

BY_NAME: dict[str, Option] = {name: o for o in OPTIONS for name in (o.long, o.short) if name is not None}
BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}
KEYS = tuple(BY_KEY)
CHECKED_KEYS = tuple(o.key for o in OPTIONS if o.checked)
PASSED_KEYS = tuple(o.key for o in OPTIONS if not o.checked)
# Slurm's key for the job name is --job-name; hpcx's request has always called it name.
REQUEST_KEY = {"job_name": "name"}
# Passed on, but not to sbatch as an option: a default every srun step of the job reads from its environment.
STEP_ENV = {"cpu_bind": "SLURM_CPU_BIND"}


def request_key(option: Option) -> str:
    return REQUEST_KEY.get(option.key, option.key)


def flag_of(key: str) -> str:
    """The long option of request key ``key`` (``name`` -> ``--job-name``)."""
    return "--job-name" if key == "name" else "--" + key.replace("_", "-")


def nearest(name: str) -> str | None:
    """The sbatch option spelled most like ``name`` (a typo, or an option sbatch does not have)."""
    found = difflib.get_close_matches(name, list(BY_NAME), n=1, cutoff=0.8)
    return found[0] if found else None


def passed_on(values: dict[str, object]) -> list[tuple[str, str | None]]:
    """The passed-on options among request ``values`` as (flag, value) pairs in the table's order; a flag
    option's value is None."""
    out: list[tuple[str, str | None]] = []
    for key in PASSED_KEYS:
        value = values.get(key)
        if value is None or value is False or key in STEP_ENV:
            continue
        option = BY_KEY[key]
        if option.value == "flag" or (option.value == "optional" and value in ("", True)):
            out.append((option.long, None))
        else:
            out.append((option.long, str(value)))
    return out


# sbatch's other long options (`sbatch --help`, man sbatch): hpcx neither checks nor offers them on its command
# line, but an own script may use them and sbatch reads them, so they are no typo.
OTHER_LONG = (
    *(
        "--acctg-freq",
        "--array",
        "--batch",
        "--bb",
        "--bbf",
        "--cluster-constraint",
        "--clusters",
        "--container",
    ),
    *("--container-id", "--core-spec", "--cores-per-socket", "--cpu-freq", "--delay-boot", "--error"),
    *("--export-file", "--extra-node-info", "--get-user-env", "--gid", "--gpus-per-socket", "--gres-flags"),
    *("--ignore-pbs", "--input", "--kill-on-invalid-dep", "--mcs-label", "--mem-bind", "--network"),
    *(
        "--no-kill",
        "--nodefile",
        "--open-mode",
        "--output",
        "--parsable",
        "--power",
        "--profile",
        "--propagate",
    ),
    *("--quiet", "--reboot", "--requeue", "--sockets-per-node", "--switches", "--test-only", "--thread-spec"),
    *("--tres-per-task", "--uid", "--verbose", "--wait", "--wait-all-nodes", "--wrap", "--x11"),
)


def resolve_long(name: str) -> str | None:
    """A long option as sbatch reads it: itself, or the one option it abbreviates (getopt_long takes a unique
    prefix); None when it is no sbatch option or abbreviates several."""
    known = [o.long for o in OPTIONS] + list(OTHER_LONG)
    if name in known:
        return name
    found = [k for k in known if k.startswith(name)]
    return found[0] if len(found) == 1 else None


def is_prefix(name: str) -> bool:
    """Whether ``name`` begins some sbatch long option (then it abbreviates several, where resolve_long refused)."""
    return any(k.startswith(name) for k in [o.long for o in OPTIONS] + list(OTHER_LONG))
