"""config show, completion."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.site.show import config_doc, config_text


@cli.group()
def config() -> None:
    """Inspect the configuration layers."""


@config.command("show")
@pass_ctx
def config_show(obj: Ctx) -> None:
    """Every resolved value with its source: cli > env (HPCX_*) > user config > site > builtin; then the
    template directories in search order. The first line names the site in use and how it was chosen
    (--site, HPCX_SITE, user config, system-wide file, else the live cluster, else the builtin local site)."""
    from hpcx.templates import search_path  # Jinja: not for `hpcx completion`

    chosen, root = obj.chosen, obj.runs_root
    doc = config_doc(chosen, obj.user, root, search_path(obj.site.template_dirs, obj.user.template_dirs))
    obj.emit("config", doc, lambda d: config_text(chosen, d))


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL: eval "$(hpcx completion bash)" in ~/.bashrc."""
    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    click.echo(cls(cli, {}, "hpcx", "_HPCX_COMPLETE").source())
