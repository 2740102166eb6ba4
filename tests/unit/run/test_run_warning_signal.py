"""The time-limit warning reaches a program as the signal it listens for: Lightning's auto-requeue handles USR1,
Slurm (hpcx's --signal) sends USR2; HPCX_WARNING_SIGNAL names the signal outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
USR1_ONLY = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGUSR1, lambda *a: (print('got USR1', flush=True), sys.exit(5)))\n"
    "print('ready', flush=True)\n"
    "time.sleep(30)\n"
)
BOTH = USR1_ONLY.replace(
    "print('ready'",
    "signal.signal(signal.SIGUSR2, lambda *a: (print('got USR2', flush=True), sys.exit(6)))\nprint('ready'",
)


def _warned(
    tmp_path: Path, program: str, sent: int, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    script = tmp_path / "prog.py"
    script.write_text(program)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcx.run", "--no-profile", "--", sys.executable, str(script)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(sent)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out.strip(), err


def test_a_program_that_handles_only_usr1_gets_the_warning_as_usr1(tmp_path):
    code, out, err = _warned(tmp_path, USR1_ONLY, signal.SIGUSR2)
    assert (code, out) == (5, "got USR1"), err
    assert "the time-limit warning passed on as SIGUSR1: the program handles SIGUSR1, not SIGUSR2" in err


def test_a_program_that_handles_both_gets_the_one_sent(tmp_path):
    code, out, err = _warned(tmp_path, BOTH, signal.SIGUSR2)
    assert (code, out) == (6, "got USR2") and "passed on as" not in err


def test_the_site_or_user_names_the_warning_signal(tmp_path):
    code, out, err = _warned(tmp_path, BOTH, signal.SIGUSR2, {"HPCX_WARNING_SIGNAL": "USR1"})
    assert (code, out) == (5, "got USR1"), err
    assert "passed on as SIGUSR1: HPCX_WARNING_SIGNAL says so" in err
