"""`hpcx ui` as a user starts it: the URL with its token, loopback by default, a warning for any other address,
clear errors for a missing root and a busy port, Ctrl-C ends it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, _base_env


def start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hpcx", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_base_env(root),
        cwd=REPO,
    )


def first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    return line


def stop(proc: subprocess.Popen[str]) -> tuple[str, str, int]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    return out, err, proc.returncode


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "runs").mkdir()
    return tmp_path / "runs"


def test_it_listens_on_loopback_prints_a_tokened_url_and_ctrl_c_ends_it(root):
    proc = start(root, "--json", "ui", "--port", "0")
    try:
        doc = json.loads(first_line(proc))
        assert doc["kind"] == "ui" and doc["host"] == "127.0.0.1" and doc["root"] == str(root)
        assert doc["url"].startswith(f"http://127.0.0.1:{doc['port']}/?token=")
        token = doc["url"].split("token=")[1]
        assert len(token) >= 32
        with urllib.request.urlopen(doc["url"], timeout=10) as resp:
            assert resp.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(doc["url"].split("?")[0], timeout=10)
        assert refused.value.code == 403
    finally:
        out, err, code = stop(proc)
    assert code == 0 and "warning" not in err


def test_the_text_output_says_where_and_how_to_stop(root):
    proc = start(root, "ui", "--port", "0", "--root", str(root))
    try:
        assert first_line(proc) == f"hpcx ui: serving {root} (read-only) at\n"
        assert first_line(proc).strip().startswith("http://127.0.0.1:")
    finally:
        stop(proc)


def test_another_address_warns_that_the_token_is_all_that_protects_the_runs(root):
    proc = start(root, "--json", "ui", "--port", "0", "--host", "0.0.0.0")
    try:
        doc = json.loads(first_line(proc))
        assert doc["host"] == "0.0.0.0" and doc["url"].startswith("http://127.0.0.1:")
    finally:
        _, err, _ = stop(proc)
    assert "warning: listening on 0.0.0.0" in err and "the token is all that protects them" in err


def test_a_missing_root_and_a_busy_port_are_refused_with_the_fix(root, tmp_path):
    env = _base_env(root)
    missing = subprocess.run(
        [sys.executable, "-m", "hpcx", "ui", "--root", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=REPO,
    )
    assert missing.returncode == 2
    assert (
        f"runs root {tmp_path / 'nope'} is not a directory" in missing.stderr
        and "--root DIR" in missing.stderr
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = subprocess.run(
            [sys.executable, "-m", "hpcx", "ui", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            cwd=REPO,
        )
    assert taken.returncode == 2
    assert (
        f"cannot listen on 127.0.0.1:{port}" in taken.stderr
        and "choose another --port (0 picks a free one)" in taken.stderr
    )


def test_help_names_the_tunnel_and_the_token():
    out = subprocess.run(
        [sys.executable, "-m", "hpcx", "ui", "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
    ).stdout
    assert "ssh -L" in out and "token" in out and "read-only" in out
