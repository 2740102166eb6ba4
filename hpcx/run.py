"""``python -m hpcx.run [options] -- CMD ARGS...``: run one rank's command under hpcx.

It records who this rank is, samples the command's process tree (memory, CPU time, threads, I/O bytes)
into the run's profile records and, on the node's lowest local rank, the node's sensors (memory, network,
RAPL, NVML) into the node's file; it forwards signals (preemption, cancel) to the command, and exits with
the command's exit status.
Jobs start here, never through click: this module imports nothing from the login side.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpcx.errors import UsageError
from hpcx.profiling.sampler import EDGE_EVERY_S, Sampler
from hpcx.profiling.sources import node_sources, tree_pids
from hpcx.profiling.workers import WorkerWatch
from hpcx.rundir import layout
from hpcx.rundir.process import metrics_dir_from_env
from hpcx.rundir.records import RecordWriter
from hpcx.rundir.tasks import fill_command, read_task, task_env
from hpcx.runtime import torchenv
from hpcx.runtime.metrics import Heartbeat, heartbeat_interval_s
from hpcx.runtime.rankenv import RankEnv, detect

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCONT)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hpcx.run", description=__doc__.splitlines()[0])
    parser.add_argument("--profile-dir", help="where rank records go (default: $HPCX_RUN_DIR/profile)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples (default 1)")
    parser.add_argument(
        "--edge-interval",
        type=float,
        default=EDGE_EVERY_S,
        help=f"seconds between energy-counter window edges (default {EDGE_EVERY_S:g})",
    )
    parser.add_argument("--no-profile", action="store_true", help="record nothing, only run the command")
    parser.add_argument(
        "--task-id", type=int, help="this array task's id (records go to profile/task-NNNNN/)"
    )
    parser.add_argument("--task-table", help="a sweep's tasks.jsonl: set HPCX_PARAM_* and fill {name} in CMD")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command given: python -m hpcx.run -- CMD ARGS...")
    if args.interval <= 0:
        parser.error(f"--interval {args.interval} must be positive")
    if args.edge_interval < args.interval:
        parser.error(f"--edge-interval {args.edge_interval} must be at least --interval {args.interval}")
    return args


def _profile_dir(args: argparse.Namespace) -> Path | None:
    """Where this rank's records go: --profile-dir, else the run's profile/; None with --no-profile, outside a
    run, or in a job submitted with ``hpcx submit --no-profile`` (HPCX_PROFILE=0)."""
    if args.no_profile:
        return None
    if args.profile_dir:
        return Path(args.profile_dir)
    if os.environ.get("HPCX_PROFILE") == "0":
        return None
    run_dir = os.environ.get("HPCX_RUN_DIR")
    if not run_dir:
        return None
    return layout.profile_dir(run_dir, args.task_id)


def _start_record(
    rank: RankEnv, child_pid: int, command: list[str], interval_s: float, step: str | None
) -> dict[str, object]:
    return {
        "type": "start",
        "t": time.time(),
        "rank": rank.rank,
        "size": rank.size,
        "local_rank": rank.local_rank,
        "node": rank.node,
        "host": socket.gethostname(),
        "pid": child_pid,
        "launcher": rank.launcher,
        "job_id": rank.job_id,
        "step": step,
        "attempt": rank.attempt,
        "argv": command,
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "interval_s": interval_s,
        "node_collector": rank.local_rank == 0,
    }


def step_id() -> str | None:
    """This job step's id under srun (SLURM_STEP_ID), None outside a step (the batch script, no Slurm)."""
    return os.environ.get("SLURM_STEP_ID") or os.environ.get("SLURM_STEPID") or None


def _start_sampler(
    profile_dir: Path,
    rank: RankEnv,
    child_pid: int,
    command: list[str],
    interval_s: float,
    edge_s: float = EDGE_EVERY_S,
    agent: bool = False,
) -> tuple[RecordWriter, Sampler]:
    """The rank's writer and sampler, into a file of the rank's own job step (two sruns in one allocation each
    have a rank 0); the node's lowest local rank also collects the node's sensors, into a node file of its own
    job step (two concurrent sruns on a node each have a local rank 0). A torchrun agent is not a rank: its
    records go to the node's agent file, and its workers' to rank files of their own (_watch_workers)."""
    step = step_id()
    # line_flush=False: synced every 5 s by the sampler
    path = (
        layout.agent_file(profile_dir, rank.node, step, rank.rank)
        if agent
        else layout.rank_file(profile_dir, rank.rank, step)
    )
    writer = RecordWriter(path, line_flush=False)
    writer.write(
        {**_start_record(rank, child_pid, command, interval_s, step), **({"role": "agent"} if agent else {})}
    )
    node_writer = None
    if rank.local_rank == 0:
        node_writer = RecordWriter(layout.node_file(profile_dir, rank.node, step), line_flush=False)
        node_writer.write(
            {
                "type": "start",
                "t": time.time(),
                "node": rank.node,
                "host": socket.gethostname(),
                "rank": rank.rank,
                "job_id": rank.job_id,
                "step": step,
                "attempt": rank.attempt,
                "interval_s": interval_s,
                "edge_s": edge_s,
            }
        )
    sampler = Sampler(
        child_pid,
        writer,
        rank.rank,
        interval_s=interval_s,
        node_writer=node_writer,
        node=rank.node,
        node_sources=node_sources() if node_writer else (),
        edge_s=edge_s,
    )
    sampler.start()
    return writer, sampler


