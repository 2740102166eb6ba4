"""Read the #SBATCH directives of an existing batch script, the way sbatch does. Pure: text in, data out."""

from __future__ import annotations

import glob
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from hpcx.errors import UsageError

# sbatch option (long or short) -> hpcx request key; the values are parsed later like command-line values.
_OPTIONS = {
    "--partition": "partition", "-p": "partition",
    "--nodes": "nodes", "-N": "nodes",
    "--ntasks-per-node": "ntasks_per_node",
    "--cpus-per-task": "cpus_per_task", "-c": "cpus_per_task",
    "--mem": "mem",
    "--time": "time", "-t": "time",
    "--account": "account", "-A": "account",
    "--qos": "qos", "-q": "qos",
    "--job-name": "name", "-J": "name",
    "--gpus-per-node": "gpus_per_node",
    "--ntasks": "ntasks", "-n": "ntasks",
    "--gres": "gres",
}  # fmt: skip


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


def log_glob(pattern: str, job_id: str) -> str:
    """A glob for the files Slurm makes of an -o/-e ``pattern`` for job ``job_id`` (fields it alone knows, such
    as the node or the task id, match anything)."""
    if "\\" in pattern:  # a backslash turns the substitutions off
        return glob.escape(pattern.replace("\\", ""))
    out, last = [], 0
    for m in _PATTERN.finditer(pattern):
        out.append(glob.escape(pattern[last : m.start()]))
        width, letter = m.groups()
        if letter == "%":
            out.append("[%]")
        elif letter in "jA":
            out.append(job_id.zfill(int(width)) if width else job_id)
        else:
            out.append("*")
        last = m.end()
    return "".join(out) + glob.escape(pattern[last:])


def own_log_files(patterns: list[str], job_id: str | None) -> list[Path]:
    """The files a script's own -o/-e ``patterns`` (absolute, from the manifest) made for ``job_id``."""
    if not job_id:
        return []
    found = {Path(p) for pattern in patterns for p in glob.glob(log_glob(pattern, str(job_id).split("_")[0]))}
    return sorted(p for p in found if p.is_file())
