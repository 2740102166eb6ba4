"""Read the #SBATCH directives of an existing batch script, the way sbatch does. Pure: text in, data out."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from hpcx.errors import UsageError
from hpcx.submit.vocabulary import BY_NAME, Option, is_prefix, nearest, request_key, resolve_long


@dataclass
class ScriptDirectives:
    """What a script's #SBATCH lines ask for: the options hpcx checks (by request key, as written), and the rest,
    passed on unchanged (they stay in the script)."""

    options: dict[str, str] = field(default_factory=dict)
    unchecked: list[str] = field(default_factory=list)
    spelled: dict[str, str] = field(default_factory=dict)  # request key -> the option as the script spells it


def _split(word: str, rest: list[str], option: Option | None) -> tuple[str, str | None]:
    if word.startswith("--") and "=" in word:
        name, value = word.split("=", 1)
        return name, value
    if word.startswith("-") and not word.startswith("--") and len(word) > 2:
        return word[:2], word[2:]  # -N2
    if option is not None and option.value != "required":
        return word, None  # --exclusive, --hold: the next word is not theirs
    return word, rest.pop(0) if rest and not rest[0].startswith("-") else None


def _full_name(word: str, number: int) -> str:
    """``word`` with its long option written out (sbatch takes a unique prefix: --ntasks-per-n); an option sbatch
    does not have, or one that abbreviates several (--gpu), is refused naming the nearest."""
    if not word.startswith("--") or word == "--":
        return word
    name, sep, value = word.partition("=")
    full = resolve_long(name)
    if full is None:
        near = nearest(name)
        raise UsageError(
            f"line {number}: #SBATCH {name} is not an sbatch option"
            + (" (it abbreviates several)" if is_prefix(name) else ""),
            hint=f"did you mean {near}?" if near else "see man sbatch",
        )
    return full + sep + value


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
            word = _full_name(words.pop(0), number)
            option = BY_NAME.get(word.split("=", 1)[0] if word.startswith("--") else word[:2])
            name, value = _split(word, words, option)
            if option is None or not option.checked or (value is None and option.value == "required"):
                out.unchecked.append(name if value is None else f"{name}={value}")
            else:
                key = request_key(option)
                out.options[key] = "" if value is None else value
                out.spelled[key] = name
    return out


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
