"""Requests in sbatch's own vocabulary on the real test cluster: hpcx accepts what `sbatch --test-only` accepts,
and the job hpcx submits is the job sbatch makes of the same options (same nodes, tasks, CPUs, memory, TRES,
features, node lists), held and then cancelled. No site file: the live cluster's, as a user without one has it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.slurm.sbatch_vocab import hpcx_verdict, requests, sbatch_verdict, sbatch_words

pytestmark = pytest.mark.slurm
TIMEOUT_S = 60
# what `scontrol show job` says of the request itself (not of where, when or by whom it runs)
COMPARED = (
    "NumNodes",
    "NumTasks",
    "CPUs/Task",
    "MinMemoryNode",
    "MinMemoryCPU",
    "TRES",
    "TresPerNode",
    "TresPerTask",
    "TresPerJob",
    "Features",
    "ReqNodeList",
    "ExcNodeList",
)


@pytest.fixture
def live_site(testbed):
    from hpcx.site.discover import live_site

    site, why = live_site(ttl_s=0)
    assert site is not None, why
    return site


def _env(runs_root) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "SLURM_", "SBATCH_"))}
    env["HPCX_RUNS"] = str(runs_root)
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}"
    return env


def test_hpcx_accepts_what_sbatch_test_only_accepts(live_site):
    """300 seeded requests; the preflight_agreement_vocab benchmark runs the same ones."""
    missed = []
    words_list = requests(300, 20261207)
    for words in words_list:
        verdict = hpcx_verdict(words, live_site)
        accepted, said = sbatch_verdict(words, verdict.partition)
        if accepted != verdict.accepted:
            missed.append(
                f"{' '.join(words)}: hpcx {verdict.accepted} ({verdict.message[:120]}), sbatch: {said}"
            )
    assert len(missed) <= 3, "\n".join(missed)  # >= 0.99


def _show(job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=TIMEOUT_S, check=True
    ).stdout
    return dict(re.findall(r"(\S+?)=(\S*)", out))


def _held_pairs(site, count: int) -> list[tuple[list[str], str]]:
    """``count`` requests hpcx accepts, with the partition it chose (the first of a list is sbatch's pick too)."""
    out = []
    for words in requests(400, 77):
        verdict = hpcx_verdict(words, site)
        if (
            verdict.accepted and "--exclusive" not in words
        ):  # an exclusive held job keeps the next from starting
            out.append((words, verdict.partition))
        if len(out) == count:
            return out
    return out


def test_the_job_hpcx_submits_is_the_job_sbatch_makes(live_site, runs_root, tmp_path):
    env = _env(runs_root)
    ids: list[str] = []
    try:
        for words, partition in _held_pairs(live_site, 10):
            proc = subprocess.run(
                [sys.executable, "-m", "hpcx", "--json", "submit", "--hold", *sbatch_words(words, partition)]
                + ["serial", "true"],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                env=env,
                cwd=tmp_path,
            )
            assert proc.returncode == 0, f"hpcx submit {' '.join(words)}: {proc.stderr}"
            ours = json.loads(proc.stdout)["job_id"]
            ids.append(ours)
            raw = subprocess.run(
                ["sbatch", "--parsable", "--hold", *sbatch_words(words, partition), "--output=/dev/null"]
                + ["--wrap", "true"],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                env=env,
                cwd=tmp_path,
            )
            assert raw.returncode == 0, f"sbatch {' '.join(words)}: {raw.stderr}"
            theirs = raw.stdout.strip().split(";")[0]
            ids.append(theirs)
            a, b = _show(ours), _show(theirs)
            assert {k: a.get(k) for k in COMPARED} == {k: b.get(k) for k in COMPARED}, " ".join(words)
    finally:
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=TIMEOUT_S, check=False)


def test_a_user_script_with_sbatch_options_runs_unchanged(live_site, runs_root, tmp_path):
    """An own script's #SBATCH -n and --mem-per-cpu reach Slurm as written: hpcx adds no node count."""
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH -n 3\n#SBATCH --mem-per-cpu=1000M\n#SBATCH -t 5\nsrun hostname\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "--json", "submit", "--hold", str(script)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=_env(runs_root),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)["job_id"]
    try:
        shown = _show(job)
        assert (shown["NumTasks"], shown["MinMemoryCPU"]) == ("3", "1000M")
    finally:
        subprocess.run(["scancel", job], capture_output=True, timeout=TIMEOUT_S, check=False)
