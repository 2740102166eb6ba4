"""Read the #SBATCH directives of an existing batch script, the way sbatch does. Pure: text in, data out."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from hpcx.errors import UsageError

# sbatch option (long or short) -> hpcx request key; the values are parsed later like command-line values.
_OPTIONS = {
    "--partition": "partition",
    "-p": "partition",
    "--nodes": "nodes",
    "-N": "nodes",
    "--ntasks-per-node": "ntasks_per_node",
    "--cpus-per-task": "cpus_per_task",
    "-c": "cpus_per_task",
    "--mem": "mem",
    "--time": "time",
    "-t": "time",
    "--account": "account",
    "-A": "account",
    "--qos": "qos",
    "-q": "qos",
    "--job-name": "name",
    "-J": "name",
    "--gpus-per-node": "gpus_per_node",
    "--ntasks": "ntasks",
    "-n": "ntasks",
    "--gres": "gres",
}


@dataclass
class ScriptDirectives:
    """What a script's #SBATCH lines ask for: the options hpcx checks, and the rest, passed on unchanged."""

    options: dict[str, str] = field(default_factory=dict)
    unchecked: list[str] = field(default_factory=list)
    gpu_type: str | None = None  # --gres=gpu:TYPE:N names a GPU type: checked against the partition's
    ntasks: int | None = None  # --ntasks as written (the job's tasks, whichever nodes they land on)


def _split(word: str, rest: list[str]) -> tuple[str, str | None]:
    if word.startswith("--") and "=" in word:
        name, value = word.split("=", 1)
        return name, value
    if word.startswith("-") and not word.startswith("--") and len(word) > 2:
        return word[:2], word[2:]  # -N2
    return word, rest.pop(0) if rest and not rest[0].startswith("-") else None


def parse_directives(text: str) -> ScriptDirectives:
    """The #SBATCH options before the first command, as sbatch reads them (it stops at the first command)."""
    out = ScriptDirectives()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if number == 1 and stripped.startswith("#!"):
            continue
        if not stripped or (stripped.startswith("#") and not stripped.startswith("#SBATCH")):
            continue
        if not stripped.startswith("#SBATCH"):
            break
        try:
            words = shlex.split(stripped[len("#SBATCH") :], comments=True)
        except ValueError as exc:
            raise UsageError(f"line {number}: cannot read {stripped!r}: {exc}") from exc
        while words:
            name, value = _split(words.pop(0), words)
            key = _OPTIONS.get(name)
            if key is None or value is None:
                out.unchecked.append(name if value is None else f"{name}={value}")
            else:
                out.options[key] = value
    return _normalise(out)


def _normalise(found: ScriptDirectives) -> ScriptDirectives:
    """Turn --ntasks and --gres into the per-node counts hpcx checks."""
    opts = found.options
    if "ntasks" in opts:
        raw = opts.pop("ntasks")
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise UsageError(f"#SBATCH --ntasks={raw} is not a whole number", hint="e.g. #SBATCH -n 4")
        found.ntasks = int(raw)
        first = opts.get("nodes", "1").split("-")[0]
        # A bad node count is refused later, naming it (not here as a ValueError or a division by zero).
        nodes = int(first) if first.isascii() and first.isdigit() and int(first) > 0 else 1
        opts.setdefault("ntasks_per_node", str(-(-found.ntasks // nodes)))
    if "gres" in opts:
        gres = opts.pop("gres")
        parts = gres.split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            opts.setdefault("gpus_per_node", parts[-1])
            found.gpu_type = parts[1] if len(parts) == 3 else None
        else:
            found.unchecked.append(f"--gres={gres}")
    return found


# sbatch's filename patterns (man sbatch, "filename pattern"): %j job id, %A array job id, %a task id, %x name...
_PATTERN = re.compile(r"%(\d*)([AaJjNnstux%])")
# What a field may be where only Slurm knows it: numbers, or (the node's name) anything but a path separator.
_UNKNOWN = {"N": r"[^/]+", "s": r"[^/]+"}


def expand_log_pattern(pattern: str, fields: Mapping[str, str | None]) -> list[str | re.Pattern[str]]:
    """The path Slurm makes of an -o/-e ``pattern``, one part per path component: a component whose fields are
    all known (``fields``: ``j`` ``A`` ``a`` ``x`` ``u`` and their values; zero-padded as ``%4a`` asks) is the
    concrete name; one holding a field only Slurm knows (the node ``%N``/``%n``, the step ``%s``, the rank
    ``%t``, a field given as None such as an array task's own job id ``%j``) is a regex for its names, in which
    every other field matches exactly: never a wildcard over a user's directory. An unknown ``%j`` is group
    ``j``, the same number each time it appears. A backslash turns the substitutions off, as in sbatch."""
    out: list[str | re.Pattern[str]] = []
    if "\\" in pattern:
        out.extend(pattern.replace("\\", "").split("/"))
        return out
    for part in pattern.split("/"):
        text, regex, exact, last = [], [], True, 0
        for m in _PATTERN.finditer(part):
            literal = part[last : m.start()]
            text.append(literal)
            regex.append(re.escape(literal))
            width, letter = m.groups()
            value = "%" if letter == "%" else fields.get(letter)
            if value is not None:
                value = value.zfill(int(width)) if width and value.isdigit() else value
                text.append(value)
                regex.append(re.escape(value))
            # the job id, when only Slurm knows it; %J is jobid.stepid, the step Slurm's alone
            elif letter in "jJ":
                exact = False
                j = fields.get("j")
                if j is not None:
                    head = re.escape(j.zfill(int(width)) if width else j)
                else:
                    head = "(?P=j)" if "(?P<j>" in "".join(regex) else r"(?P<j>\d+)"
                regex.append(head + (r"(?:\.[^/]+)?" if letter == "J" else ""))
            else:
                exact = False
                regex.append(_UNKNOWN.get(letter, r"\d+"))
            last = m.end()
        text.append(part[last:])
        regex.append(re.escape(part[last:]))
        out.append("".join(text) if exact else re.compile("".join(regex)))
    return out
