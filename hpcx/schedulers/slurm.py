"""Slurm through its command-line tools: sbatch --parsable, squeue -O (text), sacct -P (text), scancel."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

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

    def _squeue(self) -> list[JobState]:
        # One query for all of the user's jobs, array tasks one per line (-r). Not --jobs: squeue fails the whole
        # query when one id was already purged. Not --json: 22.05 ignores its filters and prints every job of
        # every user, about ten times slower than this for a thousand jobs.
        result = _proc.run(["squeue", "-h", "-r", "--me", "--states=all", "-O", SQUEUE_FORMAT],
                           timeout_s=QUERY_TIMEOUT_S, check=False)  # fmt: skip
        if result.returncode != 0:
            raise CommandError(result.argv, result.returncode, result.stdout, result.stderr,
                               why=f"exited {result.returncode}")  # fmt: skip
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
        out.append(JobState(
            job_id=job_id, state=state, exit_code=code, signal=signal,
            reason=None if reason in ("", "None") else reason, nodes=nodes or None, elapsed_s=_seconds(used),
            source="squeue",
        ))  # fmt: skip
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
    argv = ["sacct", "-a", "-X", "-P", "-n", "-N", ",".join(nodes), "-S", start, "-E", end,
            "-o", ",".join(SHARING_FIELDS)]  # fmt: skip
    result = _proc.run(argv, timeout_s=QUERY_TIMEOUT_S, check=False)
    if result.returncode != 0:
        raise CommandError(
            argv, result.returncode, result.stdout, result.stderr, why=f"exited {result.returncode}"
        )
    rows = [line.split("|") for line in result.stdout.splitlines()]
    return [dict(zip(SHARING_FIELDS, r)) for r in rows if len(r) == len(SHARING_FIELDS)]
