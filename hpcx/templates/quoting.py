"""Shell quoting for rendered job scripts: any user value becomes exactly one shell word on one line."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from hpcx.errors import UsageError

_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


class Shell(str):
    """Text that is already safe to paste into a shell script (built by hpcx, never taken from a user)."""


def quote(value: object) -> Shell:
    """Quote ``value`` as one shell word that stays on one line.

    Plain tokens pass unchanged; printable text gets single quotes; text with newlines or other control
    characters gets ANSI-C quoting ($'...') so that no value can start a new line (or a new #SBATCH directive).
    """
    if isinstance(value, Shell):
        return value
    if isinstance(value, bool):
        return Shell("1" if value else "0")
    if isinstance(value, (int, float)):
        return Shell(str(value))
    text = str(value)
    if "\x00" in text:
        raise UsageError(
            f"value {text[:40]!r} contains a NUL byte", hint="remove it; a shell cannot carry one"
        )
    if text and _SAFE.fullmatch(text):  # fullmatch: $ would let a trailing newline through unquoted
        return Shell(text)
    if all(c.isprintable() for c in text):
        return Shell(shlex.quote(text))
    return Shell("$'" + "".join(_ansi_c(c) for c in text) + "'")


_ANSI_C_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _ansi_c(char: str) -> str:
    if char in _ANSI_C_NAMED:
        return _ANSI_C_NAMED[char]
    if char in ("\\", "'"):
        return "\\" + char
    if char.isprintable():
        return char
    # Bytes, not \u escapes: bash expands \u by the locale, \xHH is the same everywhere.
    return "".join(f"\\x{b:02x}" for b in char.encode("utf-8", "surrogateescape"))


def join_argv(argv: Iterable[object]) -> Shell:
    """Quote each word of ``argv`` and join them with spaces."""
    return Shell(" ".join(quote(a) for a in argv))
