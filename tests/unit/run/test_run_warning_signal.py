"""The time-limit warning reaches a program as the signal it listens for: Lightning's auto-requeue handles USR1,
Slurm (hpcx's --signal) sends USR2; HPCX_WARNING_SIGNAL names the signal outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def test_a_warning_to_the_whole_step_does_not_kill_a_program_that_never_asked_for_it(tmp_path):
    """srun signals every process of the step, hpcx.run's command too: that command must not die of USR2."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpcx.run",
            "--no-profile",
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(2)",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGUSR2)  # as slurmstepd does to every process of the step
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_a_shell_command_keeps_its_own_trap_for_the_warning(tmp_path):
    """A shell cannot trap what it was started with ignored: a job script's trap on USR2 must still work."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpcx.run",
            "--no-profile",
            "--",
            "bash",
            "-c",
            "trap 'echo trapped; exit 4' USR2; sleep 1; echo ready; sleep 20 & wait",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGUSR2)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out.strip()) == (4, "trapped"), err
