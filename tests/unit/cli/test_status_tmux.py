"""`hpcx status --watch` in a real terminal: tmux panes of 80 and 200 columns (capture-pane) show the live table
fitted to the width, and piped output is plain lines, while a local-backend job logs."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time

import pytest

from tests.unit.cli.test_status_live import LOGGER, _wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (scripts/setup installs it)"
)


def _pane(session: str, width: int, command: str, env: dict[str, str], want: str) -> list[str]:
    """Run ``command`` in a detached tmux session ``width`` columns wide, on a server of its own (a server's
    first session sets the size its later ones get); the pane's lines once ``want`` shows."""
    tmux = ["tmux", "-L", session]
    exports = " ".join(
        f"{k}={shlex.quote(v)}" for k, v in env.items() if k in ("PATH", "HPCX_RUNS", "HPCX_SITE")
    )
    # -u COLUMNS/LINES: pytest exports 80x24, which rich would take over the pane's real size
    shell = f"env -u COLUMNS -u LINES {exports} {command} 2>&1; sleep 60"  # its output stays if it ends
    new = [*tmux, "new-session", "-d", "-s", session, "-x", str(width), "-y", "20", shell]
    subprocess.run(new, check=True, timeout=30)
    capture = [*tmux, "capture-pane", "-p", "-t", session]
    try:

        def captured():
            out = subprocess.run(capture, capture_output=True, text=True, timeout=30).stdout
            return out.splitlines() if want in out else None

        try:
            return _wait_for(captured, timeout_s=60)
        except AssertionError:
            last = subprocess.run(capture, capture_output=True, text=True, timeout=30)
            raise AssertionError(f"{want!r} not in the {width}-column pane: {last.stdout!r}") from None
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)


def test_the_watch_table_in_tmux_at_80_and_200_columns_and_piped(hpcx, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(LOGGER)
    run_id = hpcx.json("submit", "serial", "--", sys.executable, str(script), "4000", "2.0")["run_id"]
    try:
        _wait_for(lambda: (hpcx.json("status", run_id)["runs"][0]["live"] or {}).get("step"))
        watch = f"hpcx status --watch --interval 0.5 {run_id}"
        for width in (80, 200):
            lines = _pane(f"hpcx-test-{width}-{int(time.time())}", width, watch, hpcx.env, "loss=")
            assert all(len(line) <= width for line in lines), lines
            text = "\n".join(lines)
            assert run_id in text and "RUNNING" in text and "/4000" in text and "loss=" in text
            assert ("KIND" in text) is (width == 200)  # the narrow pane leaves the kind out, the wide one not
        piped = subprocess.run(
            ["bash", "-c", f"timeout 3 {watch} | cat"],
            env=hpcx.env,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert "\x1b[" not in piped and run_id in piped and "/4000" in piped  # plain lines, no escapes
    finally:
        hpcx("cancel", run_id, check=False)
