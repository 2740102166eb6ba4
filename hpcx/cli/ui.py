"""ui: the read-only web dashboard over a runs root (hpcx.ui)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@cli.command("ui")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="The runs root to show (default: the one hpcx runs uses).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0 picks a free one."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    metavar="ADDR",
    help="Address to listen on; reach the loopback default through an SSH tunnel (ssh -L PORT:127.0.0.1:PORT).",
)
@pass_ctx
def ui_cmd(obj: Ctx, root: Path | None, port: int, host: str) -> None:
    """Serve a read-only dashboard of the runs under the runs root: the runs list, each run's learning curves
    and timelines, each sweep's parameters against its metric, updating by themselves. Every request needs the
    token in the printed URL. Ctrl-C stops it."""
    from hpcx.ui.access import new_token
    from hpcx.ui.server import plotly_js, serve

    where = root or obj.runs_root.path
    if not where.is_dir():
        raise UsageError(
            f"runs root {where} is not a directory", hint="give --root DIR, or submit a run first"
        )
    try:
        server = serve(where.resolve(), host, port, new_token(), plotly_js())
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port (0 picks a free one)",
        ) from None
    bound_port = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    url = (
        f"http://{shown if host not in ('0.0.0.0', '::') else '127.0.0.1'}:{bound_port}/?token={server.token}"
    )
    if host not in LOOPBACK:
        click.echo(
            f"hpcx ui: warning: listening on {host}: anyone who can reach this machine's port {bound_port} and "
            "has the token can read every run under the root; the token is all that protects them",
            err=True,
        )
    doc = {"url": url, "host": host, "port": bound_port, "root": str(where)}
    if obj.json:
        obj.emit_line("ui", doc)  # one line, flushed: a script reads the URL and goes on
    else:
        click.echo(_text(doc))
        sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _text(doc: dict[str, object]) -> str:
    return f"hpcx ui: serving {doc['root']} (read-only) at\n  {doc['url']}\nCtrl-C stops it"
