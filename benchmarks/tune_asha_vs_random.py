"""tune_asha_vs_random: time until some trial reaches the target value, random search with ASHA against random
search without stopping, same workers, same trial budget, same configurations (target >= 3x faster, median
over 5 study seeds).

Each study is a real one, run as `hpcx tune` runs it but without a scheduler: a study directory (study.json and
``trials/``) and W = 4 ``python -m hpcx.tune.worker`` processes (``HPCX_RUN_DIR``, ``HPCX_TASK_ID``), each looping
ask -> run -> tell. The trial is a script whose steps sleep (so time is set by the schedule, not by the CPU),
logging ``loss`` with ``hpcx.runtime.log`` and stopping when asked (``preempt.should_stop``); its loss curve is
:func:`curve` of its parameters: a final value set by lr, width and the optimizer, approached at a speed that
also depends on them, so that wide networks, small learning rates and SGD start slow (the curves cross) and the
first rung predicts the final value only partly (the rank correlation is printed).

Both arms use the random sampler with the same study seed, and hpcx derives trial n's sampler seed from the
study's seed and n, so trial n has the same parameters in both: the only difference is the stopping rule (ASHA,
eta 3, rungs 3, 9, 27 of 81 steps, against none). The target is a fixed quantile of the final loss over 20,000
configurations drawn uniformly from the space. Time to target: from the workers' start to the ``t`` of the first
metric record, in any worker's metrics file, whose loss is at or below the target; the study is then ended (the
workers killed, the running trials told to exit). A study that spends its budget without reaching the target
counts its whole length (a lower bound) and says so. Ratio per seed: random's time / ASHA's; the row is their
median.
"""

from __future__ import annotations

import inspect
import json
import math
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, Skip, main, python_env, result

WORKERS = 4
RUNGS = (3, 9, 27)
MAX_STEP = 81
ETA = 3
STEP_S = 0.04
TARGET_QUANTILE = 0.03
STUDY_LIMIT_S = 240.0
CONTROL_INTERVAL_S = (
    "0.1"  # how often a trial looks for a stop request (1 s by default; docs: lower it for fast loops)
)
SPACE = {
    "lr": {"float": [1.0e-4, 1.0e-1], "log": True},
    "width": {"int": [16, 256], "log": True},
    "optimizer": {"choice": ["adam", "sgd"]},
}


def curve(lr: float, width: int, optimizer: str, step: int) -> float:
    """The loss at ``step``: the final value falls with distance from lr 3e-3, with width and with Adam; the
    speed (time constant ``tau`` in steps) is lower for small lr, wide networks and SGD."""
    x = math.log10(lr)
    final = (
        0.1 + 0.08 * (x + 2.5) ** 2 + 0.025 * math.log2(256 / width) + (0.05 if optimizer == "sgd" else 0.0)
    )
    tau = 4.0 * 10 ** (-0.3 * (x + 2.5)) * (width / 64) ** 0.1 * (1.5 if optimizer == "sgd" else 1.0)
    return final + (1.0 - final) / (1.0 + step / tau)


TRIAL = """
import math, os, sys, time
from hpcx import runtime
from hpcx.runtime import preempt
lr, width, optimizer = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
steps, step_s, done = int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
state = preempt.install()
for step in range(1, steps + 1):
    time.sleep(step_s)
    runtime.log(step, loss=curve(lr, width, optimizer, step))
    if preempt.should_stop(state, step=step) or os.path.exists(done):
        sys.exit(0)
"""


# ---------------------------------------------------------------- the task and its target


def draw(rng: random.Random) -> tuple[float, int, str]:
    return 10 ** rng.uniform(-4.0, -1.0), round(2 ** rng.uniform(4.0, 8.0)), rng.choice(["adam", "sgd"])


def ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0] * len(values)
    for rank, index in enumerate(order):
        out[index] = rank
    return out


