"""The embedded default: run the rendered script with bash on this machine, same run directory as on Slurm."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from hpcx import _proc
from hpcx.errors import SchedulerError, UsageError
from hpcx.rundir.layout import LOGS_DIR
from hpcx.schedulers.base import JobRef, JobState, Scheduler, scrubbed_env, summarize_array

# The wrapper names its files after its own pid ($$ = the job id's number), so several jobs (a sweep's chunks)
# can share one run directory. It survives a cancel (it forwards SIGTERM to the running script, then stops),
# runs array tasks one after another with SLURM_ARRAY_TASK_ID set, and writes each exit code atomically; a task
# with a .skip file (`hpcx stop` of a sweep: a task that has not started) is not started and counts as cancelled.
_WRAPPER = r"""
cd logs; exec > "local-$$.out" 2> "local-$$.err"
stop=0; trap 'stop=1; kill -TERM "$c" 2>/dev/null' TERM INT
run() {  # run the script once; $1: the file stem for a task's output (empty: the job's own)
  if [ -n "$1" ]; then (cd "$wd" && exec bash "$script") > "$1.out" 2> "$1.err" & else (cd "$wd" && exec bash "$script") & fi
  c=$!
  while :; do wait "$c"; rc=$?; kill -0 "$c" 2>/dev/null || break; done
}
script=$1; wd=$2; shift 2; worst=0  # the script runs in wd, the directory it was submitted from
if [ $# -eq 0 ]; then run ""; worst=$rc; fi
for i in "$@"; do
  [ "$stop" = 1 ] && break
  if [ -e "local-$$_$i.skip" ]; then echo 143 > "local-$$_$i.exit"; continue; fi  # hpcx stop: not to start
  export SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_JOB_ID=$$
  run "local-$$_$i"; echo "$rc" > "local-$$_$i.exit.tmp" && mv "local-$$_$i.exit.tmp" "local-$$_$i.exit"
  [ "$rc" -gt "$worst" ] && worst=$rc
done
[ "$stop" = 1 ] && worst=143
echo "$worst" > "local-$$.exit.tmp" && mv "local-$$.exit.tmp" "local-$$.exit"; exit "$worst"
"""


def _array_indices(args: Sequence[str]) -> list[int]:
    from hpcx.spec import parse_array

    spec = next((a.split("=", 1)[1] for a in args if a.startswith("--array=")), None)
    return list(parse_array(spec).indices) if spec else []


def _state_of(code: int, job_id: str) -> JobState:
    state = "COMPLETED" if code == 0 else ("CANCELLED" if code in (143, 137) else "FAILED")
    return JobState(job_id, state, exit_code=code, source="local")


class LocalScheduler(Scheduler):
    name = "local"

    def submit(
        self,
        script: Path,
        run_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> str:
        """Start the script now, on this host; of sbatch's options only --array means something here."""
        job_env = dict(env if env is not None else scrubbed_env())
        indices = _array_indices(args)
        pid = _proc.spawn_detached(
            [
                "bash",
                "-c",
                _WRAPPER,
                "hpcx-local",
                str(script.resolve()),
                str(cwd or run_dir),
                *map(str, indices),
            ],
            stdout_path=os.devnull,
            stderr_path=os.devnull,
            env=job_env,
            cwd=run_dir,
        )
        if indices:
            (run_dir / LOGS_DIR / f"local-{pid}.array").write_text(" ".join(map(str, indices)) + "\n")
        return f"local-{pid}"

    def status(self, jobs: Sequence[JobRef]) -> dict[str, JobState]:
        return {j.job_id: self._state(j) for j in jobs}

    def _state(self, job: JobRef) -> JobState:
        logs, pid = job.run_dir / LOGS_DIR, _pid(job)
        array = logs / f"{job.job_id}.array"
        if array.exists():
            return self._array_state(job, [int(i) for i in array.read_text().split()], pid)
        exit_file = logs / f"{job.job_id}.exit"
        if exit_file.exists():
            return _state_of(int(exit_file.read_text().strip() or 1), job.job_id)
        if pid and _alive(pid):
            return JobState(job.job_id, "RUNNING", source="local")
        # The wrapper itself died (machine restart, kill -9): nobody can tell how the job ended.
        return JobState(
            job.job_id, "LOST", reason="the local job's process is gone without an exit code", source="local"
        )

    def _array_state(self, job: JobRef, indices: list[int], pid: int | None) -> JobState:
        logs, alive = job.run_dir / LOGS_DIR, bool(pid and _alive(pid))
        members = []
        for i in indices:
            exit_file = logs / f"{job.job_id}_{i}.exit"
            if exit_file.exists():
                members.append(_state_of(int(exit_file.read_text().strip() or 1), f"{job.job_id}_{i}"))
            elif alive:
                started = (logs / f"{job.job_id}_{i}.out").exists()
                members.append(
                    JobState(f"{job.job_id}_{i}", "RUNNING" if started else "PENDING", source="local")
                )
            else:  # the job ended (or died) before this task ran
                stopped = (logs / f"{job.job_id}.exit").exists()
                members.append(
                    JobState(f"{job.job_id}_{i}", "CANCELLED" if stopped else "LOST", source="local")
                )
        return summarize_array(job.job_id, members)

    def cancel(self, jobs: Sequence[JobRef]) -> None:
        one_task = [j.job_id for j in jobs if "_" in j.job_id]
        if one_task:  # the wrapper runs an array's tasks one after another in one process group
            raise UsageError(
                f"the local backend cannot cancel one task ({one_task[0]}) of an array",
                hint="cancel the whole run, or use a Slurm site",
            )
        for job in jobs:
            pid = _pid(job)
            if pid and _alive(pid):
                try:
                    os.killpg(pid, signal.SIGTERM)  # the wrapper leads its own session: kill the whole group
                except ProcessLookupError:
                    pass
                except PermissionError as exc:
                    raise SchedulerError(f"cannot cancel local job {job.job_id}: {exc}") from exc

    def cancel_waiting_tasks(self, jobs: Sequence[JobRef]) -> None:
        """The wrapper runs an array's tasks one after another: a task that has not started gets a .skip file
        that the wrapper reads before starting it (it then counts as cancelled)."""
        for job in jobs:
            index = job.job_id.partition("_")[2]
            if not index:
                self.cancel([job])
                continue
            logs = job.run_dir / LOGS_DIR
            if not (logs / f"{job.job_id}.out").exists():
                (logs / f"{job.job_id}.skip").write_text("hpcx stop\n")

    def signal(self, jobs: Sequence[JobRef], signal_name: str, *, batch: bool = True) -> None:
        """To the job script the wrapper runs (what Slurm's batch shell is), which passes it on to its ranks."""
        signum = signal.Signals[f"SIG{signal_name.removeprefix('SIG')}"]
        for job in jobs:
            pid = _pid(JobRef(job.job_id.partition("_")[0], job.run_dir))
            for child in _children(pid) if pid and _alive(pid) else []:
                try:
                    os.kill(child, signum)
                except ProcessLookupError:
                    pass


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def _pid(job: JobRef) -> int | None:
    """The wrapper's pid: the number in the job id ("local-1234")."""
    number = job.job_id.rsplit("-", 1)[-1]
    return int(number) if number.isdigit() else None


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
