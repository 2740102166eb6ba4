"""The embedded default: run the rendered script with bash on this machine, same run directory as on Slurm."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from hpcx import _proc
from hpcx.errors import SchedulerError
from hpcx.schedulers.base import JobRef, JobState, Scheduler, scrubbed_env

EXIT_FILE = "logs/local.exit"
PID_FILE = "logs/local.pid"
# The wrapper survives a cancel (it forwards SIGTERM to the script) and writes the script's exit code
# atomically (temp + rename) when the script ends, however it ends.
_WRAPPER = (
    'bash "$1" & c=$!; trap \'kill -TERM "$c" 2>/dev/null\' TERM INT; '
    'while :; do wait "$c"; rc=$?; kill -0 "$c" 2>/dev/null || break; done; '
    'echo "$rc" > "$2.tmp" && mv "$2.tmp" "$2"; exit "$rc"'
)


class LocalScheduler(Scheduler):
    name = "local"

    def submit(
        self, script: Path, run_dir: Path, *, env: Mapping[str, str] | None = None, args: Sequence[str] = ()
    ) -> str:
        # sbatch options (args) have no meaning here: the local backend runs the script at once, on this host.
        job_env = dict(env if env is not None else scrubbed_env())
        pid = _proc.spawn_detached(
            ["bash", "-c", _WRAPPER, "hpcx-local", str(script), str(run_dir / EXIT_FILE)],
            stdout_path=run_dir / "logs" / "local.out",
            stderr_path=run_dir / "logs" / "local.err",
            env=job_env,
            cwd=run_dir,
        )
        (run_dir / PID_FILE).write_text(f"{pid}\n")
        return f"local-{pid}"

    def status(self, jobs: Sequence[JobRef]) -> dict[str, JobState]:
        return {j.job_id: self._state(j) for j in jobs}

    def _state(self, job: JobRef) -> JobState:
        exit_file = job.run_dir / EXIT_FILE
        if exit_file.exists():
            code = int(exit_file.read_text().strip() or 1)
            state = "COMPLETED" if code == 0 else ("CANCELLED" if code in (143, 137) else "FAILED")
            return JobState(job.job_id, state, exit_code=code, source="local")
        pid = _pid(job)
        if pid and _alive(pid):
            return JobState(job.job_id, "RUNNING", source="local")
        # The wrapper itself died (machine restart, kill -9): nobody can tell how the job ended.
        return JobState(
            job.job_id, "LOST", reason="the local job's process is gone without an exit code", source="local"
        )

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        for job in jobs:
            pid = _pid(job)
            if pid and _alive(pid):
                try:
                    os.killpg(pid, signal.SIGTERM)  # the wrapper leads its own session: kill the whole group
                except ProcessLookupError:
                    pass
                except PermissionError as exc:
                    raise SchedulerError(f"cannot cancel local job {job.job_id}: {exc}") from exc


def _pid(job: JobRef) -> int | None:
    try:
        return int((job.run_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child not yet reaped) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
