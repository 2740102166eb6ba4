"""render, submit, status, logs, cancel, rerun."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.cli.complete import complete_kind, complete_partition, complete_run
from hpcx.cli.views import logs_text, render_status, show_log_text, watch_lines, watch_status
from hpcx.runs import find_run, find_run_task
from hpcx.runs.logs import LOG_TAIL_LINES, follow_logs, tail_logs
from hpcx.runs.state import cancel_jobs, status_docs
from hpcx.submit.vocabulary import BY_NAME, GROUPS, OPTIONS, Option, request_key

if TYPE_CHECKING:
    from hpcx.submit.submission import Prepared

# hpcx.submit.command_line (and with it Jinja) is imported inside the commands that render: status, logs and
# cancel stay light on a login node.


def _sbatch_option(option: Option) -> Any:
    """A click option for one sbatch option of hpcx.submit.vocabulary, spelled as sbatch spells it."""
    names = [option.long, *([option.short] if option.short else [])]
    if option.key == "job_name":
        names.insert(1, "--name")  # hpcx's own spelling before it spoke sbatch
    kw: dict[str, Any] = {"help": option.help, "metavar": option.metavar}
    if option.value == "flag":
        kw = {"help": option.help, "is_flag": True, "default": None}
    elif option.value == "optional":
        kw.update(is_flag=False, flag_value="", default=None)
    if option.key == "partition":
        kw["shell_complete"] = complete_partition
    return click.option(*names, request_key(option), **kw)


RESOURCE_OPTIONS = [
    *(_sbatch_option(o) for o in OPTIONS),
    click.option(
        "--resource",
        "-r",
        "resources",
        multiple=True,
        metavar="NAME=VALUE",
        help="A resource the site names (see `hpcx site show`), e.g. -r constraint=a100.",
    ),
    click.option(
        "--array", "-a", metavar="SPEC", help="Job array indices, Slurm syntax: 0-99, 1,3,5, 0-999%50."
    ),
    click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="NAME=VALUE",
        help="Template variable, $HPCX_VAR_<NAME> in the job: NAME in upper case, as a sweep's "
        "$HPCX_PARAM_<NAME> (--set seed=1: $HPCX_VAR_SEED) (repeatable).",
    ),
]
PROFILE_HELP = (
    "Record each rank's profile and node sensors and trace its MPI and torch.distributed calls "
    "into the run's profile/; --no-profile records nothing. Default: each rank's samples (memory, "
    "CPU) without tracing, or all of it where the site's defaults.profile is true."
)


class OptionsThenCommand(click.Command):
    """Options end at the command's first word, as sbatch's end at the script: in ``hpcx submit serial python
    train.py -N 2 --lr 0.1`` both flags are the program's. ``--`` before the command is allowed, not needed.
    An option sbatch does not have is refused naming the nearest one (click's own suggestion, over sbatch's
    options); --help lists sbatch's options in the groups of `sbatch --help`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ordered = split_at_command(args, self.get_params(ctx))
        ctx.meta["hpcx.spelled"] = typed_spellings(ordered, self.get_params(ctx))
        return super().parse_args(ctx, ordered)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        groups: dict[str, list[tuple[str, str]]] = {g: [] for g in (*GROUPS, "hpcx options")}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            option = BY_NAME.get(param.opts[0]) if isinstance(param, click.Option) else None
            groups[option.group if option else "hpcx options"].append(record)
        for group, records in groups.items():
            if records:
                with formatter.section(group):
                    formatter.write_dl(records)


def split_at_command(args: list[str], params: list[click.Parameter]) -> list[str]:
    """``args`` reordered as OPTIONS -- KIND COMMAND...: options (with their values) up to the first word after
    KIND, then everything from that word on, untouched."""
    takes_value = {  # an option whose value is optional (--exclusive[=user]) takes it only after =
        name: not (p.is_flag or p.count or p._flag_needs_value)
        for p in params
        if isinstance(p, click.Option)
        for name in (*p.opts, *p.secondary_opts)
    }
    options: list[str] = []
    words: list[str] = []  # KIND, then the command
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--" or (words and not arg.startswith("-")):
            words += args[i + 1 :] if arg == "--" else args[i:]
            break
        if not arg.startswith("-") or arg == "-":
            words.append(arg)  # KIND
        else:
            options.append(arg)
            name = arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]
            attached = "=" in arg if arg.startswith("--") else len(arg) > 2  # --time=5, -t5
            if takes_value.get(name) and not attached and i + 1 < len(args):
                options.append(args[i + 1])
                i += 1
        i += 1
    return [*options, "--", *words]


