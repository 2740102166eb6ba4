"""Every file and folder name of a run directory, and the small functions that build and parse them.

Both sides of the job boundary name the run directory's files through this module and nowhere else: the job
writes ``profile/``, ``metrics/``, ``seeds/`` and ``checkpoints/``, the login side writes the manifest, the
script and the task table and reads everything. Stdlib only. docs/formats.md describes what the files hold.

A sweep's or array job's task keeps its records in a folder of its own (``profile/task-NNNNN/``,
``metrics/task-NNNNN/``); a rank's file is ``rank-NNNNN.jsonl``, one per job step under srun
(``rank-NNNNN.step-S.jsonl``); a node's is ``node-NAME[.step-S].jsonl``; a process's in-process records (I/O,
regions, communication) are ``KIND-rank-NNNNN-pPID.jsonl``, one per process.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Union

StrPath = Union[str, "os.PathLike[str]"]

# Files at the top of a run directory.
MANIFEST_FILE = "manifest.json"  # what was asked and resolved
JOB_FILE = "job.json"  # the scheduler's record: job id(s), submission time, a sweep's chunks
SCRIPT_FILE = "job.sbatch"  # the exact bytes submitted
TASK_TABLE = "tasks.jsonl"  # a sweep's parameters, line N is task N (hpcx.rundir.tasks)
SWEEP_SPEC_FILE = "sweep.yaml"  # a sweep's spec as submitted
GIT_DIFF_FILE = "git.diff"  # provenance: the working tree's uncommitted changes
GIT_UNTRACKED_FILE = "git-untracked.txt"  # provenance: the names of untracked files
REQUIREMENTS_FILE = "requirements.txt"  # provenance: the Python packages installed
ACCOUNTING_FILE = "accounting.json"  # Slurm's accounting of the finished job, kept past sacct's memory

# Folders of a run directory.
LOGS_DIR = "logs"  # stdout and stderr per task
PROFILE_DIR = "profile"  # per-rank, per-node and per-process records (hpcx.rundir.records)
METRICS_DIR = "metrics"  # what the job logged (hpcx.runtime.log), per task and rank
CHECKPOINTS_DIR = "checkpoints"
REPORT_DIR = "report"  # report.json and report.html, task-NNNNN.json/.html for one task
SEEDS_DIR = "seeds"  # each rank's seeds, rank-NNNNN.json
CONTROL_DIR = "control"  # requests from the login node that the running job reads at a step boundary
TRIALS_DIR = (
    "trials"  # a tuning study's state: one file per trial, rung result and end, each made once (O_EXCL)
)
SUBDIRS = (LOGS_DIR, PROFILE_DIR, CHECKPOINTS_DIR, REPORT_DIR)  # made with the run directory

REPORT_STEM = "report"

# The control files (``control/`` for a whole run, ``control/task-NNNNN/`` for one task of a sweep or array).
STOP_REQUEST_FILE = "stop.json"  # `hpcx stop`'s request: who, when, grace (written by the login side)
STOPPED_FILE = "stopped.json"  # the job's acknowledgement: which request, at which step, when (rank 0 writes)

# A tuning study (hpcx.tune): its spec at the top of the run directory, its state under trials/.
STUDY_FILE = "study.json"  # the study spec as parsed (canonical JSON) and its digest, written at submit
TRIAL_FILE = re.compile(r"^trial-(\d{6,})(?:\.rung-(\d{6,})|\.(end|alive))?\.json$")

# The kinds of in-process record files (one file per process).
IO_RECORDS = "io"  # hpcx.profiling.iometrics
REGION_RECORDS = "regions"  # hpcx.profiling.regions
COMM_RECORDS = "comm"  # hpcx.profiling.comm

# A checkpoint root (a run's checkpoints/; hpcx.runtime.checkpoint saves and loads): one folder per step.
CHECKPOINT_MANIFEST = "manifest.json"  # a step's: every file's sha256 and size, and what wrote it
CHECKPOINT_REPLICATED = "replicated.pt"  # the state every rank holds alike, written by rank 0
CHECKPOINT_LATEST = "latest"  # the committed step's folder name: the commit point, replaced last
CHECKPOINT_STEP = re.compile(r"^step-(\d{8,})$")  # a committed step's folder
CHECKPOINT_LEFTOVER = re.compile(r"^step-(\d{8,})\.(tmp|del)-")  # a save in progress, or a step being deleted

_TASK_DIR = re.compile(r"task-(\d+)")
_RANK_FILE = re.compile(r"rank-(\d+)(?:\.step-[^.]*)?\.jsonl")
_STEP = re.compile(r"\.step-[^.]*$")


def task_name(task: int) -> str:
    """``task-NNNNN``: a task's folder under ``profile/`` and ``metrics/``, and the stem of its report."""
    return f"task-{task:05d}"