def _watch_workers(
    profile_dir: Path, rank: RankEnv, agent_pid: int, interval_s: float, expected: int | None
) -> WorkerWatch:
    """Profile torchrun's workers as the ranks they are (hpcx.profiling.workers)."""
    ids = {"node": rank.node, "job_id": rank.job_id, "step": step_id(), "attempt": rank.attempt}
    watch = WorkerWatch(agent_pid, profile_dir, ids, interval_s, expected)
    watch.start()
    return watch


WARNINGS = (signal.SIGUSR1, signal.SIGUSR2)  # Slurm's early warnings (--signal): default action terminate


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (the SigCgt mask in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


def _forward(child: subprocess.Popen[bytes], signum: int, rank: int) -> None:
    """Pass a signal on to the command. Slurm's time-limit warning (USR1/USR2) goes only to the processes of
    the command's tree that handle it: its default action is to terminate, so a program that never asked for
    it would die minutes before its limit and the job end FAILED instead of running to its time."""
    if signum not in WARNINGS:
        # os.kill, not Popen.send_signal: that polls first and so may reap a child that has just exited,
        # and the wait4 below would then find no child (a signal racing the end of the job).
        try:
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass
        return
    signum, why = _warning_signal(child.pid, signum)
    takers = [p for p in tree_pids(child.pid) if catches(p, signum)]
    for pid in takers:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    name = signal.Signals(signum).name
    if takers and why:
        print(
            f"hpcx.run: rank {rank}: the time-limit warning passed on as {name}: {why}",
            file=sys.stderr,
            flush=True,
        )
    if not takers:
        print(
            f"hpcx.run: rank {rank}: {name} (the time-limit warning) not passed on: the program does not "
            "handle it (hpcx.runtime.preempt.install() does)",
            file=sys.stderr,
            flush=True,
        )


def _warning_signal(pid: int, signum: int) -> tuple[int, str]:
    """The signal the time-limit warning reaches the program as, and why when not as sent: HPCX_WARNING_SIGNAL
    (USR1 or USR2) names it; else, when no process of the command handles the one Slurm sent but one handles
    the other (Lightning's auto-requeue listens on USR1), that one."""
    chosen = os.environ.get("HPCX_WARNING_SIGNAL", "").upper().removeprefix("SIG")
    if chosen in ("USR1", "USR2"):
        named = signal.Signals[f"SIG{chosen}"]
        return named, "" if named == signum else "HPCX_WARNING_SIGNAL says so"
    other = signal.SIGUSR1 if signum == signal.SIGUSR2 else signal.SIGUSR2
    tree = tree_pids(pid)
    if not any(catches(p, signum) for p in tree) and any(catches(p, other) for p in tree):
        return other, f"the program handles {other.name}, not {signal.Signals(signum).name}"
    return signum, ""


# A shell cannot trap what it was started with ignored (POSIX): a job script's `trap ... USR1` must keep working.
SHELLS = ("bash", "sh", "dash", "zsh", "ksh")


def _ignore_warnings() -> None:
    """In the command, before it starts: USR2 ignored until it installs a handler of its own. srun hands Slurm's
    time-limit warning (hpcx asks for it as USR2) to every process of the step, not only to hpcx.run, and a
    program that never asked for it would die of it (exit 140) minutes before its limit; hpcx.run passes it on
    to the processes that handle it (see _forward), as USR1 to one that handles only that. USR1 stays as it
    was: a framework that installs its handler only where none is set (Lightning) must find none. Not for a
    shell (SHELLS), which could then never trap it."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def _forwarder(child: subprocess.Popen[bytes], rank: int, alive: list[bool]) -> Callable[[int, Any], None]:
    """The handler of a forwarded signal: passes it on while the command has not been reaped (``alive``)."""

    def handler(signum: int, _frame: Any) -> None:
        if alive[0]:
            _forward(child, signum, rank)

    return handler


def _self_peak_rss_mb() -> float:
    """This wrapper's own peak RSS: the memory profiling costs the node beside the rank."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _apply_task(args: argparse.Namespace, rank: int, env: dict[str, str]) -> int | None:
    """With --task-table: the task's parameters into ``env`` and its placeholders into the command; the exit
    status when its row cannot be read, else None."""
    if args.task_id is not None:
        env["HPCX_TASK_ID"] = str(args.task_id)
    if not args.task_table:
        return None
    if args.task_id is None:
        print("hpcx.run: --task-table needs --task-id", file=sys.stderr)
        return 2
    try:
        row = read_task(args.task_table, args.task_id)
    except (OSError, ValueError, UsageError) as exc:
        print(f"hpcx.run: rank {rank}: {exc}", file=sys.stderr)
        return 2
    env.update(task_env(row))
    args.command = fill_command(args.command, row)
    return None


def _profile_env(env: dict[str, str], profile_dir: Path | None) -> dict[str, str]:
    """``env`` with the rank's profile directory, where in-process records (hpcx.profiling.iometrics) go beside
    ours, and call tracing switched on for `hpcx submit --profile` (HPCX_PROFILE_COMM=1)."""
    if profile_dir is None:
        return env
    env["HPCX_PROFILE_DIR"] = str(profile_dir)
    if env.get("HPCX_PROFILE_COMM") == "1":
        from hpcx.profiling.comm import child_env

        env = child_env(env)
    return env


def _wait(child: subprocess.Popen[bytes], rank: int) -> tuple[int, Any]:
    """The command's exit status and the resource usage of its reaped tree (wait4 rather than wait: its
    rusage counts the CPU time and peak RSS of the whole tree)."""
    while True:
        try:
            _, status, usage = os.wait4(child.pid, 0)
            return os.waitstatus_to_exitcode(status), usage
        except InterruptedError:
            continue
        except ChildProcessError:  # reaped by something else in this process: Popen may know its status
            code, usage = child.returncode, resource.getrusage(resource.RUSAGE_CHILDREN)
            if code is None:
                print(
                    f"hpcx.run: rank {rank}: the command's exit status was lost (its process was "
                    "reaped by something else); exiting 255",
                    file=sys.stderr,
                    flush=True,
                )
                code = 255
            return code, usage


def _finish(
    writer: RecordWriter,
    sampler: Sampler,
    rank: int,
    exit_code: int,
    t0: float,
    usage: Any,
    extra: dict[str, Any] | None = None,
) -> None:
    """Stop sampling and write the rank's end record (an agent's with what it says of its workers)."""
    sampler.stop()
    writer.write(
        {
            "type": "end",
            "t": time.time(),
            "rank": rank,
            "exit_code": exit_code,
            "wall_s": time.time() - t0,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": max(usage.ru_maxrss / 1024, sampler.peak_rss_mb),
            "samples": sampler.samples,
            "sampler_cpu_s": round(sampler.cpu_s, 4),
            "sampler_rss_mb": _self_peak_rss_mb(),
            **(extra or {}),
        }
    )
    writer.close()


def _heartbeat(env: dict[str, str], rank: RankEnv) -> Heartbeat | None:
    """The rank's heartbeat beside its metrics, started; None outside a run (no HPCX_RUN_DIR)."""
    directory = metrics_dir_from_env(env)
    if directory is None:
        return None
    path = layout.heartbeat_file(directory, rank.rank)
    return Heartbeat(path, heartbeat_interval_s(env), rank.rank, rank.attempt).start()


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    rank = detect()
    env = {**os.environ, "HPCX_RANK": str(rank.rank), "HPCX_WORLD_SIZE": str(rank.size)}
    if torchenv.wanted(env, rank, args.command):  # a script written for torchrun runs unchanged
        values, notes = torchenv.torchrun_env(env, rank)
        env.update(values)
        env["PYTHONPATH"] = torchenv.with_exit_site(env)
        for note in notes:
            print(f"hpcx.run: rank {rank.rank}: {note}", file=sys.stderr, flush=True)
    agent = torchenv.is_agent(args.command)  # torchrun's agent: its workers are the ranks
    if agent and torchenv.torch_job(env):
        env["PYTHONPATH"] = torchenv.with_exit_site(env)
    failed = _apply_task(args, rank.rank, env)
    if failed is not None:
        return failed
    profile_dir = _profile_dir(args)
    env = _profile_env(env, profile_dir)
    t0 = time.time()
    try:
        shell = Path(args.command[0]).name in SHELLS
        child = subprocess.Popen(args.command, env=env, preexec_fn=None if shell else _ignore_warnings)
    except OSError as exc:
        print(f"hpcx.run: rank {rank.rank} cannot start {args.command[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127
    heartbeat = _heartbeat(env, rank)
    alive = [True]
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, _forwarder(child, rank.rank, alive))
    writer = sampler = watch = None
    if profile_dir is not None:
        writer, sampler = _start_sampler(
            profile_dir, rank, child.pid, args.command, args.interval, args.edge_interval, agent
        )
        if agent:
            expected = torchenv.expected_workers(args.command, env)
            watch = _watch_workers(profile_dir, rank, child.pid, args.interval, expected)
    code, usage = _wait(child, rank.rank)
    alive[0] = False  # reaped: its pid may be reused, so no signal goes to it any more
    if heartbeat is not None:
        heartbeat.stop()
    exit_code = code if code >= 0 else 128 - code
    workers = watch.finish(exit_code) if watch is not None else {}
    if writer is not None and sampler is not None:
        _finish(writer, sampler, rank.rank, exit_code, t0, usage, workers)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