def typed_spellings(args: list[str], params: list[click.Parameter]) -> dict[str, str]:
    """Each option's name as the user typed it (-n, --ntasks), keyed by its parameter: errors name it so."""
    by_name = {n: p.name for p in params if isinstance(p, click.Option) and p.name for n in p.opts}
    out: dict[str, str] = {}
    for arg in args:
        if arg == "--":
            break
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]
        if name in by_name:
            out[str(by_name[name])] = name
    return out


def resource_options(fn: Any) -> Any:
    for option in reversed(RESOURCE_OPTIONS):
        fn = option(fn)
    return fn


def _prepare(
    obj: Ctx,
    target: str,
    command: tuple[str, ...],
    opts: dict[str, Any],
    after: tuple[str, ...] = (),
    inputs: tuple[str, ...] = (),
) -> Prepared:
    """KIND or SCRIPT plus options -> a resolved, checked request."""
    from hpcx.submit.command_line import job_request, script_path
    from hpcx.submit.request import resolve

    script = script_path(target)
    if script is not None and not script.is_file():
        raise click.BadParameter(
            f"{target!r} is neither a job kind nor an existing script", param_hint="KIND"
        )
    if script is not None and command:
        raise click.UsageError(
            f"{target} is a batch script: hpcx does not pass arguments to it "
            f"({' '.join(command)!r}); put options before them or use --set NAME=VALUE"
        )
    request = job_request(target, command, opts, obj.runs_root.path, after, inputs)
    request.spelled = dict(click.get_current_context().meta.get("hpcx.spelled", {}))
    return resolve(request, obj.site, obj.user)


@cli.command(cls=OptionsThenCommand)
@click.argument("kind", shell_complete=complete_kind)
@resource_options
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def render(obj: Ctx, kind: str, command: tuple[str, ...], **opts: Any) -> None:
    """Print the job script for KIND with RESOURCES; nothing is submitted.

    Options end at the command's first word (`--` before it is optional): what follows is the program's.

    Example: hpcx render mpi -N 2 --ntasks-per-node 1 python train.py --lr 0.1
    """
    from hpcx.submit.command_line import job_preview

    prep = _prepare(obj, kind, command, opts)
    obj.emit("render", job_preview(prep, Path.cwd(), obj.runs_root.path), lambda d: d["script"].rstrip("\n"))


