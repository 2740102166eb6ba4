"""Slurm through its command-line tools: sbatch --parsable, squeue -O (text), sacct -P (text), scancel; and what
the login side asks of the cluster besides jobs: its version, configuration, partitions, nodes, limits, accounts,
QOS and accounting. The only login-side module that runs Slurm commands (DESIGN: Dependency direction)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hpcx import _proc
from hpcx.errors import CommandError, SchedulerError, UsageError
from hpcx.schedulers.base import (
    JobRef,
    JobState,
    Scheduler,
    parse_exit,
    scrubbed_env,
    summarize_array,
)
from hpcx.spec import parse_array

# Bounds on every Slurm call; HPCX_SLURM_TIMEOUT_S overrides both (a site with a slow controller raises it).
QUERY_TIMEOUT_S = float(os.environ.get("HPCX_SLURM_TIMEOUT_S", 30))
SUBMIT_TIMEOUT_S = float(os.environ.get("HPCX_SLURM_TIMEOUT_S", 60))
SACCT_FIELDS = "JobIDRaw,JobID,State,ExitCode,ElapsedRaw,NodeList,Reason"
SQUEUE_FORMAT = "JobArrayID:|,State:|,Reason:|,NodeList:|,exit_code:|,TimeUsed:|"
# The cluster's description, as `hpcx site discover` and the live site read it.
SINFO_ARGV = ("sinfo", "--json")
PARTITIONS_ARGV = ("scontrol", "show", "partition", "-o")
CONFIG_ARGV = ("scontrol", "show", "config")
QOS_ARGV = ("sacctmgr", "-nP", "show", "qos", "format=Name")
ACCOUNTS_ARGV = ("sacctmgr", "-nP", "show", "account", "format=Account")
VERSION_ARGV = ("sbatch", "--version")
# A sweep's pre-flight reads the live limits with this bound on each command.
LIMITS_TIMEOUT_S = 20.0


class SlurmScheduler(Scheduler):
    name = "slurm"

    def submit(
        self,
        script: Path,
        run_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> str:
        result = _proc.run(
            ["sbatch", "--parsable", *args, str(script)],
            timeout_s=SUBMIT_TIMEOUT_S,
            env=env if env is not None else scrubbed_env(),
            cwd=cwd or run_dir,
        )
        return parse_sbatch_parsable(result.stdout)

    def status(self, jobs: Sequence[JobRef]) -> dict[str, JobState]:
        ids = sorted({j.job_id for j in jobs})
        if not ids:
            return {}
        wanted = set(ids)
        by_job: dict[str, list[JobState]] = {}
        for state in self._squeue():
            if _base(state.job_id) in wanted:
                by_job.setdefault(_base(state.job_id), []).append(state)
        missing = sorted(wanted - set(by_job))
        if missing:
            for state in self._sacct(missing):
                by_job.setdefault(_base(state.job_id), []).append(state)
        return {job_id: summarize_array(job_id, members) for job_id, members in by_job.items()}

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        ids = sorted({j.job_id for j in jobs})
        if ids:
            _proc.run(["scancel", *ids], timeout_s=QUERY_TIMEOUT_S)

    def signal(self, jobs: Sequence[JobRef], signal_name: str, *, batch: bool = True) -> None:
        ids = sorted({j.job_id for j in jobs})
        if ids:
            where = ["--batch"] if batch else []
            _proc.run(["scancel", f"--signal={signal_name}", *where, *ids], timeout_s=QUERY_TIMEOUT_S)

    def _squeue(self) -> list[JobState]:
        # One query for all of the user's jobs, array tasks one per line (-r). Not --jobs: squeue fails the whole
        # query when one id was already purged. Not --json: 22.05 ignores its filters and prints every job of
        # every user, about ten times slower than this for a thousand jobs.
        result = _proc.run(
            ["squeue", "-h", "-r", "--me", "--states=all", "-O", SQUEUE_FORMAT],
            timeout_s=QUERY_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise CommandError(
                result.argv,
                result.returncode,
                result.stdout,
                result.stderr,
                why=f"exited {result.returncode}",
            )
        return parse_squeue(result.stdout)

    def _sacct(self, ids: list[str]) -> list[JobState]:
        # Plain sacct, not --json: Slurm 22.05's sacct --json reports every exit code as 0.
        argv = ["sacct", "-P", "-n", "-X", "-o", SACCT_FIELDS, "-j", ",".join(ids)]
        result = _proc.run(argv, timeout_s=QUERY_TIMEOUT_S, check=False)
        if result.returncode != 0:
            if "accounting storage is disabled" in result.stderr.lower():
                return []
            raise CommandError(
                argv, result.returncode, result.stdout, result.stderr, why=f"exited {result.returncode}"
            )
        return parse_sacct(result.stdout)


def _base(job_id: str) -> str:
    """The job id an array task belongs to: "12_3" -> "12", "12_[4-9]" -> "12"."""
    return job_id.split("_", 1)[0]


def _count_tasks(spec: str) -> int:
    """How many tasks "2-5%2", "[4-9]" or "1,3,7" names."""
    spec = spec.strip("[]")
    try:
        return len(parse_array(spec).indices) if spec else 0
    except UsageError:
        return 1


def parse_sbatch_parsable(stdout: str) -> str:
    """Job id from ``sbatch --parsable`` output: "123" or "123;cluster"."""
    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job_id = line.split(";")[0].strip()
    if not job_id.isdigit():
        raise SchedulerError(f"sbatch printed {stdout.strip()[:200]!r} instead of a job id")
    return job_id


def _seconds(text: str) -> int | None:
    """squeue's TimeUsed ([D-][HH:]MM:SS) in seconds."""
    days, _, clock = text.strip().rpartition("-")
    parts = clock.split(":")
    if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3 or (days and not days.isdigit()):
        return None
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return seconds + int(days or 0) * 86400