def task_of(name: str) -> int | None:
    """The task a ``task-NNNNN`` folder name holds, None for any other name."""
    match = _TASK_DIR.fullmatch(name)
    return int(match.group(1)) if match else None


def task_dirs(base: StrPath) -> dict[int, Path]:
    """The task folders under ``base`` (a run's ``profile/`` or ``metrics/``) by task, in task order."""
    found = {}
    for path in Path(base).glob("task-[0-9]*"):
        task = task_of(path.name)
        if task is not None and path.is_dir():
            found[task] = path
    return dict(sorted(found.items()))


def under_task(base: StrPath, task: int | None) -> Path:
    """``base`` itself for a whole run, its ``task-NNNNN/`` folder for one task."""
    return Path(base) if task is None else Path(base) / task_name(task)


def profile_dir(run_dir: StrPath, task: int | None = None) -> Path:
    """Where a run's (or one task's) profile records are: ``profile/`` or ``profile/task-NNNNN/``."""
    return under_task(Path(run_dir) / PROFILE_DIR, task)


def metrics_dir(run_dir: StrPath, task: int | None = None) -> Path:
    """Where a run's (or one task's) logged metrics are: ``metrics/`` or ``metrics/task-NNNNN/``."""
    return under_task(Path(run_dir) / METRICS_DIR, task)


def heartbeat_file(metrics_directory: StrPath, rank: int) -> Path:
    """A rank's heartbeat beside its metrics, ``heartbeat-rank-NNNNN``: ``python -m hpcx.run`` rewrites it every
    HPCX_HEARTBEAT_S seconds, hpcx.runs.live reads rank 0's."""
    return Path(metrics_directory) / f"heartbeat-{rank_name(rank)}"


def control_dir(run_dir: StrPath, task: int | None = None) -> Path:
    """Where requests to a running job go: ``control/`` for the whole run, ``control/task-NNNNN/`` for one task."""
    return under_task(Path(run_dir) / CONTROL_DIR, task)


def stop_request_file(run_dir: StrPath, task: int | None = None) -> Path:
    """A stop request: ``control/stop.json`` (whole run) or ``control/task-NNNNN/stop.json`` (one task)."""
    return control_dir(run_dir, task) / STOP_REQUEST_FILE


def stopped_file(run_dir: StrPath, task: int | None = None) -> Path:
    """The job's acknowledgement of a stop: ``control/stopped.json`` or ``control/task-NNNNN/stopped.json``."""
    return control_dir(run_dir, task) / STOPPED_FILE


def report_stem(task: int | None) -> str:
    """``report`` for a run's report, ``task-NNNNN`` for one task's (``.json`` and ``.html`` follow)."""
    return REPORT_STEM if task is None else task_name(task)


def report_file(run_dir: StrPath, task: int | None = None, suffix: str = ".json") -> Path:
    """A run's report (``report/report.json``, ``.html``) or one task's (``report/task-NNNNN.json``)."""
    return Path(run_dir) / REPORT_DIR / f"{report_stem(task)}{suffix}"


def rank_name(rank: int) -> str:
    """``rank-NNNNN``: how every per-rank file name starts."""
    return f"rank-{rank:05d}"


def _step_suffix(step: str | None) -> str:
    return f".step-{step.replace('/', '_')}" if step else ""


def rank_file(profile_dir: StrPath, rank: int, step: str | None = None) -> Path:
    """The rank's file, one per job step when there is one (``rank-NNNNN.step-S.jsonl``): two sruns in one
    allocation each have a rank 0, concurrent or one after the other, and each keeps its own records."""
    return Path(profile_dir) / f"{rank_name(rank)}{_step_suffix(step)}.jsonl"


def rank_of_file(name: str) -> int | None:
    """The rank of a ``rank-NNNNN[.step-S].jsonl`` file name, None for any other name."""
    match = _RANK_FILE.fullmatch(name)
    return int(match.group(1)) if match else None


