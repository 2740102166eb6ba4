"""A study's state as files under its ``trials/`` folder, with no server, no database and no lock file.

Every file but one kind is created once and never changed: written in full to a temporary name, then
``os.link``-ed to its final name, which fails when the name exists (O_EXCL's guarantee, atomic on NFS and
Lustre too), so a reader never sees half a file and two workers can never both create the same one:
- ``trial-NNNNNN.json``: a trial: its parameters, the worker that runs it, what the sampler saw when it asked;
- ``trial-NNNNNN.rung-RRRRRR.json``: its value(s) at rung RRRRRR (a step count), once;
- ``trial-NNNNNN.end.json``: how it ended: complete (with its final value(s)), stopped (by the rule, at a rung),
  failed, or lost (its worker stopped beating); whoever creates it decides, exactly once.
The exception is ``trial-NNNNNN.alive.json``, the worker's heartbeat, replaced atomically every few seconds.

One ``scandir`` of ``trials/`` gives the whole state: the files that are never changed are read once per process
and kept (:class:`TrialFiles` remembers them), a heartbeat is only ``stat``-ed. Trial numbers below the budget
are the study's configurations, claimed densely (the lowest free number); a lost trial is tried again under a
number from the budget on (its ``retry_of`` names the lost one), claimed by the one worker that marked it lost.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcx.fsutil import fsync_dir
from hpcx.rundir.layout import TRIALS_DIR, parse_trial_file, trial_file

END_STATES = ("complete", "stopped", "failed", "lost")
MAX_CLAIM_TRIES = 100_000  # each failed try means another worker took that number: the study moved on


@dataclass
class Trial:
    """One trial as the files say: its own record, its values per rung, its end, its worker's last beat."""

    number: int
    doc: dict[str, Any] = field(default_factory=dict)
    rungs: dict[int, Any] = field(default_factory=dict)
    rung_at: dict[int, float] = field(default_factory=dict)  # when each rung's value was recorded
    end: dict[str, Any] | None = None
    alive_at: float | None = None

    @property
    def state(self) -> str:
        return str(self.end["state"]) if self.end else "running"

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.doc.get("params") or {})


def publish(path: Path, doc: dict[str, Any]) -> bool:
    """Create ``path`` holding ``doc`` (JSON) if no file has that name: True when this call created it, False
    when it was there already. The file appears whole or not at all; its mode follows the umask."""
    data = (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        fsync_dir(path.parent)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class TrialFiles:
    """The ``trials/`` folder of one study, read by listing (files never rewritten are read once)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / TRIALS_DIR
        self._kept: dict[str, dict[str, Any]] = {}  # file name -> its record (created once, never changed)

    def create_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def trials(self) -> dict[int, Trial]:
        """Every trial, by number, from one listing of ``trials/``."""
        found: dict[int, Trial] = {}
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return found
        for entry in entries:
            parsed = parse_trial_file(entry.name)
            if parsed is not None:
                self._add(found, entry, *parsed)
        return dict(sorted(found.items()))

    def _add(
        self,
        found: dict[int, Trial],
        entry: os.DirEntry[str],
        number: int,
        rung: int | None,
        part: str | None,
    ) -> None:
        trial = found.setdefault(number, Trial(number))
        if part == "alive":
            try:
                trial.alive_at = entry.stat().st_mtime
            except OSError:
                pass
            return
        doc = self._kept.get(entry.name)
        if doc is None:
            doc = _read(Path(entry.path))
            if doc is None:
                return  # unreadable: left for the next listing
            self._kept[entry.name] = doc
        if rung is not None:
            trial.rungs[rung] = doc.get("value")
            trial.rung_at[rung] = float(doc.get("t") or 0.0)
        elif part == "end":
            trial.end = doc
        else:
            trial.doc = doc

    def create(self, number: int, doc: dict[str, Any]) -> bool:
        """Create trial ``number`` holding ``doc``; False when another worker created it first."""
        self.create_dir()
        return publish(trial_file(self.run_dir, number), doc)

    def claim(self, doc: dict[str, Any], budget: int, *, retry_of: int | None = None) -> int | None:
        """Create the next trial with ``doc`` (its params, worker, ...): the lowest free number below
        ``budget`` for a new configuration, or from ``budget`` on for a retry of lost trial ``retry_of``. None
        when the budget is spent (a new configuration only)."""
        self.create_dir()
        taken = set(self.trials())
        number = budget if retry_of is not None else 0
        for _ in range(MAX_CLAIM_TRIES):
            while number in taken:
                number += 1
            if retry_of is None and number >= budget:
                return None
            record = {**doc, "number": number, "retry_of": retry_of, "created_at": time.time()}
            if publish(trial_file(self.run_dir, number), record):
                return number
            taken.add(number)
        raise RuntimeError(f"no free trial number after {MAX_CLAIM_TRIES} tries under {self.dir}")

    def record_rung(self, number: int, rung: int, value: Any) -> bool:
        """Trial ``number``'s value(s) at ``rung``; False when it was recorded already (the first stays)."""
        return publish(
            trial_file(self.run_dir, number, rung=rung),
            {"trial": number, "rung": rung, "value": value, "t": time.time()},
        )

    def finish(self, number: int, state: str, **fields: Any) -> bool:
        """End trial ``number`` as ``state`` (END_STATES); False when it had ended already (the first end
        stays: of two workers deciding, one wins)."""
        if state not in END_STATES:
            raise ValueError(f"trial end state {state!r} is not one of {', '.join(END_STATES)}")
        doc = {"trial": number, "state": state, "ended_at": time.time(), **fields}
        return publish(trial_file(self.run_dir, number, part="end"), doc)

    def beat(self, number: int) -> None:
        """The worker running trial ``number`` is alive (its heartbeat file's modification time)."""
        path = trial_file(self.run_dir, number, part="alive")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({"trial": number, "pid": os.getpid(), "t": time.time()}) + "\n", encoding="utf-8"
        )
        os.replace(tmp, path)

    def mark_lost(self, bound_s: float, now: float | None = None, limit: int | None = None) -> list[Trial]:
        """Running trials whose worker has not beaten for ``bound_s`` seconds (nor created the trial in that
        time), each ended as lost by this call, at most ``limit`` of them; only those this call ended are
        returned (another worker may have marked some first)."""
        now = time.time() if now is None else now
        marked = []
        for trial in self.trials().values():
            if trial.end is not None or not trial.doc:
                continue
            last = max(trial.alive_at or 0.0, float(trial.doc.get("created_at") or 0.0))
            if now - last > bound_s and self.finish(trial.number, "lost", silent_s=round(now - last, 1)):
                marked.append(trial)
                if limit is not None and len(marked) >= limit:
                    break
        return marked


def rung_values(trials: Iterable[Trial]) -> dict[int, list[tuple[int, Any]]]:
    """Per rung (ascending), the (trial, value) pairs recorded there in the order they were recorded (the
    record's time, then the trial number)."""
    arrivals = sorted(
        (rung, trial.rung_at.get(rung, 0.0), trial.number, value)
        for trial in trials
        for rung, value in trial.rungs.items()
    )
    out: dict[int, list[tuple[int, Any]]] = {}
    for rung, _, number, value in arrivals:
        out.setdefault(rung, []).append((number, value))
    return out
