"""The checkpoints on disk: the names of step directories and files, the manifest, ``latest``, and the checks that
decide which step a load may trust (the fallback past torn steps). The layout is described in
:mod:`hpcx.runtime.checkpoint`. torch is imported only to read a file (and to name its version)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import hpcx
from hpcx.rundir.layout import (
    CHECKPOINT_LATEST,
    CHECKPOINT_LEFTOVER,
    CHECKPOINT_MANIFEST,
    CHECKPOINT_REPLICATED,
    CHECKPOINT_STEP,
    checkpoint_rank_file,
    checkpoint_step_name,
)

FORMAT = "hpcx-checkpoint"
FORMAT_VERSION = 1
# The names are hpcx.rundir.layout's; hpcx.runtime.checkpoint and its importers know them by these.
MANIFEST = CHECKPOINT_MANIFEST
REPLICATED = CHECKPOINT_REPLICATED
LATEST = CHECKPOINT_LATEST
STEP_RE = CHECKPOINT_STEP
LEFTOVER_RE = CHECKPOINT_LEFTOVER
step_dir_name = checkpoint_step_name
rank_file_name = checkpoint_rank_file


def manifest_doc(step: int, world_size: int, files: dict[str, Any], *, background: bool) -> dict[str, Any]:
    """The manifest of a step: what it holds (every file's sha256 and size) and what wrote it."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": step,
        "world_size": world_size,
        "files": files,
        "hpcx_version": hpcx.__version__,
        "torch_version": torch_version(),
        "background": background,
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def load_plan(root: Path) -> dict[str, Any]:
    """Which step directories a load tries, newest first, and what else it saw (leftovers, a bad ``latest``)."""
    if not root.is_dir():
        return {"candidates": [], "leftovers": [], "notes": []}
    steps = sorted(complete_steps(root), reverse=True)
    leftovers = sorted(e.name for e in root.iterdir() if LEFTOVER_RE.match(e.name) and ".tmp-" in e.name)
    notes: list[str] = []
    latest, why = read_latest(root)
    if latest is None:
        if why and steps:
            notes.append(f"{LATEST} {why}; trying the newest step directory, {step_dir_name(steps[0])}")
    else:
        newer = [s for s in steps if s > latest]
        if newer:
            notes.append(
                f"ignoring step {', '.join(map(str, newer))}: newer than {LATEST} (step {latest}), so its save "
                "did not finish"
            )
        steps = [s for s in steps if s <= latest]
    return {"candidates": [step_dir_name(s) for s in steps], "leftovers": leftovers, "notes": notes}


def verify(step_dir: Path, rank: int, world_size: int) -> tuple[str, Any, dict[str, bytes]]:
    """("ok", None, bytes of ``rank``'s files) or ("torn", why, {}) or ("world_size", n, {})."""
    manifest, why = read_manifest(step_dir)
    if manifest is None:
        return "torn", why, {}
    if manifest.get("world_size") != world_size:
        return "world_size", manifest.get("world_size"), {}
    files = manifest["files"]
    mine = [REPLICATED, rank_file_name(rank)]
    for name in mine:
        if name not in files:
            return "torn", f"{name} is not in the manifest", {}
    if rank == 0:  # a cheap look at the other ranks' files too, for a message that names them
        for name, entry in files.items():
            size = size_of(step_dir / name)
            if name not in mine and size != entry.get("size_bytes"):
                return "torn", size_problem(name, size, entry), {}
    blobs = {}
    for name in mine:
        data, why = read_verified(step_dir, name, files[name])
        if data is None:
            return "torn", why, {}
        blobs[name] = data
    return "ok", None, blobs


def read_manifest(step_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        doc = json.loads((step_dir / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{MANIFEST} missing"
    except (OSError, ValueError) as exc:
        return None, f"{MANIFEST} unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
        return None, f"{MANIFEST} is not an hpcx checkpoint manifest"
    return doc, None


def read_verified(step_dir: Path, name: str, entry: dict[str, Any]) -> tuple[bytes | None, str | None]:
    """The bytes of ``step_dir/name`` if they match the manifest's size and sha256, else why not."""
    try:
        data = (step_dir / name).read_bytes()
    except FileNotFoundError:
        return None, f"{name} missing"
    except OSError as exc:
        return None, f"{name} unreadable ({exc})"
    if len(data) != entry.get("size_bytes"):
        return None, size_problem(name, len(data), entry)
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        return None, f"{name} does not match its sha256 in the manifest"
    return data, None


def size_problem(name: str, size: int | None, entry: dict[str, Any]) -> str:
    if size is None:
        return f"{name} missing"
    return f"{name} is {size} bytes, the manifest says {entry.get('size_bytes')}"


def torch_load(data: bytes, *, map_location: Any, weights_only: bool) -> Any:
    import torch

    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=weights_only)


def rename_for_deletion(path: Path) -> Path:
    doomed = path.with_name(f"{path.name}.del-{os.urandom(4).hex()}")
    os.rename(path, doomed)
    return doomed


def remove_all(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def step_of(name: str) -> int:
    return int(name.split("-", 1)[1].split(".", 1)[0])


def complete_steps(root: Path) -> list[int]:
    """Steps with a committed (renamed into place) directory under ``root``."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    return [int(m.group(1)) for e in entries if (m := STEP_RE.match(e.name)) and e.is_dir()]


def read_latest(root: Path) -> tuple[int | None, str | None]:
    """The step ``latest`` names, or None and why not (None, None: there is no ``latest`` and no step)."""
    try:
        text = (root / LATEST).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None, "is missing"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"is unreadable ({exc})"
    m = STEP_RE.match(text)
    if not m:
        return None, f"is damaged (it holds {text[:40]!r})"
    if not (root / text).is_dir():
        return None, f"names {text}, which does not exist"
    return int(m.group(1)), None


def size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)