@cli.command(cls=OptionsThenCommand)
@click.argument("kind", metavar="KIND|SCRIPT", shell_complete=complete_kind)
@resource_options
@click.option(
    "--after",
    multiple=True,
    metavar="RUN",
    shell_complete=complete_run,
    help="Start only after RUN (run id, prefix or job id) completed successfully (repeatable). A run that "
    "already succeeded needs no wait; one that already failed is refused (exit 3); a sweep: all its arrays.",
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="PATH",
    help="Data the job reads: its size, time and hash go into the manifest (repeatable).",
)
@click.option(
    "--dry-run", is_flag=True, help="Check and render, print the script and the choices, submit nothing."
)
@click.option("--profile/--no-profile", default=None, help=PROFILE_HELP)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def submit(
    obj: Ctx,
    kind: str,
    command: tuple[str, ...],
    after: tuple[str, ...],
    inputs: tuple[str, ...],
    dry_run: bool,
    profile: bool | None,
    **opts: Any,
) -> None:
    """Check, render and submit KIND (or your own batch SCRIPT) with RESOURCES.

    Options end at the command's first word (`--` before it is optional): what follows is the program's. The
    job runs in the directory it was submitted from. A SCRIPT's #SBATCH lines are checked and reach Slurm as
    written; options given here override them, as with sbatch. The first line (on stderr) names the site in use:
    without a site file the live Slurm cluster, or the builtin local site where no Slurm answers. The job is
    named after the program it runs unless -J says otherwise.

    \b
    Examples:
      hpcx submit mpi -N 2 --ntasks-per-node 1 python examples/allreduce_hdf5.py --rows 64
      hpcx submit ./job.sh -t 30          # the script's -t is overridden, its other lines stand
    """
    from hpcx.submit.command_line import submit_document
    from hpcx.submit.framework_check import framework_warnings
    from hpcx.submit.request import with_profile

    prep = with_profile(_prepare(obj, kind, command, opts, after, inputs), profile)
    if not obj.json:  # which site, and how it was chosen (a live cluster, the local site), before the result
        click.echo(obj.chosen.describe(), err=True)
    spelled = click.get_current_context().meta.get("hpcx.spelled", {})
    for warning in framework_warnings(prep, Path.cwd(), spelled, obj.user.path):  # never refuses the job
        click.echo(f"hpcx: warning: {warning}", err=True)
    doc = submit_document(prep, Path.cwd(), obj.runs_root.path, dry_run=dry_run)
    obj.emit("submit", doc, _dry_run_text if dry_run else _submitted_text)


def _dry_run_text(doc: dict[str, Any]) -> str:
    passed = doc.get("passed_on") or doc.get("unchecked_directives") or []
    note = f"\n# passed on, not checked: {' '.join(passed)}" if passed else ""
    return f"{doc['script'].rstrip()}\n\n# {doc['explain']}{note}"


def _submitted_text(doc: dict[str, Any]) -> str:
    return (
        f"submitted run {doc['run_id']} as {doc['scheduler']} job {doc['job_id']} "
        f"(partition {doc['partition']})\n  run directory: {doc['run_dir']}"
    )


@cli.command()
@click.argument("runs", nargs=-1, shell_complete=complete_run)
@click.option("--all", "show_all", is_flag=True, help="Every run, not only the 20 newest.")
@click.option(
    "--watch",
    is_flag=True,
    help="Redraw the table until every job has finished (Ctrl-C stops); "
    "with --json, one status document per line instead.",
)
@click.option("--interval", default=2.0, show_default=True, help="Seconds between redraws with --watch.")
@click.option("--tasks", "per_task", is_flag=True, help="One row per task of a sweep or array.")
@pass_ctx
def status(
    obj: Ctx, runs: tuple[str, ...], show_all: bool, watch: bool, interval: float, per_task: bool
) -> None:
    """State of RUN ... (run ids, prefixes or job ids; RUN_TASK for one task of a sweep or array); without
    RUN, the newest runs. A job that logs metrics (hpcx.runtime.log) shows its step, main metric, rate, ETA
    and heartbeat (or stalled); a sweep its best task. See docs/user.md, "Live status"."""
    docs = status_docs(
        obj.runs_root.path, runs, show_all, watch=watch, interval_s=interval, per_task=per_task
    )
    if not watch:
        obj.emit("status", next(docs), render_status)
        return
    _watch(obj, docs, interval)


def _watch(obj: Ctx, docs: Iterator[dict[str, Any]], interval: float) -> None:
    """--watch: with --json one document per line, each a whole status, for a script to read as they come; on
    a terminal a table redrawn in place; else each round's table as plain lines."""
    if obj.json:
        for doc in docs:
            obj.emit_line("status", doc)
    elif sys.stdout.isatty():
        watch_status(docs, interval)
    else:
        watch_lines(docs, interval)


