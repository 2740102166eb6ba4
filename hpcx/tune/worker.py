"""A study's worker: one array task of `hpcx tune` that loops ask -> run -> tell while the budget lasts.

``python -m hpcx.tune.worker`` runs inside the job (under ``python -m hpcx.run``, so ``$HPCX_RUN_DIR`` names the
study's run directory and ``$HPCX_TASK_ID`` the worker). Each loop:

1. marks lost the trials whose worker stopped beating (``HPCX_TUNE_LOST_S``, three heartbeats) and retries the
   first one this worker marked, under a new number with the same parameters;
2. otherwise takes the lowest free trial number below the budget, asks the sampler for its parameters
   (hpcx.tune.sampling) and creates the trial file; none left: the worker ends;
3. runs the study's command for it ({name} placeholders filled; HPCX_TUNE_TRIAL, HPCX_TUNE_SEED and
   HPCX_PARAM_<NAME> in its environment), beating every ``HPCX_TUNE_BEAT_S`` seconds and following the metrics the
   trial logs (``hpcx.runtime.log`` tags them with the trial): at each rung it records the objective's value and
   asks the stopping rule; a stopped trial gets a stop request (the live-experiments one, seen at its next
   ``should_stop()``) and, if it has not ended ``HPCX_TUNE_STOP_GRACE_S`` later, SIGKILL;
4. ends the trial: complete with its last objective values, stopped, or failed (its exit status, or no value of
   the objective logged).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcx.fsutil import atomic_write_json, read_json
from hpcx.rundir.layout import STUDY_FILE, rank_file, stop_request_file, stopped_file
from hpcx.rundir.process import metrics_dir_from_env
from hpcx.rundir.tasks import fill_command
from hpcx.tune import sampling
from hpcx.tune.spec import StudySpec, parse_study, rungs_of
from hpcx.tune.stopping import Decision, Rule, decide
from hpcx.tune.store import TrialFiles, rung_values

POLL_S = 0.5


def study_of(run_dir: Path) -> StudySpec:
    """The study spec the run directory was submitted with (study.json)."""
    return parse_study(read_json(run_dir / STUDY_FILE)["spec"])


def rule_of(spec: StudySpec) -> Rule:
    directions = tuple(o.direction for o in spec.objectives)
    if spec.stopping.rule == "none":
        return Rule("none", directions=directions)
    return Rule(
        spec.stopping.rule,
        eta=spec.stopping.eta or 3,
        rungs=rungs_of(spec.stopping, spec.budget),
        warmup=spec.stopping.warmup or 0,
        directions=directions,
    )


@dataclass
class Settings:
    beat_s: float = 10.0
    lost_s: float = 30.0
    stop_grace_s: float = 30.0

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str]) -> Settings:
        beat = float(env.get("HPCX_TUNE_BEAT_S") or 10.0)
        return cls(
            beat,
            float(env.get("HPCX_TUNE_LOST_S") or 3 * beat),
            float(env.get("HPCX_TUNE_STOP_GRACE_S") or 30.0),
        )


@dataclass
class Follow:
    """What the worker has read of the metrics file and decided for the running trial."""

    number: int
    path: Path | None
    offset: int = 0
    last: dict[str, float] = field(default_factory=dict)  # the objective metrics' latest values
    recorded: set[int] = field(default_factory=set)  # rungs recorded
    stopped: Decision | None = None


def who() -> dict[str, Any]:
    return {
        "task": os.environ.get("HPCX_TASK_ID"),
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "host": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),  # Slurm's name for the node
        "pid": os.getpid(),
    }


def next_trial(files: TrialFiles, spec: StudySpec, settings: Settings) -> tuple[int, dict[str, Any]] | None:
    """The trial this worker runs next: a retry of a trial it found lost, else a new one; None when the budget
    is spent."""
    # one at a time: a worker runs the retry of each trial it marks, so it marks no more than it takes on now
    for lost in files.mark_lost(settings.lost_s, limit=1):
        retry = files.claim(
            {"params": lost.params, "worker": who(), "based_on": []}, spec.budget.trials, retry_of=lost.number
        )
        if retry is not None:
            return retry, lost.params
    while True:
        trials = files.trials()
        free = [n for n in range(spec.budget.trials) if n not in trials]
        if not free:
            return None
        number = free[0]
        params, based = sampling.propose(spec, trials, number)
        doc = {
            "params": params,
            "worker": who(),
            "based_on": based,
            "number": number,
            "retry_of": None,
            "created_at": time.time(),
        }
        if files.create(number, doc):
            return number, params


def trial_command(
    spec: StudySpec, number: int, params: dict[str, Any], study_dir: Path
) -> tuple[list[str], dict[str, str]]:
    seed = sampling.trial_seed(spec.seed, number)
    task = {
        "params": {**params, "trial": number},
        "seed": seed,
        "task": number,
        "name": f"trial-{number}",
    }
    env = {
        **os.environ,
        "HPCX_TUNE_TRIAL": str(number),
        "HPCX_TUNE_SEED": str(seed),
        "HPCX_TUNE_STUDY": str(study_dir),
    }
    env.update(
        {f"HPCX_PARAM_{k.upper()}": json.dumps(v) if not isinstance(v, str) else v for k, v in params.items()}
    )
    return fill_command(list(spec.command), task), env


def follow(files: TrialFiles, spec: StudySpec, rule: Rule, state: Follow) -> None:
    """Read what the trial logged since last time; record the rungs it crossed and ask the rule at each."""
    if state.path is None or state.stopped is not None:
        return
    for record in _new_records(state):
        if record.get("trial") != state.number or record.get("type") != "metric":
            continue
        state.last.update(
            {o.metric: record[o.metric] for o in spec.objectives if _number(record.get(o.metric))}
        )
        step = record.get("step")
        if isinstance(step, int) and len(state.last) == len(spec.objectives):
            _rungs_crossed(files, spec, rule, state, step)
            if state.stopped is not None:
                return


def _rungs_crossed(files: TrialFiles, spec: StudySpec, rule: Rule, state: Follow, step: int) -> None:
    for rung in rule.rungs:
        if rung > step or rung in state.recorded:
            continue
        value = _value(spec, state.last)
        files.record_rung(state.number, rung, value)
        state.recorded.add(rung)
        trials = files.trials()
        decision = decide(rule, rung_values(trials.values()), state.number, rung)
        if not decision.continue_:
            state.stopped = decision
            return


def _value(spec: StudySpec, last: dict[str, float]) -> Any:
    values = [float(last[o.metric]) for o in spec.objectives]
    return values[0] if len(values) == 1 else values


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _new_records(state: Follow) -> list[dict[str, Any]]:
    assert state.path is not None
    try:
        with open(state.path, "rb") as fh:
            fh.seek(state.offset)
            data = fh.read()
    except OSError:
        return []
    whole = data[: data.rfind(b"\n") + 1]
    state.offset += len(whole)
    out = []
    for line in whole.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def run_trial(
    files: TrialFiles, spec: StudySpec, rule: Rule, number: int, params: dict[str, Any], settings: Settings
) -> None:
    """Run trial ``number`` to its end and record how it ended."""
    command, env = trial_command(spec, number, params, files.run_dir)
    metrics = metrics_dir_from_env()
    path = rank_file(metrics, 0) if metrics is not None else None
    state = Follow(number, path, offset=path.stat().st_size if path is not None and path.exists() else 0)
    files.beat(number)
    try:
        proc = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_die_with_worker)
    except OSError as exc:  # the command cannot start: every trial would fail alike, so the worker stops
        files.finish(number, "failed", reason=f"cannot start {command[0]}: {exc.strerror or exc}")
        raise
    next_beat, kill_at = time.monotonic() + settings.beat_s, None
    while proc.poll() is None:
        time.sleep(POLL_S)
        if time.monotonic() >= next_beat:
            files.beat(number)
            next_beat += settings.beat_s
        if kill_at is None:
            follow(files, spec, rule, state)
            if state.stopped is not None:
                _stop(files, number, state.stopped)
                kill_at = time.monotonic() + settings.stop_grace_s
        elif time.monotonic() >= kill_at:
            os.killpg(proc.pid, signal.SIGKILL)
    follow(files, spec, rule, state)
    _settle(files, spec, state, proc.returncode)
    _clear_stop_request()


def _die_with_worker() -> None:
    """In the trial's process before it runs: killed when its worker dies (Linux's parent-death signal), so a
    cancelled or killed worker leaves no trial running on (Slurm's cgroup does it too; the local backend not)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop(files: TrialFiles, number: int, decision: Decision) -> None:
    files.finish(
        number, "stopped", rung=decision.rung, rank=decision.rank, of=decision.of, reason=decision.reason
    )
    task = os.environ.get("HPCX_TASK_ID")
    run_dir = os.environ.get("HPCX_RUN_DIR")
    if run_dir:
        request = {
            "id": f"tune-trial-{number}",
            "by": "hpcx tune",
            "at": time.time(),
            "reason": decision.reason,
        }
        path = stop_request_file(run_dir, int(task) if task and task.isdigit() else None)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, request)


