"""tune_ask_ms_1000: one ask plus one stopping decision in a study of 1,000 finished trials, hpcx tune's files
against Optuna's journal file storage holding the same study (target <= 0.5).

Set-up (once, not timed): 1,000 trials whose parameters are drawn in the space of examples/tune/study.yaml (lr
log-float, width log-int, optimizer choice) and whose values at the rungs 3, 9, 27 and at step 81 come from a
seeded curve model; hpcx.tune.stopping.replay decides, in trial order, which stop at which rung (ASHA, eta 3), the
others complete. The same study is written twice:

- **hpcx**: a study directory whose ``trials/`` files are created with hpcx.tune.store.TrialFiles as a worker
  creates them (the trial with its parameters, worker and ``based_on``, each rung value, the end);
- **Optuna**: a ``JournalStorage(JournalFileBackend(...))`` file, written with the storage calls a worker's
  ask / suggest / report / tell make (create_trial, set_trial_param, set_trial_intermediate_value, then
  ``study.tell``), so its log holds the same operations a real Optuna study's would.

Timed, per round, in this process with every state fresh (Optuna imported once, the files in the page cache):

- **hpcx**: what ``python -m hpcx.tune.worker`` does for a new trial: a new TrialFiles lists ``trials/`` (every
  file read once), ``hpcx.tune.sampling.propose`` for trial 1,000 with the TPE sampler (constant liar, as the
  spec's ``tpe`` sets it), the trial file created; then its value at rung 3 recorded, ``trials/`` listed again
  and ``hpcx.tune.stopping.decide``;
- **Optuna**: what a worker using Optuna's journal pays for the same: a new JournalStorage over the file (it
  replays the whole log), ``load_study`` with TPESampler (same seed and options) and SuccessiveHalvingPruner
  (min_resource 3, reduction_factor 3, min_early_stopping_rate 0, bootstrap_count 0), ``study.ask()`` and the
  three suggests, then ``trial.report`` at step 3 and ``trial.should_prune()``.

The two alternate (hpcx, Optuna, hpcx, ...) after one untimed round; before each round the journal file is
copied back from its pristine copy and the hpcx trial's new files are removed (not timed). The ratio is the
median over rounds of hpcx / Optuna wall time (CPU time too); the phases (listing, propose, decision; replay,
ask, report + prune) are timed alone.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import Skip, main, result, stats

STUDY_SEED = 7
N_TRIALS = 1000
RUNGS = (3, 9, 27)
MAX_STEP = 81
ETA = 3
WORKERS = 4  # the trials other workers were running when each trial was created show as running in based_on
SPEC = {
    "name": "ask-bench",
    "kind": "serial",
    "command": ["python", "train.py", "--lr", "{lr}", "--width", "{width}", "--optimizer", "{optimizer}"],
    "space": {
        "lr": {"float": [1.0e-4, 1.0e-1], "log": True},
        "width": {"int": [16, 256], "log": True},
        "optimizer": {"choice": ["adam", "sgd"]},
    },
    "objectives": {"metric": "loss", "direction": "minimize"},
    "budget": {"trials": 2 * N_TRIALS, "resource": {"min": RUNGS[0], "max": MAX_STEP}},
    "sampler": "tpe",
    "stopping": {"rule": "asha", "eta": ETA},
    "workers": WORKERS,
    "seed": STUDY_SEED,
}


# ---------------------------------------------------------------- the study both sides hold


def draw(rng: random.Random) -> dict[str, Any]:
    """Parameters drawn in the space (log-uniform lr and width, a fair choice of optimizer)."""
    return {
        "lr": 10 ** rng.uniform(-4.0, -1.0),
        "width": min(256, max(16, round(2 ** rng.uniform(4.0, 8.0)))),
        "optimizer": rng.choice(["adam", "sgd"]),
    }


def curve(params: dict[str, Any], step: int, noise: float) -> float:
    """The loss at ``step``: a final value set by the parameters, approached at a speed set by lr and width."""
    x = math.log10(params["lr"])
    final = 0.1 + 0.08 * (x + 2.5) ** 2 + 0.025 * math.log2(256 / params["width"])
    final += 0.05 if params["optimizer"] == "sgd" else 0.0
    tau = 4.0 * 10 ** (-(x + 2.5) / 2) * (params["width"] / 64) ** 0.5
    return final + (1.0 - final) / (1.0 + step / tau) + noise


def simulate(n_trials: int, seed: int) -> list[dict[str, Any]]:
    """Each trial's parameters, rung values (those it reached) and end, ASHA deciding in trial order."""
    from hpcx.tune.stopping import Rule, replay

    rng = random.Random(seed)
    trials = []
    for number in range(n_trials):
        params = draw(rng)
        values = {s: curve(params, s, rng.gauss(0.0, 0.01)) for s in (*RUNGS, MAX_STEP)}
        trials.append({"number": number, "params": params, "values": values, "rungs": {}, "end": None})
    arrivals = [(t["number"], r, t["values"][r]) for t in trials for r in RUNGS]
    for d in replay(Rule("asha", eta=ETA, rungs=RUNGS), arrivals):
        trial = trials[d.trial]
        trial["rungs"][d.rung] = trial["values"][d.rung]
        if not d.continue_:
            trial["end"] = {
                "state": "stopped",
                "rung": d.rung,
                "rank": d.rank,
                "of": d.of,
                "reason": d.reason,
            }
    for trial in trials:
        trial["end"] = trial["end"] or {"state": "complete", "values": [trial["values"][MAX_STEP]]}
    return trials


