"""One exception tree for hpcx. Each error carries its exit code and shows itself as one line."""

from __future__ import annotations


class HpcxError(Exception):
    """Root of every error hpcx raises on purpose; the CLI prints ``str(err)`` and exits ``exit_code``."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(HpcxError):
    """The request itself is malformed: a bad option, value, or file (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A site or user configuration file is missing, unreadable or invalid (exit 2)."""


class TemplateError(UsageError):
    """A job template is missing or fails to render (exit 2)."""


class RejectedError(HpcxError):
    """A pre-flight check rejected the request before Slurm saw it (exit 3)."""

    exit_code = 3


class SchedulerError(HpcxError):
    """The scheduler failed, timed out, or answered something we cannot read (exit 1)."""


class CommandError(SchedulerError):
    """An external command failed; keeps argv, return code and output for the message."""

    def __init__(
        self, argv: list[str], returncode: int | None, stdout: str, stderr: str, *, why: str
    ) -> None:
        detail = (stderr or stdout).strip().splitlines()
        tail = detail[-1] if detail else ""
        super().__init__(f"`{' '.join(argv)}` {why}" + (f": {tail}" if tail else ""))
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class RunNotFoundError(UsageError):
    """No run directory matches the given run id, prefix or job id (exit 2)."""


class RuntimeFailure(HpcxError):
    """Something failed inside the job: bootstrap, communication, I/O (exit 1)."""
