"""The ``hpcx`` command line: thin click adapters over the modules that do the work.

Kept light on purpose: importing this module must not load torch, mpi4py, h5py, numpy or matplotlib.
"""

from __future__ import annotations

import click

from hpcx.cli.app import Ctx, cli
from hpcx.errors import HpcxError

__all__ = ["Ctx", "cli", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hpcx`` script: one line per error on stderr, exit codes as documented."""
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting: pass it on.
        code = cli.main(args=argv, prog_name="hpcx", standalone_mode=False)
    except HpcxError as exc:
        click.echo(f"hpcx: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("hpcx: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except BrokenPipeError:
        return 0
    return code if isinstance(code, int) else 0
