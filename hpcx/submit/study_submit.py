"""`hpcx tune SPEC.yaml`: a tuning study submitted as one job array of workers (hpcx.tune.worker).

The study is a run directory like a sweep's: its spec, parsed and in canonical form with its digest, is written
to ``study.json`` before the array is submitted (the workers read it at their start); ``trials/`` fills as they
run. The array's job is checked like `hpcx submit array`: the spec's resources are each worker's, and a worker
runs one trial after another inside its own allocation (no queue wait per trial). ``workers: per-trial`` makes
one array task per trial instead (each task runs one trial and ends).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.errors import UsageError
from hpcx.fsutil import YamlError, atomic_write_json, load_yaml
from hpcx.rundir.layout import STUDY_FILE
from hpcx.runs import Run
from hpcx.site.config import UserConfig
from hpcx.submit.request import RESOURCE_KEYS, Prepared, Request, resolve

WORKER_COMMAND = ("python", "-m", "hpcx.tune.worker")
STUDY_FORMAT = 1


@dataclass
class PreparedStudy:
    spec: Any  # hpcx.tune.spec.StudySpec
    prep: Prepared
    workers: int

    def study_doc(self) -> dict[str, Any]:
        from hpcx.tune.spec import spec_digest

        return {"format": STUDY_FORMAT, "digest": spec_digest(self.spec), "spec": self.spec.to_dict()}


def load_study(path: Path) -> Any:
    """The study spec in ``path``, parsed and checked (hpcx.tune.spec)."""
    from hpcx.tune.spec import parse_study

    try:
        doc = load_yaml(path.read_bytes())
    except OSError as exc:
        raise UsageError(
            f"study spec {path}: {exc.strerror or exc}", hint="give the path of a YAML study spec"
        ) from None
    except YamlError as exc:
        raise UsageError(f"study spec {path}: {exc}") from None
    return parse_study(doc)


def prepare(
    spec: Any,
    site: Any,
    user: UserConfig | None,
    workers: int | None = None,
    command: tuple[str, ...] = WORKER_COMMAND,
) -> PreparedStudy:
    """The workers' array job, resolved and checked like `hpcx submit array`."""
    unknown = sorted(set(spec.resources) - set(RESOURCE_KEYS))
    if unknown:
        raise UsageError(
            f"unknown resource(s) {', '.join(unknown)} in the study spec",
            hint="resources are sbatch's job options with _ for - (ntasks, mem_per_cpu, time, ...): docs/user.md",
        )
    count = workers if workers is not None else (spec.workers or spec.budget.trials)
    if count < 1 or count > spec.budget.trials:
        raise UsageError(
            f"--workers {count}: a study of {spec.budget.trials} trials takes 1 to {spec.budget.trials} workers",
            hint=f"e.g. --workers {min(4, spec.budget.trials)}",
        )
    options: dict[str, Any] = {k: (str(v) if v is not None else None) for k, v in spec.resources.items()}
    options.setdefault("name", spec.name)
    if spec.budget.time and "time" not in options:
        options["time"] = spec.budget.time
    limit = f"%{spec.max_parallel}" if spec.max_parallel else ""
    request = Request("array", options, dict(spec.variables), command, array=f"0-{count - 1}{limit}")
    return PreparedStudy(spec, resolve(request, site, user), count)


def submit_study(study: PreparedStudy, workdir: Path, root: Path) -> dict[str, Any]:
    """Write the study's spec into a new run directory, then submit its workers; nothing left on failure."""
    from hpcx.submit.submission import submit

    def write_study(run: Run) -> None:
        (run.dir / "trials").mkdir(exist_ok=False)
        atomic_write_json(run.dir / STUDY_FILE, study.study_doc())

    doc = submit(study.prep, workdir, root, before=write_study)
    return {**doc, "study": study.spec.name, "workers": study.workers, "trials": study.spec.budget.trials}


def dry_run(study: PreparedStudy, workdir: Path, root: Path) -> dict[str, Any]:
    """What would be submitted: the study in canonical form, the workers' script, the rungs, the grid's size."""
    from hpcx.submit.command_line import job_preview
    from hpcx.tune.space import grid_size
    from hpcx.tune.spec import rungs_of

    spec = study.spec
    return {
        "dry_run": True,
        "study": spec.to_dict(),
        "workers": study.workers,
        "rungs": list(rungs_of(spec.stopping, spec.budget)) if spec.stopping.rule != "none" else [],
        "grid_size": grid_size(spec.space) if spec.sampler.name == "grid" else None,
        **job_preview(study.prep, workdir, root),
        "cwd": os.fspath(workdir),
    }