def write_hpcx(run_dir: Path, spec_doc: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    """The study as a worker leaves it: study.json, then per trial its file, its rung values and its end."""
    from hpcx.rundir.layout import STUDY_FILE
    from hpcx.tune.spec import parse_study, spec_digest
    from hpcx.tune.store import TrialFiles

    spec = parse_study(spec_doc)
    run_dir.mkdir(parents=True)
    doc = {"format": 1, "digest": spec_digest(spec), "spec": spec.to_dict()}
    (run_dir / STUDY_FILE).write_text(json.dumps(doc))
    files = TrialFiles(run_dir)
    for trial in trials:
        files.create(trial["number"], trial_doc(trial, trials))
        for rung, value in sorted(trial["rungs"].items()):
            files.record_rung(trial["number"], rung, value)
        end = dict(trial["end"])
        files.finish(trial["number"], end.pop("state"), **end)


def trial_doc(trial: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The trial file a worker creates: its ``based_on`` lists every earlier trial, the last W-1 running."""
    n = trial["number"]
    based = [[m, trials[m]["end"]["state"] if m < n - (WORKERS - 1) else "running"] for m in range(n)]
    worker = {"task": str(n % WORKERS), "job_id": None, "host": "bench", "pid": 1000 + n % WORKERS}
    return {
        "params": trial["params"],
        "worker": worker,
        "based_on": based,
        "number": n,
        "retry_of": None,
        "created_at": time.time(),
    }


def optuna_parts(optuna: Any) -> tuple[Any, Any]:
    """The sampler and pruner of the Optuna side: TPE as hpcx.tune.sampling makes it for trial 1,000 (same seed,
    constant liar), and SuccessiveHalvingPruner with ASHA's semantics as hpcx.tune.stopping states them."""
    from hpcx.tune.sampling import trial_seed

    sampler = optuna.samplers.TPESampler(seed=trial_seed(STUDY_SEED, N_TRIALS), constant_liar=True)
    pruner = optuna.pruners.SuccessiveHalvingPruner(
        min_resource=RUNGS[0], reduction_factor=ETA, min_early_stopping_rate=0, bootstrap_count=0
    )
    return sampler, pruner


def distributions(optuna: Any) -> dict[str, Any]:
    d = optuna.distributions
    return {
        "lr": d.FloatDistribution(1.0e-4, 1.0e-1, log=True),
        "width": d.IntDistribution(16, 256, log=True),
        "optimizer": d.CategoricalDistribution(("adam", "sgd")),
    }


def write_journal(path: Path, trials: list[dict[str, Any]]) -> None:
    """The same study in Optuna's journal, written with the calls ask, suggest, report and tell make."""
    optuna = _optuna()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="bench", storage=storage, direction="minimize")
    dists = distributions(optuna)
    for trial in trials:
        trial_id = storage.create_new_trial(study._study_id)
        for name, value in trial["params"].items():
            dist = dists[name]
            storage.set_trial_param(trial_id, name, dist.to_internal_repr(value), dist)
        for rung, value in sorted(trial["rungs"].items()):
            storage.set_trial_intermediate_value(trial_id, rung, value)
        if trial["end"]["state"] == "complete":
            study.tell(trial["number"], trial["end"]["values"][0])
        else:
            study.tell(trial["number"], state=optuna.trial.TrialState.PRUNED)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise Skip("Optuna is not installed (pip install 'hpcx[tune]')") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# ---------------------------------------------------------------- one round of each side


class Clock:
    """Wall and CPU seconds of named phases, and of the whole."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def phase(self, name: str, fn: Callable[[], Any]) -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        self.wall[name] = time.perf_counter() - w0
        self.cpu[name] = time.process_time() - c0
        return out

    def total(self) -> tuple[float, float]:
        return sum(self.wall.values()), sum(self.cpu.values())


def hpcx_round(run_dir: Path, spec: Any, files: Any = None, number: int = N_TRIALS) -> Clock:
    """A worker's new trial: list, propose, create; then record its rung-3 value, list again, decide. A new
    TrialFiles unless ``files`` (a long-lived worker's, which has read the unchanged files already)."""
    from hpcx.tune import sampling, stopping
    from hpcx.tune.store import TrialFiles, rung_values
    from hpcx.tune.worker import rule_of

    clock, rule = Clock(), rule_of(spec)
    files = files if files is not None else TrialFiles(run_dir)
    trials = clock.phase("listing", files.trials)
    params, based = clock.phase("propose", lambda: sampling.propose(spec, trials, number))
    doc = {"params": params, "worker": {"task": "0"}, "based_on": based, "number": number, "retry_of": None}
    clock.phase("create", lambda: files.create(number, {**doc, "created_at": time.time()}))
    value = curve(params, RUNGS[0], 0.0)

    def decision() -> Any:
        files.record_rung(number, RUNGS[0], value)
        return stopping.decide(rule, rung_values(files.trials().values()), number, RUNGS[0])

    clock.phase("decide", decision)
    return clock


def load_study(journal: Path) -> Any:
    """A new JournalStorage over the file (it replays the whole log) and the study in it."""
    optuna = _optuna()
    sampler, pruner = optuna_parts(optuna)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    return optuna.load_study(study_name="bench", storage=storage, sampler=sampler, pruner=pruner)


def optuna_round(journal: Path, study: Any = None) -> Clock:
    """The same through Optuna's journal: replay it (unless ``study``, a long-lived worker's, is given), ask with
    the three suggests, report and ask the pruner."""
    clock = Clock()
    if study is None:
        study = clock.phase("replay", lambda: load_study(journal))

    def ask() -> Any:
        trial = study.ask()
        return trial, {
            "lr": trial.suggest_float("lr", 1.0e-4, 1.0e-1, log=True),
            "width": trial.suggest_int("width", 16, 256, log=True),
            "optimizer": trial.suggest_categorical("optimizer", ["adam", "sgd"]),
        }

    trial, params = clock.phase("ask", ask)
    value = curve(params, RUNGS[0], 0.0)

    def prune() -> bool:
        trial.report(value, RUNGS[0])
        return bool(trial.should_prune())

    clock.phase("report_prune", prune)
    return clock


def warm_rounds(run_dir: Path, journal: Path, spec: Any, rounds: int) -> tuple[list[Clock], list[Clock]]:
    """Rounds of long-lived workers: one TrialFiles and one loaded study kept across asks (as
    ``python -m hpcx.tune.worker`` keeps its TrialFiles, and an Optuna worker its storage); each round asks a
    new trial (1,001, 1,002, ...: both studies grow alike, the earlier new trials left running)."""
    from hpcx.tune.store import TrialFiles

    files, study = TrialFiles(run_dir), load_study(journal)
    files.trials()
    hpcx, base = [], []
    for i in range(rounds + 1):
        h = hpcx_round(run_dir, spec, files, N_TRIALS + 1 + i)
        o = optuna_round(journal, study)
        if i > 0:
            hpcx.append(h)
            base.append(o)
    return hpcx, base


# ---------------------------------------------------------------- rounds and rows


def reset(run_dir: Path, pristine: Path, journal: Path) -> None:
    """Undo a round: the new trial's files gone, the journal as it was (not timed)."""
    from hpcx.rundir.layout import trial_file

    trial_file(run_dir, N_TRIALS).unlink(missing_ok=True)
    trial_file(run_dir, N_TRIALS, rung=RUNGS[0]).unlink(missing_ok=True)
    shutil.copyfile(pristine, journal)


def measure(tmp: Path, n_trials: int, rounds: int) -> dict[str, Any]:
    """Set up both studies of ``n_trials`` under ``tmp``, then ``rounds`` alternating fresh rounds after an
    untimed one, then as many rounds of long-lived workers; the clocks of each, the set-up's facts."""
    from hpcx.tune.spec import parse_study

    spec = parse_study(SPEC)
    trials = simulate(n_trials, STUDY_SEED)
    run_dir, pristine, journal = tmp / "study", tmp / "pristine.log", tmp / "journal.log"
    t0 = time.perf_counter()
    write_hpcx(run_dir, SPEC, trials)
    t1 = time.perf_counter()
    write_journal(pristine, trials)
    out = {"setup_hpcx_s": t1 - t0, "setup_optuna_s": time.perf_counter() - t1, "trials": trials}
    reset(run_dir, pristine, journal)
    out.update(_sizes(run_dir, journal))
    hpcx, base = [], []
    for i in range(rounds + 1):
        reset(run_dir, pristine, journal)
        h, o = hpcx_round(run_dir, spec), optuna_round(journal)
        if i > 0:
            hpcx.append(h)
            base.append(o)
    reset(run_dir, pristine, journal)
    out["fresh"] = (hpcx, base)
    out["warm"] = warm_rounds(run_dir, journal, spec, rounds)
    return out


def _sizes(run_dir: Path, journal: Path) -> dict[str, Any]:
    files = [p for p in (run_dir / "trials").iterdir() if p.is_file()]
    lines = journal.read_bytes().count(b"\n")
    return {
        "hpcx_files": len(files),
        "hpcx_bytes": sum(p.stat().st_size for p in files),
        "journal_ops": lines,
        "journal_bytes": journal.stat().st_size,
    }


def ms_row(metric: str, samples: list[float], baseline: str) -> dict[str, Any]:
    s = stats(samples)
    return result(
        metric, round(s["median"] * 1000, 2), "ms", baseline, iqr=round(s["iqr"] * 1000, 2), n=s["n"]
    )


def ratio_row(metric: str, ratios: list[float], baseline: str, target: float | None = None) -> dict[str, Any]:
    s = stats(ratios)
    return result(metric, round(s["median"], 3), "x", baseline, target, iqr=round(s["iqr"], 3), n=s["n"])


def describe(facts: dict[str, Any]) -> str:
    states = [t["end"]["state"] for t in facts["trials"]]
    return (
        f"{len(states)} trials ({states.count('complete')} complete, {states.count('stopped')} stopped): "
        f"{facts['hpcx_files']} files, {facts['hpcx_bytes'] / 2**20:.1f} MiB vs a journal of "
        f"{facts['journal_ops']} operations, {facts['journal_bytes'] / 2**20:.1f} MiB"
    )


def rows(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """The ratio rows (fresh, its CPU time, long-lived workers), then each side's total and phases."""
    hpcx, base = facts["fresh"]
    warm_h, warm_o = facts["warm"]
    out = [
        ratio_row(
            "tune_ask_ms_1000",
            [h.total()[0] / o.total()[0] for h, o in zip(hpcx, base)],
            f"Optuna journal: replay + ask + prune, fresh each round; {describe(facts)}",
            0.5,
        ),
        ratio_row(
            "tune_ask_ms_1000_cpu",
            [h.total()[1] / o.total()[1] for h, o in zip(hpcx, base)],
            "the same in CPU time",
        ),
        ratio_row(
            "tune_ask_ms_1000_warm",
            [h.total()[0] / o.total()[0] for h, o in zip(warm_h, warm_o)],
            "long-lived workers: TrialFiles and the loaded study kept across asks",
        ),
        ms_row(
            "hpcx_ask_decide_ms", [h.total()[0] for h in hpcx], "listing + propose + create + rung + decide"
        ),
        ms_row(
            "optuna_ask_prune_ms", [o.total()[0] for o in base], "replay + ask + 3 suggests + report + prune"
        ),
    ]
    return out + phase_rows(facts)


def phase_rows(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Each phase of each side alone (fresh rounds), then each side's total per ask in long-lived workers."""
    out = []
    for side, clocks in zip(("hpcx", "optuna"), facts["fresh"]):
        out += [
            ms_row(f"{side}_{name}_ms", [c.wall[name] for c in clocks], what) for name, what in PHASES[side]
        ]
    for side, clocks in zip(("hpcx", "optuna"), facts["warm"]):
        out.append(ms_row(f"{side}_warm_ms", [c.total()[0] for c in clocks], "per ask, long-lived worker"))
    return out


PHASES = {
    "hpcx": (
        ("listing", "a new TrialFiles: trials() reads every file once"),
        ("propose", "sampling.propose: the in-memory study rebuilt, TPE asked"),
        ("create", "the new trial's file created (link)"),
        ("decide", "rung value recorded, trials/ listed again (files kept), stopping.decide"),
    ),
    "optuna": (
        ("replay", "JournalStorage over the file (replays the log) + load_study"),
        ("ask", "study.ask() + suggest_float/int/categorical (TPE)"),
        ("report_prune", "trial.report + trial.should_prune (SuccessiveHalvingPruner)"),
    ),
}


def run(quick: bool) -> list[dict[str, Any]]:
    rounds = 3 if quick else 15
    with tempfile.TemporaryDirectory(prefix="hpcx-tune-ask-") as tmp:
        facts = measure(Path(tmp), N_TRIALS, rounds)
    return [
        *rows(facts),
        result("setup_hpcx_s", round(facts["setup_hpcx_s"], 1), "s", "writing the hpcx study (not timed)"),
        result("setup_optuna_s", round(facts["setup_optuna_s"], 1), "s", "writing the journal (not timed)"),
    ]


if __name__ == "__main__":
    sys.exit(main("tune_ask_ms_1000", run, __doc__))
