"""Atomic file writes that other processes (and other nodes on NFS/Lustre) can read safely."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never a part.

    Temp file in the same directory, fsync, rename over the target, fsync the directory.
    """
    target = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return target


def atomic_write_json(path: str | os.PathLike[str], doc: Any) -> Path:
    return atomic_write(path, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def fsync_dir(path: str | os.PathLike[str]) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class YamlError(ValueError):
    """A YAML document that does not parse; ``where`` is " at line L, column C" when known."""

    def __init__(self, problem: str, where: str = "") -> None:
        super().__init__(f"{problem}{where}")
        self.problem, self.where = problem, where


def load_yaml(text: str | bytes) -> Any:
    """Parse YAML safely (libyaml's loader when PyYAML has it: about ten times faster); raise YamlError.

    PyYAML is imported here, not at module level: a cached site file needs no YAML at all."""
    import yaml

    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YamlError(str(getattr(exc, "problem", None) or exc), where) from exc


def cache_dir(sub: str = "") -> Path | None:
    """$XDG_CACHE_HOME/hpcx[/sub] or ~/.cache/hpcx[/sub], created on demand; None where it cannot be written."""
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    path = base / "hpcx" / sub if sub else base / "hpcx"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None
