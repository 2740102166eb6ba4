"""tune: an adaptive search (a study) as one job array of workers (hpcx.submit.study_submit, hpcx.tune)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hpcx.cli.app import Ctx, cli, pass_ctx


@cli.command("tune")
@click.argument("spec", metavar="SPEC.yaml", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--resume",
    metavar="STUDY",
    help="Submit new workers for STUDY (after a cancel or its time ran out): its lost trials run again, then new "
    "ones until the budget; a SPEC.yaml given must equal the one it started with.",
)
@click.option(
    "--confirm",
    "confirm",
    metavar="STUDY",
    help="Rerun STUDY's best complete trials (--best K, default 3) with --seeds N seeds each as one sweep, "
    "for hpcx compare's intervals and tests.",
)
@click.option(
    "--best", type=click.IntRange(1), default=3, show_default=True, help="With --confirm: how many."
)
@click.option(
    "--seeds", type=click.IntRange(2), default=5, show_default=True, help="With --confirm: seeds each."
)
@click.option(
    "--replay",
    metavar="STUDY",
    help="Derive every proposal and every stop of STUDY again from its files and seed; exit 1 where they differ.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the spec, print the study, its rungs and the workers' script; submit nothing.",
)
@click.option(
    "--workers", type=click.IntRange(1), metavar="W", help="Worker tasks (default: the spec's workers, 4)."
)
@pass_ctx
def tune_cmd(
    obj: Ctx,
    spec: Path | None,
    resume: str | None,
    confirm: str | None,
    best: int,
    seeds: int,
    replay: str | None,
    dry_run: bool,
    workers: int | None,
) -> None:
    """Run the study SPEC.yaml: W array tasks that each loop ask -> run -> tell until the trial budget is spent,
    stopping trials early at rungs (asha, hyperband, median) with Optuna's samplers proposing parameters. The
    study's state is files under RUN/trials/, created once each: no database server, no lock file.

    \b
    Example spec:
      name: lr-search
      kind: serial
      command: [python, train.py, --lr, "{lr}", --layers, "{layers}"]
      space:
        lr: {float: [1.0e-5, 1.0e-1], log: true}
        layers: {int: [1, 8]}
      objectives: {metric: val_loss, direction: minimize}
      budget: {trials: 64, resource: {min: 10, max: 810}}
      sampler: tpe
      stopping: {rule: asha, eta: 3}
      workers: 4
    """
    from hpcx.errors import UsageError
    from hpcx.submit.study_submit import dry_run as preview
    from hpcx.submit.study_submit import load_study, prepare, submit_study

    if replay is not None:
        _replay(obj, replay)
        return
    if resume is not None:
        _resume(obj, resume, spec, workers, dry_run)
        return
    if confirm is not None:
        _confirm(obj, confirm, best, seeds, dry_run)
        return
    if spec is None:
        raise UsageError(
            "no study spec given",
            hint="hpcx tune SPEC.yaml, hpcx tune --resume STUDY or hpcx tune --replay STUDY",
        )
    study = prepare(load_study(spec), obj.site, obj.user, workers)
    if dry_run:
        obj.emit("tune", preview(study, Path.cwd(), obj.runs_root.path), _dry_text)
        return
    obj.emit("tune", submit_study(study, Path.cwd(), obj.runs_root.path), _submitted_text)


def _dry_text(doc: dict[str, Any]) -> str:
    study = doc["study"]
    rungs = ", ".join(map(str, doc["rungs"])) or "none (no early stopping)"
    grid = f"; the grid has {doc['grid_size']} configurations" if doc["grid_size"] is not None else ""
    return (
        f"{doc['script'].rstrip()}\n\n# study {study['name']}: {study['budget']['trials']} trials by {doc['workers']} "
        f"workers, sampler {study['sampler']['name']}, stopping {study['stopping']['rule']} at rungs {rungs}{grid}"
    )


def _submitted_text(doc: dict[str, Any]) -> str:
    return (
        f"submitted study {doc['study']} as run {doc['run_id']}: {doc['workers']} workers, {doc['trials']} trials, "
        f"{doc['scheduler']} job {doc['job_id']}\n  run directory: {doc['run_dir']}\n"
        f"  hpcx status {doc['run_id']}  shows its workers; its trials are under {doc['run_dir']}/trials"
    )


def _replay(obj: Ctx, key: str) -> None:
    from hpcx.runs import find_run
    from hpcx.tune.replay import replay_study, replay_text

    doc = replay_study(find_run(obj.runs_root.path, key).dir)
    obj.emit("tune-replay", doc, replay_text)
    if doc["differences"]:
        click.get_current_context().exit(1)


def _resume(obj: Ctx, key: str, spec: Path | None, workers: int | None, dry_run: bool) -> None:
    from hpcx.runs import find_run
    from hpcx.submit.study_submit import dry_run as preview
    from hpcx.submit.study_submit import prepare_resume, submit_resume

    study_dir = find_run(obj.runs_root.path, key).dir
    study = prepare_resume(study_dir, spec, obj.site, obj.user, workers)
    if dry_run:
        obj.emit("tune", preview(study, Path.cwd(), obj.runs_root.path), _dry_text)
        return
    doc = submit_resume(study, study_dir, Path.cwd(), obj.runs_root.path)
    obj.emit("tune", doc, _resumed_text)


def _resumed_text(doc: dict[str, Any]) -> str:
    return (
        f"resumed study {doc['study']} ({doc['study_run']}) with {doc['workers']} new workers as run "
        f"{doc['run_id']}, {doc['scheduler']} job {doc['job_id']}\n  hpcx status {doc['study_run']}  shows its trials"
    )


def _confirm(obj: Ctx, key: str, best: int, seeds: int, dry_run: bool) -> None:
    """The best trials again as one sweep (hpcx sweep's own submission), then hpcx compare reads it."""
    from hpcx.cli.sweep import _preview_text
    from hpcx.cli.sweep import _submitted_text as sweep_text
    from hpcx.runs import find_run
    from hpcx.submit.command_line import sweep_preview
    from hpcx.submit.study_submit import confirm_spec
    from hpcx.submit.sweep_submit import prepare, submit_sweep
    from hpcx.submit.sweeps import parse_spec

    study = find_run(obj.runs_root.path, key)
    doc = confirm_spec(study.dir, best, seeds)
    ps = prepare(parse_spec(doc), doc, obj.site, obj.user)
    if dry_run:
        obj.emit("sweep", sweep_preview(ps, Path.cwd(), obj.runs_root.path), _preview_text)
        return
    out = submit_sweep(ps, Path.cwd(), obj.runs_root.path)
    metric = _objective(study.dir)
    out["compare"] = f"hpcx compare --sweep {out['run_id']} --metric {metric}"
    obj.emit("sweep", out, lambda d: sweep_text(d) + f"\n  when it is done: {d['compare']}")


def _objective(study_dir: Path) -> str:
    from hpcx.submit.study_submit import recorded_spec

    return str(recorded_spec(study_dir).objectives[0].metric)