def calibrate(n: int = 20_000, seed: int = 0) -> dict[str, float]:
    """The target (a quantile of the final loss over ``n`` uniform configurations) and the rank correlation of
    the loss at each rung with the final one (Spearman's rho: 1 would make the first rung a perfect guide)."""
    rng = random.Random(seed)
    configs = [draw(rng) for _ in range(n)]
    final = [curve(*c, MAX_STEP) for c in configs]
    out = {"target": sorted(final)[int(TARGET_QUANTILE * n)]}
    final_ranks = ranks(final)
    for rung in RUNGS:
        early = ranks([curve(*c, rung) for c in configs])
        d2 = sum((a - b) ** 2 for a, b in zip(early, final_ranks))
        out[f"rho_{rung}"] = 1 - 6 * d2 / (n * (n * n - 1))
    return out


# ---------------------------------------------------------------- one study


def study_doc(script: Path, done: Path, seed: int, trials: int, asha: bool) -> dict[str, Any]:
    command = [
        sys.executable,
        str(script),
        "{lr}",
        "{width}",
        "{optimizer}",
        str(MAX_STEP),
        str(STEP_S),
        str(done),
    ]
    return {
        "name": "asha-bench" if asha else "random-bench",
        "kind": "serial",
        "command": command,
        "space": SPACE,
        "objectives": {"metric": "loss", "direction": "minimize"},
        "budget": {"trials": trials, "resource": {"min": RUNGS[0], "max": MAX_STEP}},
        "sampler": "random",
        "stopping": {"rule": "asha", "eta": ETA} if asha else "none",
        "workers": WORKERS,
        "seed": seed,
    }


def make_study(run_dir: Path, doc: dict[str, Any]) -> None:
    """A study directory as `hpcx tune` leaves it for its workers: study.json and an empty trials/."""
    from hpcx.rundir.layout import STUDY_FILE, TRIALS_DIR
    from hpcx.tune.spec import parse_study, spec_digest

    spec = parse_study(doc)
    (run_dir / TRIALS_DIR).mkdir(parents=True)
    record = {"format": 1, "digest": spec_digest(spec), "spec": spec.to_dict()}
    (run_dir / STUDY_FILE).write_text(json.dumps(record))


def worker_env(run_dir: Path) -> dict[str, str]:
    """The workers' environment: this one without hpcx's and Slurm's variables, bytecode cached (python_env)."""
    base = {k: v for k, v in python_env().items() if not k.startswith(("HPCX_", "SLURM_", "SBATCH_"))}
    base.update(
        PATH=f"{Path(sys.executable).parent}:{base.get('PATH', '')}",
        PYTHONPATH=str(REPO),
        HPCX_RUN_DIR=str(run_dir),
        HPCX_CONTROL_INTERVAL_S=CONTROL_INTERVAL_S,
    )
    return base


def warm_up(tmp: Path) -> None:
    """One untimed import of what workers and trials import, so every study finds its bytecode cached."""
    code = "import optuna, hpcx.tune.worker, hpcx.tune.sampling, hpcx.runtime, hpcx.runtime.preempt"
    env = {k: v for k, v in worker_env(tmp).items() if k != "HPCX_RUN_DIR"}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True, timeout=120)


