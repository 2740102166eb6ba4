"""The run index: one summary row per run directory, derived from the directories and rebuilt on demand.

The truth is the run directories. ``<runs root>/.index/index.json`` only caches what reading every
``manifest.json`` and ``job.json`` again would give, plus the last job state seen, so that listing and job-id
lookups read only the runs that are new or changed. It is written only by atomic rename (temp file, fsync,
rename), so a reader sees an old index or a whole new one, never a part; nothing takes a lock, so nothing breaks
on NFS or Lustre, where fcntl/flock locks are unreliable. Submitting never touches it.

Each row keeps the signature (inode, mtime in ns) its run directory had when the run was read. hpcx writes
every file another process reads by creating a temp file and renaming it into place, and both change the mtime
of the directory they happen in: a new or rewritten ``manifest.json`` or ``job.json`` shows as a changed
signature, so the run is read again. The signatures come from the listing of the runs root itself, one stat per
run in directory order: what NFS (READDIRPLUS) and Lustre (statahead) serve in bulk, with no lookup inside the
run directories and, on Lustre, no round trip to the object servers that a regular file's size and mtime need.
See docs/runs.md.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fnmatch
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcx.errors import UsageError
from hpcx.fsutil import atomic_write, read_json
from hpcx.rundir.layout import JOB_FILE, MANIFEST_FILE
from hpcx.runs import job_ids as _job_ids
from hpcx.schedulers.base import ACTIVE_STATES, FINISHED_STATES

INDEX_DIR = ".index"
INDEX_FILE = "index.json"
SCHEMA = "hpcx.run-index/2"
# Timestamps are only as fine as the filesystem keeps them (1 s on some NFS servers, a clock tick on Linux), so
# a directory changed in the same tick just after it was listed keeps its signature. A signature is trusted only
# when its mtime is this much older than the listing, dated by the index file's own mtime (the same clock as the
# directories') less the time the index records between listing and writing.
RACY_NS = 2_000_000_000
STALE_TEMP_S = 3600  # a temp index file this old was left by a killed writer

Row = dict[str, Any]
Signature = list[int]  # [inode, mtime_ns] of the run directory
ROW_FIELDS = frozenset(
    {
        "run_id",
        "name",
        "kind",
        "created",
        "sweep",
        "scheduler",
        "job_id",
        "job_ids",
        "submitted_at",
        "state",
        "finished",
        "state_seen_at",
        "sig",
    }
)


@dataclass
class RunIndex:
    """Rows for every run directory under ``root``, oldest first, as one listing of the root found them."""

    root: Path
    rows: list[Row]
    listed_at: float = field(default_factory=time.monotonic)  # when the runs root was listed

    def save(self) -> bool:
        """Replace the index file by one atomic rename; False when it cannot be written (it is only a cache)."""
        if not self.root.is_dir():
            return False
        listed_s_ago = time.monotonic() - self.listed_at
        doc = {"schema": SCHEMA, "listed_s_before_write": round(listed_s_ago, 3), "runs": self.rows}
        try:
            (self.root / INDEX_DIR).mkdir(exist_ok=True)
            # Compact: the indenting encoder is pure Python and several times slower on thousands of rows.
            atomic_write(index_path(self.root), json.dumps(doc, separators=(",", ":"), default=str) + "\n")
        except OSError:
            return False
        _remove_stale_temp_files(self.root / INDEX_DIR)
        return True


def index_path(root: Path) -> Path:
    return root / INDEX_DIR / INDEX_FILE


def load_index(root: Path) -> dict[str, Row]:
    """The stored rows by run id, as last written; empty when the index is missing or unreadable (never raises).

    The rows may be stale: use ``refresh_index`` for rows that match the directories.
    """
    return _load(root)[0]


def refresh_index(root: Path, *, rebuild: bool = False) -> RunIndex:
    """Every run under ``root`` (oldest first), the index file rewritten when anything changed.

    Lists the runs root, reuses each stored row whose run directory kept its signature, reads only new and
    changed runs and drops the rows of removed ones; ``rebuild`` ignores the stored index. Never fails because
    of the index: a damaged one is rebuilt, one that cannot be written is skipped.

    Concurrent refreshers need no lock. Each derives a complete index from the directories and replaces the file
    by one atomic rename, so the last rename wins. Either result is correct: a run the winner had not seen yet,
    or a row it read before a file changed, has a signature that no longer matches the directory, so the next
    refresh reads it again. A lost race costs a few reads, never a wrong row.
    """
    stored, trusted_before_ns = ({}, 0) if rebuild else _load(root)
    index = RunIndex(root, [])
    reads = 0
    for run_id, sig in _list_runs(root):
        old = stored.get(run_id)
        if old is not None and old["sig"] == sig and sig[1] < trusted_before_ns:
            index.rows.append(old)
        else:
            index.rows.append(_read_row(run_id, root / run_id, sig, old))
            reads += 1
    # Written when anything changed, and always the first time, so every refresh leaves an index behind.
    if rebuild or reads or len(index.rows) != len(stored) or not index_path(root).exists():
        index.save()
    return index


def record_states(rows: Iterable[Row], states: Iterable[Row], now: _dt.datetime | None = None) -> int:
    """Copy job states (rows of ``job_states``) into index ``rows`` with the same run and job id; the count
    that changed. A state is stamped with when it was first seen here; finished states are final."""
    by_run = {s["run_id"]: s for s in states}
    seen = (now or _dt.datetime.now(_dt.timezone.utc)).isoformat(timespec="seconds")
    changed = 0
    for row in rows:
        state = by_run.get(row["run_id"])
        if state is None or str(state.get("job_id")) != row["job_id"] or row["finished"]:
            continue
        if (state["state"], bool(state["finished"])) != (row["state"], row["finished"]):
            row.update(state=state["state"], finished=bool(state["finished"]), state_seen_at=seen)
            changed += 1
    return changed


def _load(root: Path) -> tuple[dict[str, Row], int]:
    """The stored rows by run id, and the mtime before which their signatures can be trusted."""
    for attempt in range(2):
        try:
            with open(index_path(root), encoding="utf-8") as fh:
                doc = json.load(fh)
                written_ns = os.fstat(fh.fileno()).st_mtime_ns
            break
        except OSError as exc:
            # NFS: another node replaced the file while we read it; opening it again gets the new one.
            if exc.errno != errno.ESTALE or attempt:
                return {}, 0
        except ValueError:  # truncated, not JSON, not UTF-8: the next refresh rebuilds it
            return {}, 0
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("runs"), list):
        return {}, 0
    lag_s = doc.get("listed_s_before_write")
    if not isinstance(lag_s, (int, float)) or lag_s < 0:
        return {}, 0
    listed_ns = written_ns - int(lag_s * 1e9)
    return {r["run_id"]: r for r in doc["runs"] if _well_formed(r)}, listed_ns - RACY_NS


def _well_formed(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and ROW_FIELDS <= row.keys()
        and isinstance(row["run_id"], str)
        and isinstance(row["sig"], list)
        and isinstance(row["job_ids"], list)
    )


def _list_runs(root: Path) -> list[tuple[str, Signature]]:
    """(run id, signature) of each run directory ``list_runs`` finds, oldest first."""
    found = []
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                try:
                    st = entry.stat()
                except OSError:  # removed since the listing
                    continue
                found.append((entry.name, [st.st_ino, st.st_mtime_ns]))
    except OSError:  # no runs root yet
        return []
    return sorted(found)


def _read_row(run_id: str, run_dir: Path, sig: Signature, old: Row | None) -> Row:
    """A fresh row from the run's files. The signature was taken before reading, so a file renamed into place
    meanwhile shows as a change next time instead of being missed."""
    manifest, job = _read_doc(run_dir / MANIFEST_FILE), _read_doc(run_dir / JOB_FILE)
    resources, sweep = manifest.get("resources"), manifest.get("sweep")
    row: Row = {
        "run_id": run_id,
        "name": _value(resources.get("name")) if isinstance(resources, dict) else None,
        "kind": _value(manifest.get("kind")),
        "created": manifest.get("created") or _created_from_id(run_id),
        "sweep": sweep.get("id") if isinstance(sweep, dict) else None,
        "scheduler": job.get("scheduler"),
        "job_id": None if job.get("job_id") is None else str(job["job_id"]),
        "job_ids": _job_ids(job),
        "submitted_at": job.get("submitted_at"),
        "state": "UNKNOWN" if job else "UNSUBMITTED",
        "finished": False,
        "state_seen_at": None,
        "sig": sig,
    }
    # The same jobs (a manifest rewritten, a side file added): their known state still holds. A sweep's retry
    # adds a job, which makes a finished sweep active again.
    if job and old is not None and (old["scheduler"], old["job_ids"]) == (row["scheduler"], row["job_ids"]):
        row.update(state=old["state"], finished=bool(old["finished"]), state_seen_at=old["state_seen_at"])
    return row


def _read_doc(path: Path) -> dict[str, Any]:
    try:
        doc = read_json(path)
    except (OSError, ValueError):  # not written yet, removed meanwhile, or damaged: the row shows what it can
        return {}
    return doc if isinstance(doc, dict) else {}


def _value(entry: Any) -> Any:
    return entry.get("value") if isinstance(entry, dict) else None


def _created_from_id(run_id: str) -> str | None:
    """Run ids start with their UTC creation time; used while a run has no manifest yet."""
    try:
        when = _dt.datetime.strptime(run_id[:15], "%Y%m%d-%H%M%S").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return None
    return when.isoformat(timespec="seconds")


def _remove_stale_temp_files(index_dir: Path) -> None:
    for tmp in index_dir.glob(f".{INDEX_FILE}.*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > STALE_TEMP_S:
                tmp.unlink()
        except OSError:
            pass  # another refresher removed it first


# --- filters -------------------------------------------------------------------------------------------------

# Slurm's job states, the two hpcx adds, and two groups: active (not finished) and finished.
JOB_STATES = FINISHED_STATES | ACTIVE_STATES | {"PREEMPTED", "STOPPED", "SIGNALING", "UNKNOWN", "UNSUBMITTED"}
STATE_GROUPS = ("ACTIVE", "FINISHED")
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_AGE_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
WHEN_FORMS = (
    "an ISO date or time (2024-05-01, 2024-05-01T14:30, 2024-05-01T14:30+02:00) or an age (30m, 2h, 3d, 1w)"
)


@dataclass(frozen=True)
class RunFilter:
    """What ``hpcx runs`` keeps: every given condition must hold."""

    name: str | None = None  # substring, or a glob when it has * ? [ (case-insensitive)
    states: frozenset[str] = frozenset()  # upper case; ACTIVE / FINISHED stand for groups
    sweep: str | None = None  # a sweep id or a prefix of one
    since: _dt.datetime | None = None
    until: _dt.datetime | None = None

    def keeps_run(self, row: Row) -> bool:
        """Everything but the state, which may need asking the scheduler first."""
        if self.name is not None and not _name_matches(self.name, row.get("name")):
            return False
        if self.sweep is not None and not str(row.get("sweep") or "").startswith(self.sweep):
            return False
        if self.since is None and self.until is None:
            return True
        created = _parse_created(row.get("created"))
        if created is None:
            return False
        return (self.since is None or created >= self.since) and (self.until is None or created < self.until)

    def keeps_state(self, row: Row) -> bool:
        if not self.states:
            return True
        group = "FINISHED" if row["finished"] else "ACTIVE"
        return row["state"] in self.states or group in self.states


def parse_filter(
    *,
    name: str | None = None,
    states: Sequence[str] = (),
    sweep: str | None = None,
    since: str | None = None,
    until: str | None = None,
    now: _dt.datetime | None = None,
) -> RunFilter:
    """The filter the options ask for; UsageError naming the value and the accepted forms for a bad one."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    wanted = frozenset(s.strip().upper() for s in states)
    unknown = sorted(wanted - JOB_STATES - set(STATE_GROUPS))
    if unknown:
        raise UsageError(
            f"--state {unknown[0].lower()!r} is not a job state",
            hint=f"use active, finished or one of {', '.join(sorted(JOB_STATES))} (any case)",
        )
    return RunFilter(
        name=name or None,
        states=wanted,
        sweep=sweep or None,
        since=parse_when(since, "--since", now) if since else None,
        until=parse_when(until, "--until", now, end_of_day=True) if until else None,
    )


