"""The property tests' rules against the real sbatch of the test cluster, on a sample of the generated inputs:

- strings through quote() reach a real job's argv byte for byte (read back from /proc/self/cmdline in the job);
- each --time and --mem spelling sbatch accepts, `sbatch -v --test-only` reports as the minutes and MB hpcx
  parsed, and each spelling hpcx refuses, sbatch refuses too ("Invalid --time specification").

The generators are the unit stage's (tests/unit/templates/test_property_quote_time.py); derandomized, so a run is repeatable.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcx.errors import UsageError
from hpcx.spec import format_time, parse_mem_mb, parse_time_min
from tests.unit.templates.test_property_quote_time import (
    HARD,
    MEM_BREAKS,
    TIME_BREAKS,
    WORD,
    mem_spellings,
    time_spellings,
)

pytestmark = pytest.mark.slurm

SAMPLE = settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _test_only(tmp_path: Path, *options: str) -> str:
    """What `sbatch -v --test-only OPTIONS` says about a one-line job (nothing is queued)."""
    script = tmp_path / "probe.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SBATCH_", "SLURM_"))}
    proc = subprocess.run(
        ["sbatch", "-v", "--test-only", "-p", "batch", *options, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    return proc.stdout + proc.stderr


def _reported(output: str, option: str) -> str | None:
    """The value sbatch -v lists for ``option`` among its defined options."""
    m = re.search(rf"^sbatch: {option} +: (\S+)$", output, re.MULTILINE)
    return m.group(1) if m else None


def _slurm_mb(reported: str) -> int:
    """sbatch -v prints a size as MB, or with G or T."""
    m = re.fullmatch(r"(\d+)([GT]?)", reported)
    assert m, f"sbatch reported mem {reported!r}"
    return int(m.group(1)) * {"": 1, "G": 1024, "T": 1024 * 1024}[m.group(2)]


@SAMPLE
@given(time_spellings())
def test_sbatch_reports_the_minutes_hpcx_parsed(testbed, tmp_path, case):
    text, _ = case
    out = _test_only(tmp_path, f"--time={text}")
    try:
        minutes = parse_time_min(text)
    except UsageError:  # a zero limit: sbatch refuses it as well
        assert "Requested time limit is invalid" in out and "to start at" not in out, out
        return
    assert _reported(out, "time") == format_time(minutes), out


@SAMPLE
@given(time_spellings(), st.sampled_from(sorted(TIME_BREAKS)))
def test_time_spellings_hpcx_refuses_sbatch_refuses(testbed, tmp_path, case, how):
    text = TIME_BREAKS[how](case[0])
    with pytest.raises(UsageError):
        parse_time_min(text)
    out = _test_only(tmp_path, f"--time={text}")
    assert "Invalid --time specification" in out, out


@SAMPLE
@given(mem_spellings())
def test_sbatch_reports_the_mb_hpcx_parsed(testbed, tmp_path, case):
    text, _ = case
    out = _test_only(tmp_path, f"--mem={text}")
    assert _slurm_mb(_reported(out, "mem") or "") == parse_mem_mb(text), out


@SAMPLE
@given(mem_spellings(), st.sampled_from(sorted(MEM_BREAKS)))
def test_memory_spellings_hpcx_refuses_sbatch_refuses(testbed, tmp_path, case, how):
    text = MEM_BREAKS[how](case[0])
    with pytest.raises(UsageError):
        parse_mem_mb(text)
    out = _test_only(tmp_path, f"--mem={text}")
    assert "Invalid --mem specification" in out, out


# The job writes its own argv, exactly as the kernel holds it.
ARGV_DUMP = "import shutil; shutil.copyfile('/proc/self/cmdline', 'argv.bin')"


@settings(
    max_examples=2,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(WORD, min_size=6, max_size=12))
def test_any_string_reaches_a_real_jobs_argv(slurm_hpcx, tmp_path_factory, words):
    words = [*HARD, "".join(HARD), *words]
    workdir = tmp_path_factory.mktemp("argv")
    doc = slurm_hpcx.json("submit", "serial", "-t", "5", "--", "python", "-c", ARGV_DUMP, *words, cwd=workdir)
    assert slurm_hpcx.wait_finished(doc["run_id"], timeout_s=300)["state"] == "COMPLETED"
    argv = (workdir / "argv.bin").read_bytes().split(b"\0")[:-1]
    assert argv[-len(words) :] == [w.encode("utf-8", "surrogateescape") for w in words]
    assert argv[-len(words) - 1] == ARGV_DUMP.encode()