def start_workers(run_dir: Path, log: Path) -> list[subprocess.Popen[bytes]]:
    base = worker_env(run_dir)
    with open(log, "ab") as err:
        return [
            subprocess.Popen(
                [sys.executable, "-m", "hpcx.tune.worker"],
                env={**base, "HPCX_TASK_ID": str(task)},
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            for task in range(WORKERS)
        ]


class Watch:
    """Reads the workers' metrics files as they grow; the time of the first record at or below the target."""

    def __init__(self, run_dir: Path, target: float) -> None:
        self.run_dir, self.target = run_dir, target
        self.offsets: dict[Path, int] = {}
        self.hit: float | None = None

    def scan(self) -> float | None:
        for path in sorted((self.run_dir / "metrics").glob("task-*/rank-*.jsonl")):
            with open(path, "rb") as fh:
                fh.seek(self.offsets.get(path, 0))
                data = fh.read()
            whole = data[: data.rfind(b"\n") + 1]
            self.offsets[path] = self.offsets.get(path, 0) + len(whole)
            for line in whole.splitlines():
                record = json.loads(line)
                loss = record.get("loss")
                if record.get("type") == "metric" and isinstance(loss, float) and loss <= self.target:
                    self.hit = min(self.hit or math.inf, float(record["t"]))
        return self.hit


def end_study(procs: list[subprocess.Popen[bytes]], done: Path) -> None:
    """Workers killed (they are ours), then the trials they ran told to exit at their next step."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    done.touch()
    time.sleep(10 * STEP_S + 0.5)  # a trial exits at its next step; one still starting, at its first


def run_study(
    tmp: Path, name: str, doc_args: tuple[int, int, bool], target: float, script: Path
) -> dict[str, Any]:
    """One study to its target or the end of its budget: the time to target and what the files say."""
    run_dir, done = tmp / name, tmp / f"{name}.done"
    make_study(run_dir, study_doc(script, done, *doc_args))
    watch = Watch(run_dir, target)
    t0 = time.time()
    procs = start_workers(run_dir, tmp / "workers.log")
    while watch.scan() is None and time.time() - t0 < STUDY_LIMIT_S:
        if all(p.poll() is not None for p in procs):
            watch.scan()
            break
        time.sleep(0.05)
    end = time.time()
    end_study(procs, done)
    if any(p.returncode not in (0, -signal.SIGKILL) for p in procs):
        raise RuntimeError(f"a worker of {name} failed: {(tmp / 'workers.log').read_text()[-2000:]}")
    return {"t0": t0, "hit": watch.hit, "end": end, **trial_facts(run_dir, t0)}


def trial_facts(run_dir: Path, t0: float) -> dict[str, Any]:
    """From the trial files: how many trials started and how they ended, when the first was created, and per
    stopped trial the time from its rung value's record to its worker's next trial (the turnaround)."""
    from hpcx.tune.store import TrialFiles

    trials = TrialFiles(run_dir).trials()
    by_worker: dict[str, list[Any]] = {}
    for trial in trials.values():
        by_worker.setdefault(str(trial.doc.get("worker", {}).get("task")), []).append(trial)
    turnaround = []
    for mine in by_worker.values():
        mine.sort(key=lambda t: float(t.doc.get("created_at") or 0.0))
        for trial, following in zip(mine, mine[1:]):
            if trial.state == "stopped":
                rung = int(trial.end["rung"])
                turnaround.append(float(following.doc["created_at"]) - trial.rung_at[rung])
    states = [t.state for t in trials.values()]
    created = [float(t.doc.get("created_at") or math.inf) for t in trials.values()]
    return {
        "started": len(trials),
        "states": {s: states.count(s) for s in sorted(set(states))},
        "first_trial_s": (min(created) - t0) if created else math.nan,
        "turnaround_s": turnaround,
    }


def first_reaching(seed: int, trials: int, target: float, script: Path) -> int | None:
    """The first trial number whose configuration can reach the target (the random sampler's trial n depends on
    the study's seed and n only, so both arms propose it)."""
    from hpcx.tune import sampling
    from hpcx.tune.spec import parse_study

    spec = parse_study(study_doc(script, script, seed, trials, True))
    for number in range(trials):
        params, _ = sampling.propose(spec, {}, number)
        if (
            min(curve(params["lr"], params["width"], params["optimizer"], s) for s in range(1, MAX_STEP + 1))
            <= target
        ):
            return number
    return None


# ---------------------------------------------------------------- seeds and rows


def seconds(study: dict[str, Any], since: str = "t0") -> float:
    """Time to target (or to the end of the study when it never got there) from the workers' start or, with
    ``since="first"``, from the first trial's creation."""
    start = study["t0"] + (study["first_trial_s"] if since == "first" else 0.0)
    return (study["hit"] if study["hit"] is not None else study["end"]) - start


def one_seed(tmp: Path, seed: int, trials: int, target: float, script: Path) -> dict[str, Any]:
    """Both arms of one seed, the order alternating with the seed so that a drift in load hits both alike."""
    arms = ("asha", "random") if seed % 2 else ("random", "asha")
    out: dict[str, Any] = {"seed": seed, "first_reaching": first_reaching(seed, trials, target, script)}
    for arm in arms:
        out[arm] = run_study(tmp, f"{arm}-{seed}", (seed, trials, arm == "asha"), target, script)
    return out


def ratio_row(metric: str, seeds: list[dict[str, Any]], since: str, target: float | None) -> dict[str, Any]:
    """The median over seeds of random's time / ASHA's; a seed where neither arm reached the target says nothing
    about the time to it and is left out (``n`` counts the seeds used)."""
    used = [s for s in seeds if s["random"]["hit"] is not None or s["asha"]["hit"] is not None]
    ratios = [seconds(s["random"], since) / seconds(s["asha"], since) for s in used]
    rand = statistics.median(seconds(s["random"], since) for s in used) if used else math.nan
    asha = statistics.median(seconds(s["asha"], since) for s in used) if used else math.nan
    row = result(
        metric,
        round(statistics.median(ratios), 2) if ratios else math.nan,
        "x",
        f"random search without stopping {rand:.1f} s vs ASHA {asha:.1f} s (medians); per seed "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + (
            f"; {len(seeds) - len(used)} seed(s) where neither reached the target left out"
            if len(used) < len(seeds)
            else ""
        ),
        target,
        n=len(ratios),
    )
    row["better"] = "higher"
    return row


def seed_row(s: dict[str, Any]) -> dict[str, Any]:
    rand, asha = s["random"], s["asha"]

    def said(study: dict[str, Any]) -> str:
        reached = "" if study["hit"] is not None else " (target not reached: the whole budget)"
        cut = {"running": "cut off at the target"}  # the study ended when a trial reached it
        states = ", ".join(f"{n} {cut.get(state, state)}" for state, n in study["states"].items())
        return f"{seconds(study):.1f} s{reached}, {study['started']} trials started ({states})"

    return result(
        f"tune_asha_vs_random_seed_{s['seed']}",
        round(seconds(rand) / seconds(asha), 2),
        "x",
        f"random {said(rand)}; ASHA {said(asha)}; first trial able to reach the target: {s['first_reaching']}",
    )


def rho_rows(facts: dict[str, float]) -> list[dict[str, Any]]:
    return [
        result(
            f"curve_rho_rung_{r}",
            round(facts[f"rho_{r}"], 3),
            "rho",
            f"rank correlation, step {r} vs {MAX_STEP}",
        )
        for r in RUNGS
    ]


def rows(seeds: list[dict[str, Any]], facts: dict[str, float], trials: int) -> list[dict[str, Any]]:
    turnaround = sorted(t for s in seeds for t in s["asha"]["turnaround_s"])
    starts = [s[arm]["first_trial_s"] for s in seeds for arm in ("asha", "random")]
    setting = f"{WORKERS} workers, {trials} trials, steps of {STEP_S * 1000:.0f} ms, {len(seeds)} seeds"
    return [
        ratio_row("tune_asha_vs_random", seeds, "t0", 3.0),
        ratio_row("tune_asha_vs_random_from_first_trial", seeds, "first", None),
        *[seed_row(s) for s in seeds],
        result(
            "target_loss", round(facts["target"], 4), "loss", f"{TARGET_QUANTILE:.0%} quantile; {setting}"
        ),
        *rho_rows(facts),
        result(
            "asha_stop_turnaround_ms",
            round(statistics.median(turnaround) * 1000) if turnaround else math.nan,
            "ms",
            "stopped trial: its rung value recorded -> its worker's next trial created (median)",
            n=len(turnaround),
        ),
        result(
            "worker_start_s",
            round(statistics.median(starts), 2),
            "s",
            "workers started -> first trial created",
        ),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    try:
        import optuna  # noqa: F401  (the workers' samplers)
    except ImportError:
        raise Skip("Optuna is not installed (pip install 'hpcx[tune]')") from None
    seeds, trials = ((1, 2), 32) if quick else ((1, 2, 3, 4, 5), 64)
    facts = calibrate()
    with tempfile.TemporaryDirectory(prefix="hpcx-tune-asha-") as tmp:
        script = Path(tmp) / "trial.py"
        script.write_text(inspect.getsource(curve) + TRIAL)
        warm_up(Path(tmp))
        done = [one_seed(Path(tmp), seed, trials, facts["target"], script) for seed in seeds]
    return rows(done, facts, trials)


if __name__ == "__main__":
    sys.exit(main("tune_asha_vs_random", run, __doc__))
