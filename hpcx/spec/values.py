"""The values of a request as users spell them: where a value came from and how to name it back to them
(:func:`spell`), and the parsers of sbatch's time, memory, GRES, count and node-range spellings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hpcx.errors import UsageError

# Values that end up on an #SBATCH line must be single plain tokens: no spaces, quotes or newlines.
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:@-]*$")
# ASCII digits only, whole numbers only, B only after a unit: what sbatch itself accepts (an own script's values
# reach sbatch as written, so hpcx must refuse what sbatch would).
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$", re.ASCII)
_MEM = re.compile(r"^(\d+)(?:([KMGT])B?)?$", re.IGNORECASE | re.ASCII)
_MEM_FACTOR_KB = {"K": 1, "": 1024, "M": 1024, "G": 1024**2, "T": 1024**3}


# Where a value came from: the layer (cli, script, env, user, site, ...) and the file, for user and site.
Origin = tuple[str, "str | None"]


def spell(key: str, value: object, origin: Origin | None = None) -> str:
    """Request value ``key`` as the user can find it where it was set: ``--time 2h`` (the command line or the
    script's #SBATCH lines; also when ``origin`` is None), ``HPCX_TIME=2h``, ``defaults.time 2h (from the site
    file F)``."""
    layer, file = origin or ("cli", None)
    typed = layer in ("cli", "script") and file is not None and file.startswith("-")
    flag = file if typed else "--" + key.replace("_", "-")  # as typed: -n 4, --ntasks 4
    if layer == "env":
        return f"HPCX_{key.upper()}={value}"
    if layer in ("site", "user"):
        what = "the site file" if layer == "site" else "the user config"
        return f"defaults.{key} {value} (from {what}{' ' + file if file else ''})"
    return f"{flag} {value}"  # typed on the command line or in the script's #SBATCH lines


def example(key: str, value: object, origin: Origin | None = None) -> str:
    """A right value for ``key`` written the way it is set at ``origin``: ``--time 01:30:00``, ``HPCX_TIME=...``,
    ``defaults.time: 01:30:00`` (in the file)."""
    if origin is not None and origin[0] in ("site", "user"):
        return f"defaults.{key}: {value}"
    return spell(key, value, origin)


def parse_time_min(text: str | int, *, origin: Origin | None = None) -> int:
    """Parse a Slurm time ("MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM[:SS]") into whole minutes, rounded up.

    Errors name the value where ``origin`` says it was set (default: the --time option)."""
    if isinstance(text, int):
        return _positive("time", text, "minutes", origin)
    m = _TIME.match(str(text).strip())
    if not m:
        raise UsageError(
            f"{spell('time', repr(text), origin)} is not a Slurm time",
            hint=f"use MM, HH:MM:SS or D-HH:MM:SS, e.g. {example('time', '01:30:00', origin)}",
        )
    days, a, b, c = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:  # MM:SS
        seconds = int(a) * 60 + int(b)
    else:  # MM
        seconds = int(a) * 60
    return _positive("time", -(-seconds // 60), "minutes", origin)


def format_time(minutes: int) -> str:
    """Format minutes the way Slurm prints limits: D-HH:MM:SS, or HH:MM:SS under a day."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00" if days else f"{hours:02d}:{mins:02d}:00"


