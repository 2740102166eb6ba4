"""export: a run's logged metrics for the tools people already read (TensorBoard)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.runs import find_run_task
from hpcx.runs.export import export_tensorboard


@cli.command("export")
@click.argument("run")
@click.option(
    "--tensorboard",
    "tensorboard_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Write TensorBoard event files under DIR/<run id> (needs pip install 'hpcx[tensorboard]').",
)
@click.option("--task", type=click.IntRange(0), metavar="N", help="Only task N of a sweep or array job.")
@click.option(
    "--all-ranks", is_flag=True, help="Every rank's metrics, one rank-NNNNN folder each (default: rank 0)."
)
@pass_ctx
def export_cmd(obj: Ctx, run: str, tensorboard_dir: Path, task: int | None, all_ranks: bool) -> None:
    """Export RUN's logged metrics (hpcx.runtime.log) as TensorBoard event files: one TensorBoard run per job or
    sweep task, the latest attempt's value of each step. An earlier export of RUN into DIR is replaced."""
    found, named = find_run_task(obj.runs_root.path, run, task)  # RUN_TASK names the task as --task does
    doc = export_tensorboard(found, tensorboard_dir, task=named, all_ranks=all_ranks)
    obj.emit("export", doc, _text)


def _text(d: dict[str, Any]) -> str:
    points = sum(r["points"] for r in d["runs"])
    names = sorted({m for r in d["runs"] for m in r["metrics"]})
    lines = [
        f"exported {points} points of {len(names)} metrics ({', '.join(names)}) as {len(d['runs'])} "
        f"TensorBoard run(s) to {d['dir']}" + (" (replacing the previous export)" if d["replaced"] else "")
    ]
    if d["empty"]:
        lines.append(f"no metrics, not exported: {', '.join(d['empty'])}")
    lines.append(f"view: tensorboard --logdir {d['logdir']}")
    return "\n".join(lines)
