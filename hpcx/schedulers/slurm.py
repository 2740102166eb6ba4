"""Slurm through its command-line tools: sbatch --parsable, squeue --json (text fallback), sacct -P, scancel."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hpcx import _proc
from hpcx.errors import CommandError, SchedulerError, UsageError
from hpcx.schedulers.base import JobRef, JobState, Scheduler, scrubbed_env, summarize_array
from hpcx.spec import parse_array

# Bounds on every Slurm call; HPCX_SLURM_TIMEOUT_S overrides both (a site with a slow controller raises it).
QUERY_TIMEOUT_S = float(os.environ.get("HPCX_SLURM_TIMEOUT_S", 30))
SUBMIT_TIMEOUT_S = float(os.environ.get("HPCX_SLURM_TIMEOUT_S", 60))
SACCT_FIELDS = "JobIDRaw,JobID,State,ExitCode,ElapsedRaw,NodeList,Reason"


class SlurmScheduler(Scheduler):
    name = "slurm"

    def submit(
        self, script: Path, run_dir: Path, *, env: Mapping[str, str] | None = None, args: Sequence[str] = ()
    ) -> str:
        result = _proc.run(
            ["sbatch", "--parsable", *args, str(script)],
            timeout_s=SUBMIT_TIMEOUT_S,
            env=env if env is not None else scrubbed_env(),
            cwd=run_dir,
        )
        return parse_sbatch_parsable(result.stdout)

    def status(self, jobs: Sequence[JobRef]) -> dict[str, JobState]:
        ids = sorted({j.job_id for j in jobs})
        if not ids:
            return {}
        found = self._squeue(ids)
        missing = sorted(set(ids) - {_base(s.job_id) for s in found})
        if missing:
            found += self._sacct(missing)
        out = {}
        for job_id in ids:
            members = [s for s in found if _base(s.job_id) == job_id]
            if members:
                out[job_id] = summarize_array(job_id, members)
        return out

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        ids = sorted({j.job_id for j in jobs})
        if ids:
            _proc.run(["scancel", *ids], timeout_s=QUERY_TIMEOUT_S)

    def _squeue(self, ids: list[str]) -> list[JobState]:
        # --me instead of --jobs: squeue fails the whole query when one of the ids was already purged.
        argv = ["squeue", "--json", "--states=all", "--me"]
        result = _proc.run(argv, timeout_s=QUERY_TIMEOUT_S, check=False)
        if result.returncode == 0:
            return [s for s in parse_squeue_json(result.stdout) if _base(s.job_id) in set(ids)]
        if "unrecognized option" in result.stderr or "--json" in result.stderr:
            return self._squeue_text(ids)
        raise CommandError(
            argv, result.returncode, result.stdout, result.stderr, why=f"exited {result.returncode}"
        )

    def _squeue_text(self, ids: list[str]) -> list[JobState]:
        result = _proc.run(
            ["squeue", "-h", "--states=all", "--me", "-o", "%i|%T|%r|%N"], timeout_s=QUERY_TIMEOUT_S
        )
        return [s for s in parse_squeue_text(result.stdout) if _base(s.job_id) in set(ids)]

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
        return list(parse_sacct(result.stdout).values())


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


def _number(value: Any) -> int | None:
    """Slurm >= 23.02 wraps numbers as {"set": bool, "number": n}; 22.05 prints them bare."""
    if isinstance(value, dict):
        return value.get("number") if value.get("set", True) else None
    return value if isinstance(value, int) else None


def _exit_code(value: Any) -> int | None:
    if isinstance(value, dict):  # >= 23.02: {"status": [...], "return_code": n or {"set","number"}}
        return _number(value.get("return_code"))
    raw = _number(value)
    # 22.05 prints the raw wait status: exit code in the high byte, terminating signal in the low byte
    # (sacct shows the same job as "3:0", or "0:15" when signalled).
    return None if raw is None else raw >> 8


def _job_id(job: dict[str, Any]) -> str:
    array_job, task = _number(job.get("array_job_id")), _number(job.get("array_task_id"))
    if array_job and task is not None and task < 4_000_000_000:  # NO_VAL marks an array's pending record
        return f"{array_job}_{task}"
    return str(_number(job.get("job_id")))


def parse_squeue_json(text: str) -> list[JobState]:
    """Job states from ``squeue --json`` (OpenAPI v0.0.38 in 22.05 and the later, wrapped forms)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchedulerError(f"squeue --json printed something that is not JSON: {text[:120]!r}") from exc
    out = []
    for job in doc.get("jobs", []):
        state = job.get("job_state")
        if isinstance(state, list):
            state = state[0] if state else "UNKNOWN"
        start, end = _number(job.get("start_time")), _number(job.get("end_time"))
        elapsed = end - start if start and end and end >= start else None
        out.append(
            JobState(
                job_id=_job_id(job),
                state=str(state),
                exit_code=_exit_code(job.get("exit_code")),
                reason=job.get("state_reason") or None,
                nodes=job.get("nodes") or None,
                elapsed_s=elapsed,
                source="squeue",
                pending_tasks=_count_tasks(job.get("array_task_string") or ""),
            )
        )
    return out


def parse_squeue_text(text: str) -> list[JobState]:
    out = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 2:
            out.append(
                JobState(
                    job_id=parts[0].strip(),
                    state=parts[1].strip(),
                    reason=(parts[2].strip() if len(parts) > 2 else None) or None,
                    nodes=(parts[3].strip() if len(parts) > 3 else None) or None,
                    source="squeue",
                )
            )
    return out


def parse_sacct(text: str) -> dict[str, JobState]:
    """Job states from ``sacct -P -n -X -o JobIDRaw,JobID,State,ExitCode,ElapsedRaw,NodeList,Reason``."""
    out = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 7:
            continue
        _raw, job_id, state, exit_code, elapsed, nodes, reason = parts[:7]
        code, _, _signal = exit_code.partition(":")
        out[job_id] = JobState(
            job_id=job_id,
            state=state.split()[0] if state else "UNKNOWN",
            exit_code=int(code) if code.isdigit() else None,
            reason=None if reason in ("", "None") else reason,
            nodes=nodes or None,
            elapsed_s=int(elapsed) if elapsed.isdigit() else None,
            source="sacct",
            pending_tasks=_count_tasks(job_id.partition("_")[2]) if "[" in job_id else 0,
        )
    return out