def parse_mem_mb(text: str | int, *, option: str = "mem", origin: Origin | None = None) -> int:
    """Parse a memory size ("4000", "4000M", "4G", "4GB") into whole MB (Slurm's unit), rounded up.

    Shaped like :func:`parse_time_min` on purpose (an int is checked as is, text is matched, the refusal names the
    spelling and an example): the two share that form, not their logic."""
    if isinstance(text, int):
        return _positive(option, text, "MB", origin)
    m = _MEM.match(str(text).strip())
    if not m:
        raise UsageError(
            f"{spell(option, repr(text), origin)} is not a memory size",
            hint=f"use e.g. {example(option, '4000M', origin)} or 4G",
        )
    kb = int(m.group(1)) * _MEM_FACTOR_KB[(m.group(2) or "").upper()]
    if kb == 0:  # named as written: 0G is no memory in any unit
        raise UsageError(
            f"{spell(option, repr(text), origin)} must be positive",
            hint=f"e.g. {example(option, '4000M', origin)}",
        )
    return -(-kb // 1024)


def parse_mem_or_all(text: str | int, *, origin: Origin | None = None) -> int:
    """``--mem``: a memory size per node, or 0 for all of each node's memory (as sbatch reads ``--mem=0``)."""
    m = _MEM.match(str(text).strip())
    if m and int(m.group(1)) == 0:
        return 0
    return parse_mem_mb(text, origin=origin)


@dataclass(frozen=True)
class Gres:
    """One entry of a ``--gres`` list: ``gpu:tesla:2`` is name gpu, type tesla, count 2."""

    name: str
    type: str | None
    count: int

    def __str__(self) -> str:
        return ":".join([self.name, *([self.type] if self.type else []), str(self.count)])


_GRES_ITEM = re.compile(
    r"^([A-Za-z][A-Za-z0-9_.-]*)(?::([A-Za-z0-9_.-]*[A-Za-z_.-][A-Za-z0-9_.-]*))?(?::(\d+))?$"
)


def parse_gres(text: str, *, option: str = "gres", origin: Origin | None = None) -> tuple[Gres, ...]:
    """Slurm's ``--gres`` list: ``NAME[:TYPE][:COUNT]`` entries, comma-separated (``gpu:tesla:2,nvme:1``); a
    missing count is 1. The empty string (``--gres=none`` is sbatch's spelling) is no entry."""
    if str(text).strip().lower() in ("", "none"):
        return ()
    out = []
    for item in str(text).split(","):
        m = _GRES_ITEM.fullmatch(item.strip())
        if not m or (m.group(3) is not None and int(m.group(3)) < 1):
            raise UsageError(
                f"{spell(option, repr(text), origin)}: {item!r} is not NAME[:TYPE][:COUNT]",
                hint=f"e.g. {example(option, 'gpu:tesla:2', origin)} or gpu:1",
            )
        out.append(Gres(m.group(1), m.group(2) or None, int(m.group(3) or 1)))
    return tuple(out)


def parse_typed_count(
    option: str, text: str | int, *, origin: Origin | None = None
) -> tuple[str | None, int]:
    """``--gpus``, ``--gpus-per-node``, ``--gpus-per-task``: ``[TYPE:]COUNT`` -> (TYPE or None, COUNT)."""
    kind, sep, count = str(text).strip().rpartition(":")
    if not sep:
        return None, parse_count(option.replace("_", "-"), count, minimum=0, origin=origin)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", kind) or not re.fullmatch(r"[0-9]+", count):
        raise UsageError(
            f"{spell(option, repr(text), origin)} is not [TYPE:]COUNT",
            hint=f"e.g. {example(option, 'tesla:2', origin)}",
        )
    return kind, int(count)


def parse_node_range(text: str | int, *, origin: Origin | None = None) -> tuple[int, int | None]:
    """``-N``: ``N`` or ``MIN-MAX`` -> (MIN, MAX or None)."""
    m = re.fullmatch(r"([0-9]+)-([0-9]+)", str(text).strip())
    if m is None:  # one count, or what parse_count refuses naming it whole (-1, abc)
        return parse_count("nodes", text, origin=origin), None
    first, last = int(m.group(1)), int(m.group(2))
    if first < 1:
        raise UsageError(
            f"{spell('nodes', text, origin)} starts below 1",
            hint=f"e.g. {example('nodes', '1-' + m.group(2), origin)}",
        )
    if last < first:
        raise UsageError(
            f"{spell('nodes', text, origin)} is an empty range",
            hint=f"write the smaller count first: {last}-{first}",
        )
    return first, last


def parse_count(option: str, text: str | int, *, minimum: int = 1, origin: Origin | None = None) -> int:
    """Parse a whole count for ``option`` (spelled as the flag: ``ntasks-per-node``); at least ``minimum``."""
    key = option.replace("-", "_")
    digits = str(text).strip()
    # ASCII digits as sbatch reads them: int() would also take '1_0', '+2' and '３', which sbatch refuses.
    if not re.fullmatch(r"-?[0-9]+", digits):
        raise UsageError(
            f"{spell(key, repr(text), origin)} is not a whole number", hint=f"e.g. {example(key, 2, origin)}"
        )
    value = int(digits)
    if value < minimum:
        raise UsageError(
            f"{spell(key, value, origin)} is below {minimum}",
            hint=f"use {example(key, minimum, origin)} or more",
        )
    return value


def check_token(option: str, value: str | None, *, origin: Origin | None = None) -> str | None:
    """Check a name that goes on an #SBATCH line: one plain token, no spaces, quotes or newlines."""
    if value is None or _TOKEN.fullmatch(value):  # fullmatch: $ would let a trailing newline through
        return value
    raise UsageError(
        f"{spell(option, repr(value), origin)} is not a plain name",
        hint="use letters, digits and . _ + : @ - only, starting with a letter or digit",
    )


def _positive(option: str, value: int, unit: str, origin: Origin | None = None) -> int:
    if value <= 0:
        raise UsageError(f"{spell(option, value, origin)} {unit} must be positive")
    return value