def _clear_stop_request() -> None:
    """The stop request was for one trial: gone before the next one starts (its acknowledgement too, so the
    worker's task does not read as stopped)."""
    task, run_dir = os.environ.get("HPCX_TASK_ID"), os.environ.get("HPCX_RUN_DIR")
    if run_dir:
        t = int(task) if task and task.isdigit() else None
        stop_request_file(run_dir, t).unlink(missing_ok=True)
        stopped_file(run_dir, t).unlink(missing_ok=True)


def _settle(files: TrialFiles, spec: StudySpec, state: Follow, code: int) -> None:
    if state.stopped is not None:  # stopped at a rung, maybe read only after the trial had ended
        d = state.stopped
        files.finish(state.number, "stopped", rung=d.rung, rank=d.rank, of=d.of, reason=d.reason)
        return
    missing = [o.metric for o in spec.objectives if o.metric not in state.last]
    if code != 0:
        files.finish(state.number, "failed", exit_code=code, reason=f"the trial's command exited {code}")
    elif missing:
        reason = (
            f"the trial logged no value of {', '.join(missing)} (hpcx.runtime.log(step, {missing[0]}=...))"
        )
        files.finish(state.number, "failed", exit_code=0, reason=reason)
    else:
        files.finish(state.number, "complete", values=[float(state.last[o.metric]) for o in spec.objectives])


def work(run_dir: Path, settings: Settings) -> int:
    """Run trials until the budget is spent; the number of trials this worker ran."""
    spec, files = study_of(run_dir), TrialFiles(run_dir)
    rule, ran = rule_of(spec), 0
    while (picked := next_trial(files, spec, settings)) is not None:
        run_trial(files, spec, rule, picked[0], picked[1], settings)
        ran += 1
    return ran


def main(argv: list[str] | None = None) -> int:
    """``python -m hpcx.tune.worker [--study DIR]``: the study is the worker's own run directory, or DIR for the
    workers `hpcx tune --resume` submits as a run of their own."""
    args = sys.argv[1:] if argv is None else argv
    run_dir = args[1] if len(args) == 2 and args[0] == "--study" else os.environ.get("HPCX_RUN_DIR")
    if not run_dir or (args and len(args) != 2):
        print(
            "hpcx.tune.worker: started by hpcx tune (in a job: $HPCX_RUN_DIR, or --study DIR)",
            file=sys.stderr,
        )
        return 2
    ran = work(Path(run_dir), Settings.from_env(os.environ))
    print(f"hpcx.tune.worker: ran {ran} trial(s); the study's budget is spent", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
