"""compare: statistics of one metric across runs or a sweep's tasks (see docs/compare.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.compare import REDUCTIONS, REPLICATE_KEYS, render_text
from hpcx.compare.asked import compare_asked, require_runs
from hpcx.compare.stats import CI_METHODS, CORRECTIONS, STATISTICS


@cli.command("compare")
@click.argument("runs", nargs=-1, metavar="RUN...")
@click.option("--sweep", "sweeps", multiple=True, metavar="RUN", help="A sweep run: compare its tasks.")
@click.option(
    "--metric",
    required=True,
    metavar="NAME",
    help="A metric the job logged (hpcx.runtime.log), or a report number: wall_s, cpu_s, "
    "cpu_efficiency, peak_rss_mb, energy_j, energy_kwh (report.NAME / metric.NAME to "
    "choose).",
)
@click.option(
    "--reduce",
    type=click.Choice(REDUCTIONS),
    default="last",
    show_default=True,
    help="How rank 0's logged values become one number per run.",
)
@click.option("--by", metavar="K1,K2", help="Group by these parameters only (default: all but the seed).")
@click.option(
    "--replicate-key",
    "replicate_keys",
    multiple=True,
    metavar="KEY",
    help=f"A parameter whose values are replicates, not groups (default: {', '.join(REPLICATE_KEYS)}).",
)
@click.option(
    "--baseline", metavar="GROUP", help="Compare each group with this one (e.g. lr=0.01); default: all pairs."
)
@click.option(
    "--correction",
    type=click.Choice(sorted(CORRECTIONS)),
    default="holm",
    show_default=True,
    help="Correction of the Welch p-values for many comparisons: holm, bh (Benjamini-Hochberg), none.",
)
@click.option(
    "--stat",
    "statistic",
    type=click.Choice(STATISTICS),
    default="mean",
    show_default=True,
    help="The statistic whose interval and difference are shown.",
)
@click.option(
    "--ci",
    "ci_method",
    type=click.Choice(("auto", *CI_METHODS)),
    default="auto",
    show_default=True,
    help="Interval: percentile or bca bootstrap, or t (Student/Welch, for the mean); auto: t for the "
    "mean while a group has fewer than 10 replicates, else percentile.",
)
@click.option("--level", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@click.option("--resamples", type=click.IntRange(100), default=9999, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap's generator.")
@click.option(
    "--detect",
    type=float,
    metavar="DIFF",
    help="Difference (in the metric's units) to size 'seeds needed' for; default: the observed one.",
)
@click.option("--power", type=click.FloatRange(0.5, 0.99), default=0.8, show_default=True)
@click.option("--alpha", type=click.FloatRange(0.001, 0.2), default=0.05, show_default=True)
@click.option("--skip-missing", is_flag=True, help="Leave out replicates without the metric (say which).")
@click.option(
    "--include-failed",
    is_flag=True,
    help="Count tasks and runs that did not complete (failed, cancelled, timed out, still running); "
    "by default only completed ones count and the others are listed as left out.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write here: compare.html (one self-contained page, plots inlined, no network), "
    "compare.md, compare.json, and the plots groups and differences as SVG and PDF; the "
    "reports list every replicate with its run, task, seed and the file its value came "
    "from.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON document (as hpcx --json).")
@pass_ctx
def compare_cmd(
    obj: Ctx,
    runs: tuple[str, ...],
    sweeps: tuple[str, ...],
    out_dir: Path | None,
    as_json: bool,
    by: str | None,
    replicate_keys: tuple[str, ...],
    **chosen: object,
) -> None:
    """Group runs by their parameters, seeds as replicates, and compare one metric across the groups.

    RUN is a run id, a prefix, a Slurm job id or a path; a sweep run stands for all its tasks.
    """
    require_runs(runs, sweeps)
    root = obj.runs_root.path
    doc = compare_asked(root, runs, sweeps, out_dir, by=by, replicate_keys=replicate_keys, **chosen)
    ctx = dataclasses.replace(obj, json=obj.json or as_json)
    ctx.emit("compare", doc, lambda d: render_text(d) + (f"\nwritten: {out_dir}" if out_dir else ""))
