"""Slurm's host lists: ``n[1-3,7],gpu01`` expanded to names and names compressed back."""

from __future__ import annotations

import re

from hpcx.errors import UsageError
from hpcx.spec.values import Origin, spell

_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
HOST_FILE = re.compile(
    r"[A-Za-z0-9._/+-]*/[A-Za-z0-9._/+-]*"
)  # -w FILE: a value with a / names a file of hosts
_HOST_PART = re.compile(r"([^,\[]+)(?:\[([^\]]+)\])?([^,\[]*)")


def expand_hostlist(text: str, *, option: str = "nodelist", origin: Origin | None = None) -> tuple[str, ...]:
    """Slurm's host list ``n[1-3,7],gpu01`` -> ``n1 n2 n3 n7 gpu01`` (zero padding kept: ``n[01-02]``)."""
    names: list[str] = []
    pos, text = 0, str(text).strip()
    while pos < len(text):
        m = _HOST_PART.match(text, pos)
        if not m or m.end() == pos:
            raise UsageError(
                f"{spell(option, repr(text), origin)} is not a host list", hint="e.g. n[1-4],gpu01"
            )
        prefix, ranges, suffix = m.groups()
        if ranges is None:
            names.append(prefix + suffix)
        else:
            for part in ranges.split(","):
                names += _expand_range(prefix, part, suffix, text, option, origin)
        pos = m.end() + (1 if m.end() < len(text) and text[m.end()] == "," else 0)
    bad = [n for n in names if not _HOST_NAME.fullmatch(n)]
    if bad or not names:
        raise UsageError(
            f"{spell(option, repr(text), origin)} "
            + (f"has {bad[0]!r}, not a host name" if bad else "names no host"),
            hint="e.g. n[1-4],gpu01 (letters, digits and . _ -)",
        )
    return tuple(dict.fromkeys(names))


def _expand_range(
    prefix: str, part: str, suffix: str, text: str, option: str, origin: Origin | None
) -> list[str]:
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
    if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
        raise UsageError(f"{spell(option, repr(text), origin)}: [{part}] is not N or N-M", hint="e.g. n[1-4]")
    first, last = m.group(1), m.group(2) or m.group(1)
    width = len(first) if first.startswith("0") else 0
    return [f"{prefix}{str(i).zfill(width)}{suffix}" for i in range(int(first), int(last) + 1)]


def compress_hostlist(names: tuple[str, ...] | list[str]) -> str:
    """The inverse of :func:`expand_hostlist`: ``n1 n2 n3 n7`` -> ``n[1-3,7]``, in the order given."""
    runs: list[tuple[tuple[str, int], list[int]] | str] = []  # consecutive names of one prefix: one bracket
    for name in names:
        m = re.fullmatch(r"(.*?)(\d+)", name)
        if not m or not m.group(1) or "[" in name or "," in name:
            runs.append(name)
            continue
        prefix, digits = m.groups()
        width = len(digits) if digits.startswith("0") and len(digits) > 1 else 0
        last = runs[-1] if runs else None
        if (
            isinstance(last, tuple)
            and last[0][0] == prefix
            and (width == last[0][1] or len(digits) == last[0][1])
        ):
            last[1].append(int(digits))
        else:
            runs.append(((prefix, width), [int(digits)]))
    return ",".join(r if isinstance(r, str) else _ranges(r[0][0], r[0][1], r[1]) for r in runs)


def _ranges(prefix: str, width: int, numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"{prefix}{str(numbers[0]).zfill(width)}"
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    body = ",".join(
        str(a).zfill(width) if a == b else f"{str(a).zfill(width)}-{str(b).zfill(width)}" for a, b in spans
    )
    return f"{prefix}[{body}]"
