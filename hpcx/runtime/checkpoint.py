"""Atomic, verified, rotated checkpoints: one directory per step, every rank's RNG, optional background save.

Layout under ``root`` (e.g. ``<run dir>/checkpoints``)::

    step-00000100/              one committed step
      replicated.pt             state every rank holds alike (model, optimizer, ...), written by rank 0
      rank-00000.pt ...         one per rank: its RNG state and its own per-rank state
      manifest.json             step, world size, sha256 and size of every file, hpcx version, time
    step-00000200/
    latest                      "step-00000200": the commit point, replaced last (a text file, not a symlink)
    step-00000300.tmp-k2j9x/    a save in progress, or one that died: ignored by load, removed by the next save

A save commits in this order: every rank writes its files (temp name, fsync, rename), all ranks agree, rank 0
writes the manifest, renames the directory into place, fsyncs the root, replaces ``latest``, then deletes steps
beyond ``keep``. A crash at any point leaves the previous step loadable.

Background saves copy the state to the CPU at once and write it in a thread that uses no MPI (a collective in
a second thread could interleave with the training loop's own). The ranks agree that the files are complete,
and rank 0 commits the step, at the next :meth:`Checkpointer.save` or :meth:`Checkpointer.wait` in the main
thread; a job that ends without either leaves the step uncommitted (and so ignored).

The pieces live beside this module: ``checkpoint_manifest`` (names, the manifest, ``latest``, verification and
the fallback past torn steps), ``checkpoint_files`` (writing one file, hashed as it is written) and
``checkpoint_stage`` (the host copy a background save writes). torch is imported inside the functions that need
it; importing this module imports neither torch nor MPI.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, NamedTuple

from hpcx.errors import RuntimeFailure, UsageError
from hpcx.fsutil import atomic_write, atomic_write_json, fsync_dir
from hpcx.runtime.checkpoint_files import (
    PARALLEL_HASH_MIN_BYTES,
    WRITE_BUFFER_BYTES,
    WRITEBACK_CHUNK_BYTES,
    write_all,
)
from hpcx.runtime.checkpoint_manifest import (
    FORMAT,
    FORMAT_VERSION,
    LATEST,
    LEFTOVER_RE,
    MANIFEST,
    REPLICATED,
    STEP_RE,
    complete_steps,
    load_plan,
    manifest_doc,
    rank_file_name,
    remove_all,
    rename_for_deletion,
    step_dir_name,
    step_of,
    torch_load,
    verify,
)
from hpcx.runtime.checkpoint_stage import Stager
from hpcx.runtime.collective import Collective
from hpcx.runtime.seeds import capture_rng_state, restore_rng_state

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LATEST",
    "LEFTOVER_RE",
    "MANIFEST",
    "PARALLEL_HASH_MIN_BYTES",
    "REPLICATED",
    "STEP_RE",
    "WRITEBACK_CHUNK_BYTES",
    "WRITE_BUFFER_BYTES",
    "Checkpointer",
    "Loaded",
    "rank_file_name",
    "step_dir_name",
]

log = logging.getLogger("hpcx.checkpoint")


class Loaded(NamedTuple):
    """What :meth:`Checkpointer.load` returns: the step, the replicated state and this rank's own state."""

    step: int
    state: Any
    per_rank: Any


def _ranks_of(ctx: Any) -> Collective:
    """The ranks of ``ctx`` that share the checkpoints: over ctx.comm, or this process alone."""
    ranks = Collective.of_context(ctx)
    if not ranks.connected and ranks.size > 1:
        raise UsageError(
            f"a Checkpointer for {ranks.size} ranks needs the MPI communicator, but ctx.comm is None",
            hint="pass the Context that hpcx.runtime.init() returned",
        )
    return ranks