def rank_files(profile_dir: StrPath) -> dict[int, list[Path]]:
    """Per rank, its files: ``rank-NNNNN.jsonl`` (outside srun) and one ``rank-NNNNN.step-S.jsonl`` per job
    step."""
    found: dict[int, list[Path]] = {}
    for path in sorted(Path(profile_dir).glob("rank-*.jsonl")):
        rank = rank_of_file(path.name)
        if rank is not None:
            found.setdefault(rank, []).append(path)
    return found


def node_file(profile_dir: StrPath, node: str, step: str | None = None) -> Path:
    """The node's file, one per job step when there is one (``node-NAME.step-S.jsonl``: two concurrent sruns
    in one allocation each have a collector on the node); a node name is a host name, but keep any path
    separator out of the file name."""
    return Path(profile_dir) / f"node-{node.replace('/', '_')}{_step_suffix(step)}.jsonl"


def agent_file(profile_dir: StrPath, node: str, step: str | None = None, task: int = 0) -> Path:
    """A torchrun agent's own records (``agent-NAME-tT.step-S.jsonl``, T the launcher's task that started it,
    so two agents on one node keep files of their own): its workers are the ranks, in rank files of their own;
    the agent is the launcher, not a rank."""
    return Path(profile_dir) / f"agent-{node.replace('/', '_')}-t{task}{_step_suffix(step)}.jsonl"


def agent_files(directory: StrPath) -> list[Path]:
    """Every torchrun agent file of a profile directory, sorted."""
    return sorted(Path(directory).glob("agent-*.jsonl"))


def node_files(directory: StrPath) -> list[Path]:
    """Every node file of a profile directory, sorted."""
    return sorted(Path(directory).glob("node-*.jsonl"))


def node_of_file(path: StrPath) -> str:
    """The node a node file is named after, without its job step."""
    return _STEP.sub("", Path(path).stem[len("node-") :])


def process_file(directory: StrPath, kind: str, rank: int, pid: int) -> Path:
    """One process's in-process records of ``kind`` (``io``, ``regions``, ``comm``):
    ``KIND-rank-NNNNN-pPID.jsonl``; DataLoader workers and forked children write files of their own."""
    return Path(directory) / f"{kind}-{rank_name(rank)}-p{pid}.jsonl"


def process_files(directory: StrPath, kind: str) -> list[Path]:
    """Every process file of ``kind`` in a profile directory, sorted."""
    return sorted(Path(directory).glob(f"{kind}-rank-*.jsonl"))


def rank_of_process_file(path: StrPath, kind: str) -> int | None:
    """The rank of a ``KIND-rank-NNNNN-pPID.jsonl`` file, None for a name of another shape."""
    match = re.match(rf"{re.escape(kind)}-rank-(\d+)", Path(path).name)
    return int(match.group(1)) if match else None


def seeds_file(run_dir: StrPath, rank: int) -> Path:
    """A rank's seeds: ``seeds/rank-NNNNN.json``."""
    return Path(run_dir) / SEEDS_DIR / f"{rank_name(rank)}.json"


def checkpoint_step_name(step: int) -> str:
    """``step-NNNNNNNN``: a checkpoint step's folder under the checkpoint root."""
    return f"step-{step:08d}"


def checkpoint_rank_file(rank: int) -> str:
    """``rank-NNNNN.pt``: a rank's own file in a checkpoint step's folder."""
    return f"{rank_name(rank)}.pt"


def trial_file(run_dir: StrPath, number: int, *, rung: int | None = None, part: str | None = None) -> Path:
    """A tuning study's file for trial ``number`` under ``trials/``: the trial itself (its parameters and who
    runs it), its value at rung ``rung`` (``trial-NNNNNN.rung-RRRRRR.json``), or ``part`` "end" (how it ended)
    or "alive" (its worker's heartbeat, the only one rewritten)."""
    name = f"trial-{number:06d}"
    if rung is not None:
        name += f".rung-{rung:06d}"
    elif part is not None:
        if part not in ("end", "alive"):
            raise ValueError(f"trial file part {part!r} is not end or alive")
        name += f".{part}"
    return Path(run_dir) / TRIALS_DIR / f"{name}.json"


def parse_trial_file(name: str) -> tuple[int, int | None, str | None] | None:
    """``(trial, rung or None, "end"/"alive" or None)`` of a file name under ``trials/``; None for any other."""
    m = TRIAL_FILE.match(name)
    if m is None:
        return None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None), m.group(3)