@cli.command()
@click.argument("run", shell_complete=complete_run)
@click.option(
    "--lines", "-n", default=LOG_TAIL_LINES, show_default=True, help="Lines from the end of each log."
)
@click.option(
    "--task",
    type=click.IntRange(0),
    metavar="I",
    help="Only task I of a sweep or array (every attempt of it); RUN_TASK says the same.",
)
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing new lines until the job finishes; with --json, "
    "one document per line (run_id, path, text, tail).",
)
@pass_ctx
def logs(obj: Ctx, run: str, lines: int, task: int | None, follow: bool) -> None:
    """Print the end of RUN's stdout and stderr logs (RUN_TASK or --task: one task's), in task order."""
    found, task = find_run_task(obj.runs_root.path, run, task)
    if follow:
        follow_logs(found, lines, _log_printer(obj, found.id), task=task)
        return
    obj.emit("logs", tail_logs(found, lines, task), logs_text)


def _log_printer(obj: Ctx, run_id: str) -> Callable[[str, str, bool], None]:
    """How `hpcx logs --follow` prints each piece: as text, or with --json one document per line, for the tail
    of each log and then for each piece of new output."""
    if not obj.json:
        return show_log_text
    return lambda path, text, first: obj.emit_line(
        "logs", {"run_id": run_id, "path": path, "text": text, "tail": first}
    )


@cli.command()
@click.argument("runs", nargs=-1, required=True, shell_complete=complete_run)
@pass_ctx
def cancel(obj: Ctx, runs: tuple[str, ...]) -> None:
    """Cancel the jobs of RUN ...: every array of a sweep (its chunks, those chained after them, its retries),
    or with RUN_TASK one task of a sweep or array; one scancel for all of them."""
    root = obj.runs_root.path
    names = cancel_jobs([find_run_task(root, r) for r in runs])
    obj.emit("cancel", {"cancelled": names}, lambda d: "\n".join(f"cancelled {r}" for r in d["cancelled"]))


@cli.command()
@click.argument("run", shell_complete=complete_run)
@click.option("--dry-run", is_flag=True, help="Show the script and the differences; submit nothing.")
@click.option("--failed", is_flag=True, help="A sweep: only its tasks that did not succeed, as a new sweep.")
@pass_ctx
def rerun(obj: Ctx, run: str, dry_run: bool, failed: bool) -> None:
    """Submit RUN again from its manifest: the same request (kind or script, resources, --array, -r, --set,
    --profile, inputs, --after, command); a sweep as the same sweep, or only its failed tasks with --failed.

    Every difference that cannot be restored (code, site file, modules, Slurm, hpcx, inputs, parts of the
    request) is printed as a warning.
    """
    from hpcx.submit.command_line import rerun_document
    from hpcx.submit.rerun import plan_with_warnings

    root = obj.runs_root.path
    found = find_run(root, run)
    todo, warnings = plan_with_warnings(found, obj.site, obj.user, root, failed=failed)
    for w in warnings:
        click.echo(f"hpcx: warning: {w}", err=True)
    doc = rerun_document(todo, {"like": found.id, "warnings": warnings}, root, dry_run=dry_run)
    obj.emit("rerun", doc, _RERUN_TEXT[todo.sweep is not None, dry_run])


def _rerun_job_text(doc: dict[str, Any]) -> str:
    return (
        f"submitted run {doc['run_id']} like {doc['like']} as {doc['scheduler']} job {doc['job_id']}\n"
        f"  run directory: {doc['run_dir']}"
    )


def _rerun_sweep_preview_text(doc: dict[str, Any]) -> str:
    return f"{len(doc['tasks'])} tasks in {len(doc['arrays'])} array(s)\n\n" + doc["script"].rstrip()


def _rerun_sweep_text(doc: dict[str, Any]) -> str:
    return (
        f"submitted sweep {doc['run_id']} like {doc['like']}: {doc['tasks']} tasks as {doc['arrays']} array "
        f"job(s) {', '.join(doc['job_ids'])}\n  run directory: {doc['run_dir']}"
    )


# The text of `hpcx rerun`'s document, by (a sweep?, --dry-run?)
_RERUN_TEXT: dict[tuple[bool, bool], Callable[[dict[str, Any]], str]] = {
    (False, True): lambda d: d["script"].rstrip(),
    (False, False): _rerun_job_text,
    (True, True): _rerun_sweep_preview_text,
    (True, False): _rerun_sweep_text,
}