class _Pending:
    """A background save whose files are being written: committed at the next save() or wait()."""

    def __init__(self, step: int, tmp: Path, jobs: list[tuple[str, Any]]) -> None:
        self.step, self.tmp = step, tmp
        self.outcome: tuple[dict[str, Any], str | None] = ({}, "the background writer did not finish")
        self.thread = threading.Thread(target=self._run, args=(jobs,), name=f"hpcx-ckpt-{step}", daemon=False)

    def _run(self, jobs: list[tuple[str, Any]]) -> None:
        # Hashing inline: a background save is not in a hurry, and a second busy thread would compete with
        # training for the cores.
        self.outcome = write_all(self.tmp, jobs, parallel_hash=False)


class Checkpointer:
    """Saves and loads step checkpoints under ``root``, shared by all ranks of ``ctx`` (or one process).

    ``ctx`` is what :func:`hpcx.runtime.init` returned (its ``comm`` coordinates the ranks) or None for a single
    process. ``keep`` is how many committed steps rotation leaves (None: all). save(), wait() and load() are
    collective: every rank calls them, in the same order.
    """

    def __init__(self, root: str | os.PathLike[str], ctx: Any = None, keep: int | None = 3) -> None:
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise UsageError(f"keep must be a positive number of steps or None, not {keep!r}")
        self.root = Path(root)
        self.keep = keep
        self._ranks = _ranks_of(ctx)
        self._pending: _Pending | None = None
        self._deleter: threading.Thread | None = None  # rank 0: removes rotated steps off the critical path
        self._deleting: list[Path] = []
        self._stager: Stager | None = None

    @property
    def rank(self) -> int:
        return self._ranks.rank

    @property
    def world_size(self) -> int:
        return self._ranks.size

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        """Commit a pending background save; after an exception only finish writing it (the other ranks may be
        gone, so no collective), which leaves the step uncommitted."""
        if exc_type is None:
            self.wait()
            return
        if self._pending is not None:
            self._pending.thread.join()
            self._pending = None
        self._join_deleter()

    # ------------------------------------------------------------ saving

    def save(self, step: int, state: Any, *, per_rank: Any = None, background: bool = False) -> Path:
        """Save ``step``: ``state`` (replicated: only rank 0's copy is written, other ranks may pass None) and
        ``per_rank`` (every rank's own, together with its RNG state, captured here). Returns the step directory.
        Steps should grow: rotation keeps the ``keep`` highest.

        Synchronous saves return once the step is committed on disk and ``latest`` names it. With
        ``background=True`` the state is copied to the CPU now, written in a thread, and committed at the next
        save() or wait(); a previous background save is finished first. Raises RuntimeFailure (on every
        rank) if any rank could not write its files; the previous step stays loadable.
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise UsageError(f"step must be a non-negative integer, not {step!r}")
        self._join_deleter()
        self._finish_pending()  # may start deleting rotated steps: no need to wait for that here
        tmp = self._begin(step)
        jobs = [(rank_file_name(self.rank), {"rng": capture_rng_state(), "state": per_rank})]
        if self.rank == 0:
            jobs.insert(0, (REPLICATED, state))
        if background:
            self._stager = self._stager or Stager()
            self._pending = _Pending(step, tmp, self._stager.copy(jobs))
            self._pending.thread.start()
        else:
            self._finish(step, tmp, write_all(tmp, jobs), background=False)
        return self.root / step_dir_name(step)

    def wait(self) -> Path | None:
        """Finish a background save: wait for this rank's writer, agree with the other ranks, commit the step.
        Then wait until the steps rotation dropped are deleted (rank 0 deletes them in a thread).

        Returns the committed directory (None when no background save was pending). Collective.
        """
        committed = self._finish_pending()
        self._join_deleter()
        return committed

    def _finish_pending(self) -> Path | None:
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        pending.thread.join()
        return self._finish(pending.step, pending.tmp, pending.outcome, background=True)

    def _join_deleter(self) -> None:
        if self._deleter is not None:
            self._deleter.join()
            self._deleter, self._deleting = None, []

    def _begin(self, step: int) -> Path:
        """Rank 0 clears leftovers of failed saves and makes the step's temp directory; all ranks learn its name."""
        name: str | OSError | None = None  # rank 0's directory, or why it could not make one
        if self.rank == 0:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                self._remove_leftovers()
                name = tempfile.mkdtemp(prefix=f"{step_dir_name(step)}.tmp-", dir=self.root)
            except OSError as exc:
                name = exc
        name = self._ranks.bcast(name)
        if isinstance(name, BaseException):
            raise RuntimeFailure(
                f"cannot create a checkpoint directory in {self.root}: {name}",
                hint="check that the path exists on every node, is writable and has space",
            )
        return Path(name)

    def _remove_leftovers(self) -> None:
        for entry in self.root.iterdir():
            if LEFTOVER_RE.match(entry.name) and entry.is_dir() and entry not in self._deleting:
                log.info("removing %s, left over by a save or a rotation that did not finish", entry)
                shutil.rmtree(entry, ignore_errors=True)

    def _finish(
        self, step: int, tmp: Path, outcome: tuple[dict[str, Any], str | None], *, background: bool
    ) -> Path:
        """Collective: every rank reports its files (the barrier); rank 0 commits; every rank learns the result."""
        reports = self._ranks.allgather(outcome)
        failed = [f"rank {r}: {err}" for r, (_, err) in enumerate(reports) if err]
        if failed:
            raise RuntimeFailure(
                f"checkpoint step {step} was not saved ({'; '.join(failed)})",
                hint=f"the previous step in {self.root} is intact; {tmp.name} is removed by the next save",
            )
        error = None
        if self.rank == 0:
            files = {name: {**entry} for files, _ in reports for name, entry in files.items()}
            try:
                self._commit(step, tmp, files, background=background)
            except Exception as exc:
                log.debug("committing step %d failed", step, exc_info=True)
                error = f"{type(exc).__name__}: {exc}"
        error = self._ranks.bcast(error)
        if error:
            raise RuntimeFailure(
                f"checkpoint step {step} was written but rank 0 could not commit it: {error}",
                hint=f"the previous step in {self.root} is intact",
            )
        return self.root / step_dir_name(step)

    def _commit(self, step: int, tmp: Path, files: dict[str, Any], *, background: bool) -> None:
        """Rank 0: manifest, directory renamed into place, root fsynced, ``latest`` replaced, rotation."""
        manifest = manifest_doc(step, self.world_size, files, background=background)
        atomic_write_json(tmp / MANIFEST, manifest)  # also fsyncs tmp, covering every rank's renames
        final = self.root / step_dir_name(step)
        doomed = []
        if final.exists():  # the same step saved again (after a resume): the old one goes, atomically
            doomed.append(rename_for_deletion(final))
        os.rename(tmp, final)
        fsync_dir(self.root)
        atomic_write(self.root / LATEST, final.name + "\n")
        doomed += self._rotate(step)
        if doomed:
            # Deleting a big file can take 100 ms or more (extents freed, discards sent); training need not wait.
            # An exit before it ends leaves .del- directories, which load ignores and the next save removes.
            self._join_deleter()
            self._deleting = doomed
            self._deleter = threading.Thread(target=remove_all, args=(doomed,), name="hpcx-ckpt-rotate")
            self._deleter.start()

    def _rotate(self, step: int) -> list[Path]:
        """Rename the oldest committed steps beyond ``keep`` (never ``step``, the one ``latest`` now names) out of
        the way, so a load never sees half a directory; returns their new names, for deletion."""
        if self.keep is None:
            return []
        older = sorted(s for s in complete_steps(self.root) if s < step)
        doomed = []
        for s in older[: max(0, len(older) - (self.keep - 1))]:
            try:
                doomed.append(rename_for_deletion(self.root / step_dir_name(s)))
            except OSError:
                continue
        return doomed

    # ------------------------------------------------------------ loading

    def load(
        self, *, map_location: Any = None, restore: bool = True, weights_only: bool = True
    ) -> Loaded | None:
        """The newest good step: ``Loaded(step, state, per_rank)``, or None when there is none to load.

        Starts from the step ``latest`` names (or the newest complete step directory, if ``latest`` is missing or
        damaged) and verifies the manifest and the sha256 of every file this rank reads. A torn step (file missing
        or changed, no manifest) is logged as a warning naming the step and why, and the previous step is tried.
        ``restore`` puts back this rank's RNG state. ``weights_only`` is passed to torch.load: it reads tensors
        and plain types (state dicts, RNG states); user extras of other types need ``weights_only=False``.
        Raises RuntimeFailure if the checkpoint was written by a different number of ranks, or if steps exist
        but none is good. Collective.
        """
        self.wait()
        plan = self._ranks.bcast(load_plan(self.root) if self.rank == 0 else None)
        torn: list[tuple[int, str]] = []
        found = self._first_good(plan["candidates"], torn, map_location, weights_only)
        self._report(plan, torn, found[0] if found is not None else None)
        if found is not None:
            step, (state, mine) = found
            if restore:
                restore_rng_state(mine["rng"])
            return Loaded(step, state, mine["state"])
        if torn:
            raise RuntimeFailure(
                f"no good checkpoint in {self.root}: " + "; ".join(f"step {s}: {why}" for s, why in torn),
                hint=f"move {self.root} aside to start afresh",
            )
        return None

    def _first_good(
        self, candidates: list[str], torn: list[tuple[int, str]], map_location: Any, weights_only: bool
    ) -> tuple[int, tuple[Any, dict[str, Any]]] | None:
        """The first of ``candidates`` that every rank verified, deserialised; each torn step skipped on the way
        is added to ``torn`` with why. Raises when the steps were written by another number of ranks."""
        for name in candidates:
            step = step_of(name)
            verdict = verify(self.root / name, self.rank, self.world_size)
            verdicts = self._ranks.allgather(verdict[:2])
            mismatch = [v[1] for v in verdicts if v[0] == "world_size"]
            if mismatch:
                raise RuntimeFailure(
                    f"checkpoint step {step} in {self.root} was written by {mismatch[0]} ranks, this run has "
                    f"{self.world_size}",
                    hint=f"resume with {mismatch[0]} ranks: resharding a checkpoint is not supported",
                )
            reasons = list(dict.fromkeys(v[1] for v in verdicts if v[0] == "torn"))
            if reasons:
                torn.append((step, "; ".join(reasons)))
                continue
            return step, self._deserialise(
                step, verdict[2], map_location=map_location, weights_only=weights_only
            )
        return None

    def _deserialise(
        self, step: int, blobs: dict[str, bytes], *, map_location: Any, weights_only: bool
    ) -> tuple[Any, dict[str, Any]]:
        """Unpickle this rank's files; if any rank cannot, every rank raises (none goes on alone)."""
        error, out = None, None
        try:
            out = tuple(
                torch_load(blobs[name], map_location=map_location, weights_only=weights_only)
                for name in (REPLICATED, rank_file_name(self.rank))
            )
        except pickle.UnpicklingError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            error = f"rank {self.rank}: torch.load(weights_only={weights_only}) refused it: {first}"
        except Exception as exc:
            error = f"rank {self.rank}: {type(exc).__name__}: {exc}"
        errors = [e for e in self._ranks.allgather(error) if e]
        if errors:
            raise RuntimeFailure(
                f"checkpoint step {step} in {self.root} passed its sha256 checks but cannot be loaded: {errors[0]}",
                hint="state of types other than tensors and plain Python values needs load(weights_only=False), "
                "for checkpoints you trust",
            )
        return out  # type: ignore[return-value]

    def _report(self, plan: dict[str, Any], torn: list[tuple[int, str]], loaded: int | None) -> None:
        """Rank 0 says what it skipped and why, naming the step it loads instead."""
        if self.rank != 0:
            return
        then = f"loading step {loaded}" if loaded is not None else "no earlier step to load"
        for note in plan["notes"]:
            log.warning("checkpoints in %s: %s", self.root, note)
        for name in plan["leftovers"]:
            step = step_of(name)
            if loaded is None or step > loaded:
                log.warning(
                    "step %d is torn: its save did not finish (%s left over, removed by the next save); %s",
                    step,
                    name,
                    then,
                )
        for step, why in torn:
            log.warning("step %d is torn: %s; %s", step, why, then)
        if loaded is not None:
            log.info("loaded checkpoint step %d from %s", loaded, self.root)