def recorded_spec(study_dir: Path) -> Any:
    """The spec a study was submitted with (its study.json), checked again; UsageError for a run that is no
    study or a study.json this hpcx cannot read."""
    from hpcx.fsutil import read_json
    from hpcx.tune.spec import parse_study

    try:
        doc = read_json(study_dir / STUDY_FILE)
    except (OSError, ValueError):
        raise UsageError(f"run {study_dir.name} is no tuning study (no readable {STUDY_FILE})") from None
    if not isinstance(doc, dict) or doc.get("format") != STUDY_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise UsageError(
            f"study {study_dir.name} has study.json format {found!r}; this hpcx reads format {STUDY_FORMAT}",
            hint="resume it with the hpcx version that started it, or upgrade hpcx",
        )
    return parse_study(doc["spec"])


def changed_keys(old: Any, new: Any) -> list[str]:
    """The top-level keys of two specs' canonical forms that differ (what a --resume would silently change)."""
    a, b = old.to_dict(), new.to_dict()
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def prepare_resume(
    study_dir: Path, spec_path: Path | None, site: Any, user: UserConfig | None, workers: int | None
) -> PreparedStudy:
    """New workers for a study whose workers ended (cancelled, out of time): the recorded spec, which a given
    SPEC.yaml must equal; refused when the budget is spent and no trial is left running."""
    from hpcx.tune.store import TrialFiles

    spec = recorded_spec(study_dir)
    if spec_path is not None:
        changed = changed_keys(spec, load_study(spec_path))
        if changed:
            raise UsageError(
                f"{spec_path} differs from the spec study {study_dir.name} started with, in: {', '.join(changed)}",
                hint="resume with the spec it started with (or without SPEC.yaml), or start a new study",
            )
    trials = TrialFiles(study_dir).trials()
    new_left = spec.budget.trials - sum(1 for n in trials if n < spec.budget.trials)
    unfinished = [n for n, t in trials.items() if t.end is None and t.doc]
    if new_left <= 0 and not unfinished:
        raise UsageError(
            f"study {study_dir.name} has spent its budget of {spec.budget.trials} trials and none is unfinished",
            hint="raise budget.trials in a new study, or read its results: hpcx status " + study_dir.name,
        )
    return prepare(spec, site, user, workers, (*WORKER_COMMAND, "--study", str(study_dir)))


def submit_resume(study: PreparedStudy, study_dir: Path, workdir: Path, root: Path) -> dict[str, Any]:
    """The new workers, submitted as a run of their own whose workers work on ``study_dir``."""
    from hpcx.submit.submission import submit

    doc = submit(study.prep, workdir, root)
    return {**doc, "study": study.spec.name, "study_run": study_dir.name, "workers": study.workers}


def confirm_spec(study_dir: Path, best: int, seeds: int) -> dict[str, Any]:
    """A sweep spec (hpcx.submit.sweeps) that reruns the ``best`` best complete trials of a study, ``seeds``
    times each with their own seeds, for `hpcx compare` to give intervals and a corrected test."""
    from hpcx.tune.store import TrialFiles

    spec = recorded_spec(study_dir)
    objective = spec.objectives[0]
    done = [
        t
        for t in TrialFiles(study_dir).trials().values()
        if t.state == "complete" and (t.end or {}).get("values")
    ]
    if len(done) < best:
        raise UsageError(
            f"--confirm {best}: study {study_dir.name} has {len(done)} complete trials",
            hint=f"--confirm {max(len(done), 1)}, or let the study run longer (hpcx tune --resume {study_dir.name})",
        )
    sign = -1.0 if objective.direction == "maximize" else 1.0
    chosen = sorted(done, key=lambda t: (sign * float(t.end["values"][0]), t.number))[:best]  # type: ignore[index]
    names = list(chosen[0].params)
    if any(list(t.params) != names for t in chosen):
        raise UsageError(
            "the best trials do not share their parameters (a conditional parameter is active in some only)",
            hint="confirm fewer (--confirm 1), or write the sweep by hand from hpcx status --json's study.best",
        )
    command = [w.replace("{trial}", "{task}") for w in spec.command]
    return {
        "name": f"{spec.name}-confirm",
        "kind": spec.kind,
        "resources": dict(spec.resources),
        "variables": dict(spec.variables),
        "command": command,
        "parameters": {"zip": {n: [t.params[n] for t in chosen] for n in names}, "repeats": seeds},
        "seed": spec.seed,
    }
