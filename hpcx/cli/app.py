"""The click group, shared options and the output helpers every command uses."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from hpcx import __version__
from hpcx.site import Site, load_site, site_source

JSON_VERSION = 1


@dataclass
class Ctx:
    """What every command gets: the chosen site file (loaded on first use) and the output mode."""

    site_path: str | None
    site_origin: str
    json: bool
    _site: Site | None = field(default=None, repr=False)

    @property
    def site(self) -> Site:
        if self._site is None:
            self._site = load_site(self.site_path)
        return self._site

    def emit(self, kind: str, doc: dict[str, Any], text: Callable[[dict[str, Any]], str]) -> None:
        """Print ``doc`` as one versioned JSON document (--json) or as text for a person."""
        if self.json:
            click.echo(json.dumps({"hpcx": JSON_VERSION, "kind": kind, **doc}, indent=2, default=str))
        else:
            click.echo(text(doc))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", prog_name="hpcx")
@click.option(
    "--site",
    "site_path",
    metavar="FILE",
    help="Site file (default: $HPCX_SITE, else the builtin local site).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one versioned JSON document on stdout.")
@click.pass_context
def cli(ctx: click.Context, site_path: str | None, as_json: bool) -> None:
    """hpcx: checked Slurm submission, provenance, an MPI/torch runtime, profiling and reports.

    Exit codes: 0 ok, 1 scheduler or runtime failure, 2 usage error, 3 request rejected by pre-flight checks.
    """
    path, origin = site_source(site_path)
    ctx.obj = Ctx(path, origin, as_json)


pass_ctx = click.make_pass_decorator(Ctx)