def parse_squeue(text: str) -> list[JobState]:
    """Job states from ``squeue -h -r -O JobArrayID:|,State:|,Reason:|,NodeList:|,exit_code:|,TimeUsed:|``.

    exit_code is the raw wait status (exit code in the high byte), as in 22.05's JSON.
    """
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 6 or not parts[0]:
            if line.strip():
                raise SchedulerError(f"squeue printed a line hpcx cannot read: {line[:120]!r}")
            continue
        job_id, state, reason, nodes, raw_exit, used = parts[:6]
        state = state or "UNKNOWN"
        code, signal = _wait_status(raw_exit)
        out.append(
            JobState(
                job_id=job_id,
                state=state,
                exit_code=code,
                signal=signal,
                reason=None if reason in ("", "None") else reason,
                nodes=nodes or None,
                elapsed_s=_seconds(used),
                source="squeue",
            )
        )
    return out


def _wait_status(raw: str) -> tuple[int | None, int]:
    """A raw wait status as the code (the high byte) and the signal that killed the process (the low bits)."""
    if not raw.isdigit():
        return None, 0
    status = int(raw)
    return status >> 8, status & 0x7F


def parse_sacct(text: str) -> list[JobState]:
    """Job states from ``sacct -P -n -X -o JobIDRaw,JobID,State,ExitCode,ElapsedRaw,NodeList,Reason``."""
    out = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 7:
            continue
        _raw, job_id, state, exit_code, elapsed, nodes, reason = parts[:7]
        code, signal = parse_exit(exit_code)
        out.append(
            JobState(
                job_id=job_id,
                state=state.split()[0] if state else "UNKNOWN",
                exit_code=code,
                signal=signal,
                reason=None if reason in ("", "None") else reason,
                nodes=nodes or None,
                elapsed_s=int(elapsed) if elapsed.isdigit() else None,
                source="sacct",
                pending_tasks=_count_tasks(job_id.partition("_")[2]) if "[" in job_id else 0,
            )
        )
    return out


SHARING_FIELDS = ("JobID", "NodeList", "Start", "End")