def parse_when(text: str, option: str, now: _dt.datetime, *, end_of_day: bool = False) -> _dt.datetime:
    """An ISO date/time (local time unless it names an offset) or an age before ``now`` such as ``3d``.

    With ``end_of_day`` a bare date means the end of that day: ``--until 2024-05-01`` includes May 1.
    """
    value = text.strip()
    age = _AGE.match(value.lower())
    if age:
        return now - _dt.timedelta(seconds=float(age[1]) * _AGE_S[age[2]])
    try:
        when = _dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is neither a date nor an age", hint=f"use {WHEN_FORMS}"
        ) from None
    if end_of_day and _DATE_ONLY.match(value):
        when += _dt.timedelta(days=1)
    return when if when.tzinfo is not None else when.astimezone()


def newest(rows: Sequence[Row], limit: int) -> list[Row]:
    """The newest ``limit`` rows (all when 0), oldest first."""
    return list(rows[-limit:]) if limit else list(rows)


def _name_matches(pattern: str, name: Any) -> bool:
    if name is None:
        return False
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(str(name).lower(), pattern.lower())
    return pattern.lower() in str(name).lower()


def _parse_created(created: Any) -> _dt.datetime | None:
    try:
        when = _dt.datetime.fromisoformat(str(created))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=_dt.timezone.utc)
