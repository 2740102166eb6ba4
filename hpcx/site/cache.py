"""Validated configuration documents, cached by their exact bytes: the next command skips YAML and validation
(login nodes are slow, and the validator's jsonschema is imported only to validate)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpcx import __version__
from hpcx.fsutil import atomic_write, cache_dir


def validated(raw: bytes, kind: str, parse: Callable[[bytes], Any]) -> Any:
    """The document in ``raw``: ``parse(raw)`` (parse and validate, raising on any problem), or what it returned
    for the same bytes before, under the same hpcx version and validating code. ``kind`` names the entries
    (``site``, ``user``)."""
    path = _cache_path(raw, kind)
    doc = _read(path)
    if doc is None:
        doc = parse(raw)
        _write(path, doc)
    return doc


def _cache_path(raw: bytes, kind: str) -> Path | None:
    """Where the validated form of these exact bytes is cached (per hpcx version: the schema may change)."""
    base = cache_dir()
    if base is None:
        return None
    key = hashlib.sha256(__version__.encode() + b"\0" + _checks_id() + b"\0" + raw).hexdigest()
    return base / f"{kind}-{key}.json"


def _checks_id() -> bytes:
    """The validating code itself: a check added without a version bump must not pass a cached, now-invalid file.
    Read, not imported: importing the validator would import jsonschema, which a cached file must not cost."""
    here = Path(__file__).parent
    return b"".join(
        (here / f"{name}.py").read_bytes() for name in ("schema", "checks", "validator", "config")
    )


def _read(path: Path | None) -> Any:
    try:
        return json.loads(path.read_text()) if path is not None and path.exists() else None
    except (OSError, ValueError):
        return None  # a damaged cache entry is ignored and rewritten


def _write(path: Path | None, doc: Any) -> None:
    """Keep the validated document as JSON; a cache that cannot be written only costs the next command time."""
    if path is not None:
        try:
            atomic_write(path, json.dumps(doc))
        except OSError:
            pass