def jobs_on_nodes(nodes: Sequence[str], start: str, end: str) -> list[dict[str, str]]:
    """Every job sacct shows (all users' where Slurm lets this user see them) that was on any of ``nodes``
    between ``start`` and ``end`` (sacct's times, ``2026-01-01T10:00:00``), one row per job or array task with
    ``SHARING_FIELDS``: one batched query, for the report's question whether a node was shared."""
    argv = [
        "sacct",
        "-a",
        "-X",
        "-P",
        "-n",
        "-N",
        ",".join(nodes),
        "-S",
        start,
        "-E",
        end,
        "-o",
        ",".join(SHARING_FIELDS),
    ]
    result = _proc.run(argv, timeout_s=QUERY_TIMEOUT_S, check=False)
    if result.returncode != 0:
        raise CommandError(
            argv, result.returncode, result.stdout, result.stderr, why=f"exited {result.returncode}"
        )
    rows = [line.split("|") for line in result.stdout.splitlines()]
    return [dict(zip(SHARING_FIELDS, r)) for r in rows if len(r) == len(SHARING_FIELDS)]


# --- the cluster: version, configuration, partitions, nodes, accounts, QOS ----------------------------------------


def version(timeout_s: float = QUERY_TIMEOUT_S) -> str | None:
    """Slurm's release as ``sbatch --version`` names it ("23.02.1"); None when it prints nothing.
    Raises CommandError when sbatch is missing, fails or hangs."""
    words = _proc.run(VERSION_ARGV, timeout_s=timeout_s).stdout.split()
    return words[-1] if words else None


def config(timeout_s: float = QUERY_TIMEOUT_S) -> dict[str, str]:
    """``scontrol show config`` as {key: value} (see :func:`parse_scontrol_config`). Raises CommandError."""
    return parse_scontrol_config(_proc.run(CONFIG_ARGV, timeout_s=timeout_s).stdout)


def parse_scontrol_config(text: str) -> dict[str, str]:
    """``scontrol show config`` ("Key = Value" lines) as a dict in the order printed, values as Slurm prints
    them; the first value of a repeated key wins. The one reader of that output in hpcx."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            out.setdefault(key.strip(), value.strip())
    return out


def partitions(timeout_s: float = QUERY_TIMEOUT_S) -> dict[str, dict[str, str]]:
    """Every partition's fields from ``scontrol show partition -o`` (see :func:`parse_scontrol_partitions`)."""
    return parse_scontrol_partitions(_proc.run(PARTITIONS_ARGV, timeout_s=timeout_s).stdout)


