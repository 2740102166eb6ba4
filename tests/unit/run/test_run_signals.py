"""python -m hpcx.run passes Slurm's time-limit warning (USR2) only to processes that handle it: a plain
program must run to its time limit, not die of a signal it never asked for; a handler deep in the tree gets it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HANDLER = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGUSR2, lambda *a: (print('got USR2', flush=True), sys.exit(7)))\n"
    "print('ready', flush=True)\n"
    "time.sleep(30)\n"
)


def _run(*command: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hpcx.run", "--no-profile", "--", *command],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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


def test_forwarding_to_a_command_that_just_exited_leaves_it_for_the_wrapper_to_reap():
    """A signal that reaches hpcx.run after its command exited, before the wrapper's wait4 reaped it: passing
    it on must not reap the child itself (Popen.send_signal polls, and so did), or wait4 finds no child and
    the wrapper crashes without its exit code and end record."""
    from hpcx.run import _forward

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    deadline = time.monotonic() + 30
    # a zombie, not reaped
    while os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    _forward(child, signal.SIGCONT, 0)
    _forward(child, signal.SIGTERM, 0)
    _, status, _ = os.wait4(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3
