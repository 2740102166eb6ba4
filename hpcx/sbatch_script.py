"""Read the #SBATCH directives of an existing batch script, the way sbatch does. Pure: text in, data out."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

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
        nodes = int(opts.get("nodes", "1").split("-")[0])
        total = int(opts.pop("ntasks"))
        opts.setdefault("ntasks_per_node", str(-(-total // nodes)))
    if "gres" in opts:
        gres = opts.pop("gres")
        parts = gres.split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            opts.setdefault("gpus_per_node", parts[-1])
        else:
            found.unchecked.append(f"--gres={gres}")
    return found