def parse_scontrol_partitions(text: str) -> dict[str, dict[str, str]]:
    """``scontrol show partition -o`` (one line of Key=Value per partition) as {name: {key: value}}, in order."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
        if "PartitionName" not in fields:
            cmd = " ".join(PARTITIONS_ARGV)
            raise SchedulerError(f"`{cmd}` printed a line without PartitionName: {line[:120]!r}")
        out[fields["PartitionName"]] = fields
    return out


def sinfo_json(timeout_s: float = QUERY_TIMEOUT_S) -> str:
    """What ``sinfo --json`` prints: every node, with the Slurm release (the site's discovery parses it)."""
    return _proc.run(SINFO_ARGV, timeout_s=timeout_s).stdout


def accounts(timeout_s: float = QUERY_TIMEOUT_S) -> tuple[str, ...]:
    """The accounts slurmdbd knows (``sacctmgr show account``), sorted. Raises CommandError."""
    return parse_sacctmgr_names(_proc.run(ACCOUNTS_ARGV, timeout_s=timeout_s).stdout)


def qos(timeout_s: float = QUERY_TIMEOUT_S) -> tuple[str, ...]:
    """The QOS slurmdbd knows (``sacctmgr show qos``), sorted. Raises CommandError."""
    return parse_sacctmgr_names(_proc.run(QOS_ARGV, timeout_s=timeout_s).stdout)


def parse_sacctmgr_names(text: str) -> tuple[str, ...]:
    """Names from ``sacctmgr -nP show ... format=Name``: one a line, sorted, duplicates removed."""
    return tuple(sorted({line.strip() for line in text.splitlines() if line.strip()}))


# --- limits: what a sweep's pre-flight reads ------------------------------------------------------------------


def limits(timeout_s: float = LIMITS_TIMEOUT_S) -> dict[str, Any]:
    """MaxArraySize, MaxJobCount, the user's MaxSubmitJobs and what is queued, as far as the cluster answers.

    ``queued_all`` counts every job record slurmctld holds (each array task, and finished jobs it still
    remembers), which is what MaxJobCount limits; ``queued`` counts the user's own, for MaxSubmitJobs. A command
    that fails or hangs ends the reading: what was read before it is returned, the rest is left out.
    """
    out: dict[str, Any] = {}
    try:
        wanted = ("MaxArraySize", "MaxJobCount")
        out.update({k: int(v) for k, v in config(timeout_s).items() if k in wanted and v.isdigit()})
        jobs = queued_users(timeout_s)
        out["queued_all"], out["queued"] = len(jobs), jobs.count(_user())
        caps = max_submit_jobs(_user(), timeout_s)
        if caps:
            out["MaxSubmitJobs"] = min(caps)
    except CommandError:
        return out
    return out


def queued_users(timeout_s: float = QUERY_TIMEOUT_S) -> list[str]:
    """The owner of every job record slurmctld holds, one per array task (``squeue -h -r --states=all``)."""
    return _proc.run(["squeue", "-h", "-r", "--states=all", "-o", "%u"], timeout_s=timeout_s).stdout.split()


def max_submit_jobs(user: str, timeout_s: float = QUERY_TIMEOUT_S) -> list[int]:
    """MaxSubmitJobs of each of ``user``'s associations that sets one; [] when scontrol cannot say."""
    # scontrol reads slurmctld's copy of the associations: milliseconds, where sacctmgr asks slurmdbd.
    argv = ["scontrol", "show", "assoc_mgr", f"users={user}", "flags=assoc"]
    return parse_max_submit_jobs(_proc.run(argv, timeout_s=timeout_s, check=False).stdout, user)


def parse_max_submit_jobs(text: str, user: str) -> list[int]:
    """MaxSubmitJobs of ``user``'s association records in `scontrol show assoc_mgr flags=assoc` output."""
    caps, mine = [], False
    for line in text.splitlines():
        if line.startswith("ClusterName="):
            mine = f" UserName={user}(" in f" {line}"
        elif mine:
            m = re.search(r"\bMaxSubmitJobs=(\d+)", line)
            if m:
                caps.append(int(m.group(1)))
    return caps


def _user() -> str:
    import getpass

    return getpass.getuser()


# --- accounting: what sacct kept of jobs ----------------------------------------------------------------------


def accounting(
    job_ids: Sequence[str], fields: Sequence[str], timeout_s: float = QUERY_TIMEOUT_S
) -> list[dict[str, str]]:
    """sacct's rows for ``job_ids`` (one per job, array task and step), ``fields`` each, values as Slurm prints
    them: one query for all (see :func:`parse_sacct_rows`). Raises CommandError when sacct fails or hangs."""
    # Plain sacct, not --json: Slurm 22.05's sacct --json reports every exit code as 0.
    argv = ["sacct", "-P", "-n", "-j", ",".join(job_ids), "-o", ",".join(fields)]
    return parse_sacct_rows(_proc.run(argv, timeout_s=timeout_s).stdout, fields)


def parse_sacct_rows(text: str, fields: Sequence[str]) -> list[dict[str, str]]:
    """``sacct -P -n -o FIELDS`` output as one dict per line; the last field takes the rest of its line, so a
    "|" in a free-text field put last (JobName) cannot shift the others."""
    rows = []
    for line in text.splitlines():
        values = line.split("|", len(fields) - 1)
        if len(values) == len(fields):
            rows.append(dict(zip(fields, values)))
    return rows
