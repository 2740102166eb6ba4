"""Random job requests written in sbatch's own vocabulary, for the test cluster (nodes n1: 4 CPUs, 4000M,
features avx2,cpu; n2: the same and gpu:tesla:2, features avx2,gpu; partitions debug and batch over both, gpu over
n2). Each request is a list of command-line words, spelled as a user may (short or long, ``=`` or a space), and
the verdicts of hpcx (in process, as `hpcx submit --dry-run` decides) and of `sbatch --test-only`.

Shared by tests/slurm/test_sbatch_vocab_slurm.py and benchmarks/preflight_agreement_vocab.py."""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import dataclass

from hpcx.errors import HpcxError, RejectedError
from hpcx.site import Site
from hpcx.submit.request import Request, resolve

SBATCH_TIMEOUT_S = 30
# option -> (short spelling or None, the values drawn)
CHOICES: dict[str, tuple[str | None, list[str]]] = {
    "--ntasks": ("-n", ["1", "2", "3", "4", "5", "6", "8", "9"]),
    "--nodes": ("-N", ["1", "2", "3", "1-2", "2-2", "1-3"]),
    "--ntasks-per-node": (None, ["1", "2", "3", "4", "5"]),
    "--cpus-per-task": ("-c", ["1", "1", "2", "3", "5"]),
    "--mem": (None, ["500M", "2G", "4000", "5000M", "0"]),
    "--mem-per-cpu": (None, ["500M", "1000", "2G", "3000M", "5G"]),
    "--gpus": ("-G", ["1", "2", "3", "tesla:1", "tesla:2"]),
    "--gpus-per-node": (None, ["1", "2", "3", "tesla:1"]),
    "--gpus-per-task": (None, ["1", "2"]),
    "--gres": (None, ["gpu:1", "gpu:tesla:1", "gpu:tesla:2", "gpu:3", "gpu:a100:1"]),
    "--constraint": ("-C", ["avx2", "cpu", "gpu", "avx2&gpu", "cpu|gpu", "avx512"]),
    "--nodelist": ("-w", ["n1", "n2", "n[1-2]"]),
    "--exclude": ("-x", ["n1", "n2"]),
    "--exclusive": (None, [""]),
    "--time": ("-t", ["5", "30", "1:00:00", "1-0", "2-00:00:00", "3-0"]),
}
WEIGHTS = {"--ntasks": 0.5, "--nodes": 0.35, "--time": 0.5, "--cpus-per-task": 0.3}
PARTITIONS = [None, None, "debug", "batch", "gpu", "debug,batch"]


@dataclass
class Verdict:
    accepted: bool
    partition: str  # the one hpcx chose, or the list Slurm is given where hpcx found none
    message: str
    usage: bool = False  # hpcx refused the words themselves (a usage error)


def requests(n: int, seed: int) -> list[list[str]]:
    """``n`` requests as command-line words, from ``seed`` (the same words every time)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words: list[str] = []
        partition = rng.choice(PARTITIONS)
        if partition:
            words += _spell(rng, "--partition", "-p", partition)
        memory = rng.choice([None, None, "--mem", "--mem-per-cpu"])  # Slurm takes one of them
        for option, (short, values) in CHOICES.items():
            if option in ("--mem", "--mem-per-cpu"):
                chosen = option == memory
            else:
                chosen = rng.random() < WEIGHTS.get(option, 0.12)
            if chosen:
                words += _spell(rng, option, short, rng.choice(values))
        out.append(words)
    return out


def _spell(rng: random.Random, long: str, short: str | None, value: str) -> list[str]:
    if value == "":
        return [long]
    form = rng.choice(["long=", "long", "short"] if short else ["long=", "long"])
    if form == "long=":
        return [f"{long}={value}"]
    return [long, value] if form == "long" else [short or long, value]


def as_options(words: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The words as the command line's options (request keys) and the flag each was typed with."""
    from hpcx.submit.vocabulary import BY_NAME, request_key

    options: dict[str, str] = {}
    spelled: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        name, sep, value = word.partition("=")
        option = BY_NAME[name]
        if not sep and option.value == "required":
            value, i = words[i + 1], i + 1
        key = request_key(option)
        options[key], spelled[key] = value, name
        i += 1
    return options, spelled


def hpcx_verdict(words: list[str], site: Site) -> Verdict:
    """What `hpcx submit --dry-run serial WORDS true` decides."""
    options, spelled = as_options(words)
    request = Request(kind="serial", options=options, command=("true",), spelled=spelled)
    try:
        prep = resolve(request, site)
    except RejectedError as exc:
        return Verdict(False, options.get("partition") or ",".join(site.partitions), str(exc))
    except HpcxError as exc:  # the words refused before any partition is looked at
        return Verdict(False, options.get("partition") or ",".join(site.partitions), str(exc), usage=True)
    return Verdict(True, prep.partition.name, prep.choice.get("why", ""))


def sbatch_words(words: list[str], partition: str) -> list[str]:
    """The request for sbatch, with the partition hpcx chose (or all of them) in place of the user's."""
    out, skip = [], False
    for word in words:
        if skip or word in ("-p", "--partition"):
            skip = not skip and word in ("-p", "--partition")  # the next word is the partition's value
            continue
        if not word.startswith("--partition="):
            out.append(word)
    return ["-p", partition, *out]


def sbatch_verdict(words: list[str], partition: str) -> tuple[bool, str]:
    """Whether `sbatch --test-only` takes the request on ``partition``, and what it said."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SBATCH_", "SLURM_", "SALLOC_"))}
    proc = subprocess.run(
        ["sbatch", "--test-only", *sbatch_words(words, partition), "--wrap", "true"],
        capture_output=True,
        text=True,
        timeout=SBATCH_TIMEOUT_S,
        env=env,
        check=False,
    )
    said = (proc.stdout + proc.stderr).strip().replace("\n", " ")
    return proc.returncode == 0 and "to start at" in said, said
