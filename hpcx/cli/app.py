"""The click group, shared options and the output helpers every command uses."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import click

from hpcx import __version__
from hpcx.site import Site, SiteChoice, choose_site, runs_root, site_source
from hpcx.site.config import UserConfig, load_user_config

JSON_VERSION = 1


class RunsRoot(NamedTuple):
    """The directory that holds the run directories, and what set it: env (HPCX_RUNS), user, site or default."""

    path: Path
    source: str


@dataclass
class Ctx:
    """What every command gets: the configuration layers (loaded on first use) and the output mode."""

    cli_site: str | None
    json: bool
    _user: UserConfig | None = field(default=None, repr=False)
    _choice: SiteChoice | None = field(default=None, repr=False)

    @property
    def user(self) -> UserConfig:
        if self._user is None:
            self._user = load_user_config()
        return self._user

    @property
    def chosen(self) -> SiteChoice:
        """The site in use, the layer that chose it and why (a site file, else the live cluster, else local)."""
        if self._choice is None:
            self._choice = choose_site(self.cli_site, self.user.site)
        return self._choice

    @property
    def site_path(self) -> str | None:
        """The site file named by --site, HPCX_SITE, the user config or a system-wide file; None without one."""
        return site_source(self.cli_site, self.user.site)[0]

    @property
    def site_origin(self) -> str:
        return self.chosen.origin

    @property
    def site(self) -> Site:
        return self.chosen.site

    @property
    def runs_root(self) -> RunsRoot:
        """The runs root in use and where it was set (still a (path, source) pair)."""
        # HPCX_RUNS or the user config decide without the site: `hpcx status` asks Slurm nothing to find runs.
        decided = os.environ.get("HPCX_RUNS") or self.user.runs_root
        return RunsRoot(*runs_root(None if decided else self.site, self.user.runs_root))

    def emit(self, kind: str, doc: dict[str, Any], text: Callable[[dict[str, Any]], str]) -> None:
        """Print ``doc`` as one versioned JSON document (--json) or as text for a person."""
        if self.json:
            click.echo(json.dumps({"hpcx": JSON_VERSION, "kind": kind, **doc}, indent=2, default=str))
        else:
            click.echo(text(doc))

    def emit_line(self, kind: str, doc: dict[str, Any]) -> None:
        """One versioned JSON document on one line, flushed at once: what streaming commands (status --watch,
        logs --follow) print with --json, so a reader can parse each line as it comes."""
        click.echo(json.dumps({"hpcx": JSON_VERSION, "kind": kind, **doc}, default=str))
        sys.stdout.flush()


def error_document(message: str, hint: str | None, exit_code: int) -> str:
    """An error as the one JSON document a --json command prints instead of its result (same exit code); on one
    line, so that it also ends a stream of one document per line."""
    doc = {"hpcx": JSON_VERSION, "error": {"message": message, "hint": hint, "exit_code": exit_code}}
    return json.dumps(doc)


def json_requested(argv: list[str], *, parsed: bool = False) -> bool:
    """Whether an error should be one JSON document. Once the command line was parsed (``parsed``: the error came
    from the command itself), the answer is its Ctx's, which knows where --json stood (after a command's first
    word it is the program's); before or while click parses, --json among ``argv``'s words before any ``--``."""
    if parsed and CURRENT:
        return CURRENT[-1].json
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


CURRENT: list[Ctx] = []  # the Ctx of the command line being run, for hpcx.cli.main's error output


def _json_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    obj = ctx.find_object(Ctx)
    if value and obj is not None:
        obj.json = True


def accept_json(cmd: click.Command) -> click.Command:
    """``cmd`` (and every command of a group) with its own --json, so `hpcx runs --json` means `hpcx --json
    runs`. Added once, where the command is looked up: each module keeps declaring only its own options."""
    # A command with its own --json (compare, data info) keeps it.
    if not any("--json" in getattr(p, "opts", ()) for p in cmd.params):
        cmd.params.append(
            click.Option(
                ["--json", "json_flag"],
                is_flag=True,
                expose_value=False,
                callback=_json_flag,
                help="Print one versioned JSON document on stdout.",
            )
        )
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            accept_json(sub)
    return cmd


# Each command lives in the module named here and is imported only when used, so `hpcx status` does not pay for
# Jinja, sweeps or provenance on a slow login node (`hpcx --help` imports them all to list them).
COMMAND_MODULES = {
    "render": "jobs",
    "submit": "jobs",
    "status": "jobs",
    "logs": "jobs",
    "cancel": "jobs",
    "stop": "control",
    "rerun": "jobs",
    "sweep": "sweep",
    "runs": "runs",
    "report": "reporting",
    "site": "site",
    "config": "config",
    "completion": "config",
    "testbed": "admin",
    "data": "data",
    "compare": "compare",
    "export": "export",
    "ui": "ui",
    "tune": "tune",
}


class LazyGroup(click.Group):
    """A group whose commands register themselves when their module is first imported."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMAND_MODULES and name not in self.commands:
            importlib.import_module(f"hpcx.cli.{COMMAND_MODULES[name]}")
        cmd = super().get_command(ctx, name)
        return accept_json(cmd) if cmd is not None else None


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, "--version", prog_name="hpcx")
@click.option(
    "--site",
    "site_path",
    metavar="FILE",
    help="Site file, or 'local' for the builtin local site (default: $HPCX_SITE, the user config's site, "
    "/etc/hpcx/site.yaml, else the live Slurm cluster, else local).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one versioned JSON document on stdout (errors too; one per line while streaming). "
    "Also accepted after the command.",
)
@click.pass_context
def cli(ctx: click.Context, site_path: str | None, as_json: bool) -> None:
    """hpcx: checked Slurm submission, provenance, an MPI/torch runtime, profiling and reports.

    Exit codes: 0 ok, 1 scheduler or runtime failure, 2 usage error, 3 request rejected by pre-flight checks.
    """
    ctx.obj = Ctx(site_path, as_json)
    CURRENT[:] = [ctx.obj]


pass_ctx = click.make_pass_decorator(Ctx)
