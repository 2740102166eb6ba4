"""The ``hpcx`` command line: thin click adapters over the modules that do the work.

Kept light on purpose: importing this module must not load torch, mpi4py, h5py, numpy or matplotlib.
"""

from __future__ import annotations

import functools
import sys

import click

from hpcx.cli.app import Ctx, cli, error_document, json_requested
from hpcx.errors import HpcxError

__all__ = ["Ctx", "cli", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hpcx`` script: one line per error on stderr (with --json, one JSON document on
    stdout: ``{"hpcx": 1, "error": {"message", "hint", "exit_code"}}``), exit codes as documented."""
    argv = list(sys.argv[1:] if argv is None else argv)
    fail = functools.partial(_fail, argv)
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting: pass it on.
        code = cli.main(args=argv, prog_name="hpcx", standalone_mode=False)
    except HpcxError as exc:
        return fail(exc.message, exc.hint, exc.exit_code, f"hpcx: error: {exc}", parsed=True)
    except click.exceptions.Abort:
        return fail("aborted", None, 130, "hpcx: aborted")
    except click.ClickException as exc:
        if not json_requested(argv):
            exc.show()
            return exc.exit_code
        ctx = getattr(exc, "ctx", None)
        hint = f"see `{ctx.command_path} --help`" if ctx is not None else None
        return fail(exc.format_message(), hint, exc.exit_code, "")
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except BrokenPipeError:
        return 0
    return code if isinstance(code, int) else 0


def _fail(
    argv: list[str], message: str, hint: str | None, code: int, text: str, *, parsed: bool = False
) -> int:
    """Report an error as ``text`` on stderr, or as one JSON document on stdout where --json was asked for."""
    if json_requested(argv, parsed=parsed):
        click.echo(error_document(message, hint, code))
    else:
        click.echo(text, err=True)
    return code
