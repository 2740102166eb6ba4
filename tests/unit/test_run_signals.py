"""python -m hpcx.run passes Slurm's time-limit warning (USR2) only to processes that handle it: a plain
program must run to its time limit, not die of a signal it never asked for; a handler deep in the tree gets it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HANDLER = ("import signal, sys, time\n"
           "signal.signal(signal.SIGUSR2, lambda *a: (print('got USR2', flush=True), sys.exit(7)))\n"
           "print('ready', flush=True)\n"
           "time.sleep(30)\n")  # fmt: skip


def _run(*command: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "hpcx.run", "--no-profile", "--", *command], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_a_program_without_a_handler_is_not_killed_by_the_warning():
    proc = _run("sleep", "2")
    time.sleep(0.8)
    proc.send_signal(signal.SIGUSR2)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "SIGUSR2 (the time-limit warning) not passed on" in err


def test_a_handler_below_a_shell_gets_the_warning(tmp_path):
    script = tmp_path / "handler.py"
    script.write_text(HANDLER)
    proc = _run("bash", "-c", f"{sys.executable} {script}; exit $?")
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGUSR2)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out.strip()) == (7, "got USR2"), err


def test_term_still_reaches_a_program_without_a_handler():
    proc = _run("sleep", "30")
    time.sleep(0.8)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
