"""The only place hpcx starts subprocesses: argv lists, a timeout on every call, errors that keep the output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hpcx.errors import CommandError

DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input_text: str | None = None,
) -> Result:
    """Run ``argv`` to completion within ``timeout_s``.

    Raises CommandError when the program is missing, times out, or (with ``check``) exits non-zero.
    """
    argv = [str(a) for a in argv]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise CommandError(
            argv, None, "", "", why=f"cannot run: {argv[0]} is not installed or not on PATH"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise CommandError(argv, None, out, err, why=f"timed out after {timeout_s:g} s") from exc
    result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr, why=f"exited {proc.returncode}")
    return result


def spawn_detached(
    argv: Sequence[str],
    *,
    stdout_path: str | os.PathLike[str],
    stderr_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> int:
    """Start ``argv`` in its own session, detached from ours, with output to files; return its pid."""
    argv = [str(a) for a in argv]
    with open(stdout_path, "ab") as out, open(stderr_path, "ab") as err:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise CommandError(argv, None, "", "", why=f"cannot run: {argv[0]} not found") from exc
    return proc.pid


def run_passthrough(argv: Sequence[str], *, timeout_s: float) -> int:
    """Run ``argv`` with our terminal (output shown as it comes); return its exit code."""
    argv = [str(a) for a in argv]
    try:
        return subprocess.run(argv, timeout=timeout_s, stdin=subprocess.DEVNULL).returncode
    except FileNotFoundError as exc:
        raise CommandError(argv, None, "", "", why=f"cannot run: {argv[0]} not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, None, "", "", why=f"timed out after {timeout_s:g} s") from exc
