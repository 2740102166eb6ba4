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

torch is imported inside the functions that need it; importing this module imports neither torch nor MPI.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import hashlib
import io
import json
import logging
import os
import pickle
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import hpcx
from hpcx.errors import RuntimeFailure, UsageError
from hpcx.fsutil import atomic_write, atomic_write_json, fsync_dir
from hpcx.runtime.collective import Collective
from hpcx.runtime.seeds import capture_rng_state, restore_rng_state

log = logging.getLogger("hpcx.checkpoint")

FORMAT = "hpcx-checkpoint"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REPLICATED = "replicated.pt"
LATEST = "latest"
STEP_RE = re.compile(r"^step-(\d{8,})$")
LEFTOVER_RE = re.compile(r"^step-(\d{8,})\.(tmp|del)-")
WRITE_BUFFER_BYTES = 8 << 20  # small pickle records are gathered into big writes; tensors go straight through
PARALLEL_HASH_MIN_BYTES = 1 << 20  # below this, hashing in another thread costs more than it saves
WRITEBACK_CHUNK_BYTES = 16 << 20  # writeback of new pages is started every 16 MiB (see _HashingWriter)


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def rank_file_name(rank: int) -> str:
    return f"rank-{rank:05d}.pt"


class Loaded(NamedTuple):
    """What :meth:`Checkpointer.load` returns: the step, the replicated state and this rank's own state."""

    step: int
    state: Any
    per_rank: Any


# ---------------------------------------------------------------- ranks


def _ranks_of(ctx: Any) -> Collective:
    """The ranks of ``ctx`` that share the checkpoints: over ctx.comm, or this process alone."""
    ranks = Collective.of_context(ctx)
    if not ranks.connected and ranks.size > 1:
        raise UsageError(
            f"a Checkpointer for {ranks.size} ranks needs the MPI communicator, but ctx.comm is None",
            hint="pass the Context that hpcx.runtime.init() returned",
        )
    return ranks


# ---------------------------------------------------------------- writing one file

_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


def _hasher() -> ThreadPoolExecutor:
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(1, thread_name_prefix="hpcx-ckpt-hash")
        return _hash_pool


class _HashingWriter:
    """The file object torch.save writes to: it hashes every byte while writing it, so nothing is read back.

    With ``parallel_hash`` a large write (a tensor's storage) is hashed in a second thread while this one writes
    it; both release the GIL, so with a spare core the hash costs (almost) no time. write() returns only when
    both are done with the buffer: torch may free it afterwards (the CPU copy of a GPU storage).

    Every WRITEBACK_CHUNK_BYTES it asks the kernel to start writing the new pages to disk
    (``posix_fadvise(DONTNEED)`` starts writeback of dirty pages on Linux), so the disk works while torch is
    still serialising and the final fsync waits only for the tail, instead of for the whole file.
    """

    def __init__(self, fh: io.BufferedWriter, *, parallel_hash: bool = True) -> None:
        self._fh = fh
        self._parallel_hash = parallel_hash
        self._sha = hashlib.sha256()
        self.size_bytes = 0
        self.error: BaseException | None = None
        self._kicked = 0  # bytes up to which writeback has been started

    def write(self, data: Any) -> int:
        try:
            return self._write(data)
        except BaseException as exc:
            # torch.save goes on to write the zip's end, which fails with a message hiding this one.
            self.error = self.error or exc
            raise

    def _write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        hashed = None
        if self._parallel_hash and view.nbytes >= PARALLEL_HASH_MIN_BYTES:
            hashed = _hasher().submit(self._sha.update, view)
        else:
            self._sha.update(view)
        try:
            for start in range(0, view.nbytes, WRITEBACK_CHUNK_BYTES):
                part = view[start : start + WRITEBACK_CHUNK_BYTES]
                self._fh.write(part)
                self.size_bytes += part.nbytes
                self._start_writeback()
        finally:
            if hashed is not None:
                hashed.result()
        return view.nbytes

    def _start_writeback(self) -> None:
        if self.size_bytes - self._kicked < WRITEBACK_CHUNK_BYTES or not hasattr(os, "posix_fadvise"):
            return
        self._fh.flush()
        try:
            os.posix_fadvise(
                self._fh.fileno(), self._kicked, self.size_bytes - self._kicked, os.POSIX_FADV_DONTNEED
            )
        except OSError:
            pass  # only a hint: the fsync at the end writes whatever is left
        self._kicked = self.size_bytes

    def flush(self) -> None:
        self._fh.flush()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


_crc32_lock = threading.Lock()


@contextlib.contextmanager
def _without_zip_crc32(torch: Any) -> Iterator[None]:
    """torch.save without its CRC-32 of every zip record: the sha256 in the manifest already covers every byte,
    and the CRC costs about 0.4 s of CPU per GB. torch has only a process-wide switch for it, so a torch.save
    another thread runs meanwhile also skips its CRC (torch.load does not need it)."""
    switch = getattr(torch.serialization, "set_crc32_options", None)
    if switch is None:  # torch < 2.6: always computes it
        yield
        return
    with _crc32_lock:
        before = torch.serialization.get_crc32_options()
        switch(False)
        try:
            yield
        finally:
            switch(before)


def _write_file(directory: Path, name: str, obj: Any, *, parallel_hash: bool = True) -> dict[str, Any]:
    """torch.save ``obj`` to ``directory/name`` via a temp name, fsynced; returns its sha256 and size."""
    import torch

    tmp = directory / f".{name}.tmp"
    writer = None
    try:
        with open(tmp, "wb", buffering=WRITE_BUFFER_BYTES) as fh:
            writer = _HashingWriter(fh, parallel_hash=parallel_hash)
            with _without_zip_crc32(torch):
                torch.save(obj, writer)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / name)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if writer is not None and writer.error is not None and writer.error is not exc:
            raise writer.error from exc
        raise
    return {"sha256": writer.hexdigest(), "size_bytes": writer.size_bytes}


def _write_all(
    directory: Path, jobs: list[tuple[str, Any]], *, parallel_hash: bool = True
) -> tuple[dict[str, Any], str | None]:
    """Write this rank's files; returns their entries for the manifest, and the error if one failed."""
    done: dict[str, Any] = {}
    for name, obj in jobs:
        try:
            done[name] = _write_file(directory, name, obj, parallel_hash=parallel_hash)
        except Exception as exc:
            log.debug("writing %s failed", directory / name, exc_info=True)
            return done, f"writing {name} failed: {type(exc).__name__}: {exc}"
    return done, None


# ---------------------------------------------------------------- copying state for a background save


class _Stager:
    """Copies the state of a background save to host memory, into buffers kept from one save to the next.

    Writing into memory that is already mapped is about three times faster than allocating a fresh copy (no page
    faults), and GPU tensors go to pinned buffers with one synchronisation at the end. The price is a host copy
    of the saved state kept between background saves. Storages are copied whole, with each tensor's offset and
    strides, so views and shared storages stay shared and torch.save writes the same bytes as for the original.
    """

    def __init__(self) -> None:
        self._buffers: list[Any] = []  # untyped storages, in the order the last copy used them
        self._used = 0
        self._memo: dict[Any, Any] = {}
        self._from_cuda = False

    def copy(self, obj: Any) -> Any:
        """A copy of ``obj`` the training loop cannot change any more: tensors copied to the CPU, containers
        rebuilt (keeping their type and attributes, such as ``state_dict()._metadata``), the rest deep-copied.
        Only call it once the previous copy has been written: it reuses that copy's buffers."""
        import torch

        self._used, self._memo, self._from_cuda = 0, {}, False
        out = self._copy(obj)
        if self._from_cuda:
            torch.cuda.synchronize()
        del self._buffers[self._used :]
        self._memo = {}
        return out

    def _copy(self, obj: Any) -> Any:
        import torch

        if isinstance(obj, torch.Tensor):
            return self._copy_tensor(obj)
        if isinstance(obj, dict):
            out = copy.copy(obj)
            for key, value in obj.items():
                out[key] = self._copy(value)
            return out
        if type(obj) in (list, tuple):
            return type(obj)(self._copy(v) for v in obj)
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*(self._copy(v) for v in obj))
        return copy.deepcopy(obj)

    def _copy_tensor(self, t: Any) -> Any:
        import torch

        t = t.detach()
        if t.layout != torch.strided or t.is_quantized or type(t) is not torch.Tensor:
            return t.to("cpu", copy=True)
        storage = t.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes(), str(storage.device))
        staged = self._memo.get(key)
        if staged is None:
            on_gpu = storage.device.type == "cuda"
            staged = self._memo[key] = self._buffer(storage.nbytes(), pinned=on_gpu)
            as_bytes = torch.empty(0, dtype=torch.uint8)
            source = torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage)
            as_bytes.set_(staged).copy_(source, non_blocking=on_gpu)
            self._from_cuda = self._from_cuda or on_gpu
        out = torch.empty(0, dtype=t.dtype)
        out.set_(staged, t.storage_offset(), t.size(), t.stride())
        return out

    def _buffer(self, nbytes: int, *, pinned: bool) -> Any:
        import torch

        i, self._used = self._used, self._used + 1
        if (
            i < len(self._buffers)
            and self._buffers[i].nbytes() == nbytes
            and self._buffers[i].is_pinned() == pinned
        ):
            return self._buffers[i]
        buffer = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned).untyped_storage()
        if i < len(self._buffers):
            self._buffers[i] = buffer
        else:
            self._buffers.append(buffer)
        return buffer


# ---------------------------------------------------------------- verifying and reading


def _read_manifest(step_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        doc = json.loads((step_dir / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{MANIFEST} missing"
    except (OSError, ValueError) as exc:
        return None, f"{MANIFEST} unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
        return None, f"{MANIFEST} is not an hpcx checkpoint manifest"
    return doc, None


def _read_verified(step_dir: Path, name: str, entry: dict[str, Any]) -> tuple[bytes | None, str | None]:
    """The bytes of ``step_dir/name`` if they match the manifest's size and sha256, else why not."""
    try:
        data = (step_dir / name).read_bytes()
    except FileNotFoundError:
        return None, f"{name} missing"
    except OSError as exc:
        return None, f"{name} unreadable ({exc})"
    if len(data) != entry.get("size_bytes"):
        return None, _size_problem(name, len(data), entry)
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        return None, f"{name} does not match its sha256 in the manifest"
    return data, None


def _size_problem(name: str, size: int | None, entry: dict[str, Any]) -> str:
    if size is None:
        return f"{name} missing"
    return f"{name} is {size} bytes, the manifest says {entry.get('size_bytes')}"


def _torch_load(data: bytes, *, map_location: Any, weights_only: bool) -> Any:
    import torch

    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=weights_only)


# ---------------------------------------------------------------- the checkpointer


class _Pending:
    """A background save whose files are being written: committed at the next save() or wait()."""

    def __init__(self, step: int, tmp: Path, jobs: list[tuple[str, Any]]) -> None:
        self.step, self.tmp = step, tmp
        self.outcome: tuple[dict[str, Any], str | None] = ({}, "the background writer did not finish")
        self.thread = threading.Thread(target=self._run, args=(jobs,), name=f"hpcx-ckpt-{step}", daemon=False)

    def _run(self, jobs: list[tuple[str, Any]]) -> None:
        # Hashing inline: a background save is not in a hurry, and a second busy thread would compete with
        # training for the cores.
        self.outcome = _write_all(self.tmp, jobs, parallel_hash=False)


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
        self._group = _ranks_of(ctx)
        self._pending: _Pending | None = None
        self._deleter: threading.Thread | None = None  # rank 0: removes rotated steps off the critical path
        self._deleting: list[Path] = []
        self._stager: _Stager | None = None

    @property
    def rank(self) -> int:
        return self._group.rank

    @property
    def world_size(self) -> int:
        return self._group.size

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

    def save(
        self,
        step: int,
        state: Any,
        *,
        per_rank: Any = None,
        background: bool = False,
    ) -> Path:
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
            self._stager = self._stager or _Stager()
            self._pending = _Pending(step, tmp, self._stager.copy(jobs))
            self._pending.thread.start()
        else:
            self._finish(step, tmp, _write_all(tmp, jobs), background=False)
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
        name = None
        if self.rank == 0:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                self._remove_leftovers()
                name = tempfile.mkdtemp(prefix=f"{step_dir_name(step)}.tmp-", dir=self.root)
            except OSError as exc:
                name = exc
        name = self._group.bcast(name)
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
        reports = self._group.allgather(outcome)
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
        error = self._group.bcast(error)
        if error:
            raise RuntimeFailure(
                f"checkpoint step {step} was written but rank 0 could not commit it: {error}",
                hint=f"the previous step in {self.root} is intact",
            )
        return self.root / step_dir_name(step)

    def _commit(self, step: int, tmp: Path, files: dict[str, Any], *, background: bool) -> None:
        """Rank 0: manifest, directory renamed into place, root fsynced, ``latest`` replaced, rotation."""
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "step": step,
            "world_size": self.world_size,
            "files": files,
            "hpcx_version": hpcx.__version__,
            "torch_version": _torch_version(),
            "background": background,
            "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_json(tmp / MANIFEST, manifest)  # also fsyncs tmp, covering every rank's renames
        final = self.root / step_dir_name(step)
        doomed = []
        if final.exists():  # the same step saved again (after a resume): the old one goes, atomically
            doomed.append(_rename_for_deletion(final))
        os.rename(tmp, final)
        fsync_dir(self.root)
        atomic_write(self.root / LATEST, final.name + "\n")
        doomed += self._rotate(step)
        if doomed:
            # Deleting a big file can take 100 ms or more (extents freed, discards sent); training need not wait.
            # An exit before it ends leaves .del- directories, which load ignores and the next save removes.
            self._join_deleter()
            self._deleting = doomed
            self._deleter = threading.Thread(target=_remove_all, args=(doomed,), name="hpcx-ckpt-rotate")
            self._deleter.start()

    def _rotate(self, step: int) -> list[Path]:
        """Rename the oldest committed steps beyond ``keep`` (never ``step``, the one ``latest`` now names) out of
        the way, so a load never sees half a directory; returns their new names, for deletion."""
        if self.keep is None:
            return []
        older = sorted(s for s in _complete_steps(self.root) if s < step)
        doomed = []
        for s in older[: max(0, len(older) - (self.keep - 1))]:
            try:
                doomed.append(_rename_for_deletion(self.root / step_dir_name(s)))
            except OSError:
                continue
        return doomed

    # ------------------------------------------------------------ loading

    def load(
        self,
        *,
        map_location: Any = None,
        restore: bool = True,
        weights_only: bool = True,
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
        plan = self._group.bcast(self._plan() if self.rank == 0 else None)
        torn: list[tuple[int, str]] = []
        for name in plan["candidates"]:
            step = _step_of(name)
            verdict = self._verify(self.root / name)
            verdicts = self._group.allgather(verdict[:2])
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
            loaded = self._deserialise(step, verdict[2], map_location=map_location, weights_only=weights_only)
            self._report(plan, torn, step)
            if restore:
                restore_rng_state(loaded[1]["rng"])
            return Loaded(step, loaded[0], loaded[1]["state"])
        self._report(plan, torn, None)
        if torn:
            raise RuntimeFailure(
                f"no good checkpoint in {self.root}: " + "; ".join(f"step {s}: {why}" for s, why in torn),
                hint=f"move {self.root} aside to start afresh",
            )
        return None

    def _plan(self) -> dict[str, Any]:
        """Rank 0: which step directories to try, newest first, and what else it saw (leftovers, bad latest)."""
        if not self.root.is_dir():
            return {"candidates": [], "leftovers": [], "notes": []}
        steps = sorted(_complete_steps(self.root), reverse=True)
        leftovers = sorted(
            e.name for e in self.root.iterdir() if LEFTOVER_RE.match(e.name) and ".tmp-" in e.name
        )
        notes: list[str] = []
        latest, why = _read_latest(self.root)
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

    def _verify(self, step_dir: Path) -> tuple[str, Any, dict[str, bytes]]:
        """("ok", None, bytes of this rank's files) or ("torn", why, {}) or ("world_size", n, {})."""
        manifest, why = _read_manifest(step_dir)
        if manifest is None:
            return "torn", why, {}
        if manifest.get("world_size") != self.world_size:
            return "world_size", manifest.get("world_size"), {}
        files = manifest["files"]
        mine = [REPLICATED, rank_file_name(self.rank)]
        for name in mine:
            if name not in files:
                return "torn", f"{name} is not in the manifest", {}
        if self.rank == 0:  # a cheap look at the other ranks' files too, for a message that names them
            for name, entry in files.items():
                size = _size_of(step_dir / name)
                if name not in mine and size != entry.get("size_bytes"):
                    return "torn", _size_problem(name, size, entry), {}
        blobs = {}
        for name in mine:
            data, why = _read_verified(step_dir, name, files[name])
            if data is None:
                return "torn", why, {}
            blobs[name] = data
        return "ok", None, blobs

    def _deserialise(
        self, step: int, blobs: dict[str, bytes], *, map_location: Any, weights_only: bool
    ) -> tuple[Any, dict[str, Any]]:
        """Unpickle this rank's files; if any rank cannot, every rank raises (none goes on alone)."""
        error, out = None, None
        try:
            out = tuple(
                _torch_load(blobs[name], map_location=map_location, weights_only=weights_only)
                for name in (REPLICATED, rank_file_name(self.rank))
            )
        except pickle.UnpicklingError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            error = f"rank {self.rank}: torch.load(weights_only={weights_only}) refused it: {first}"
        except Exception as exc:
            error = f"rank {self.rank}: {type(exc).__name__}: {exc}"
        errors = [e for e in self._group.allgather(error) if e]
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
            step = _step_of(name)
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


# ---------------------------------------------------------------- small helpers


def _rename_for_deletion(path: Path) -> Path:
    doomed = path.with_name(f"{path.name}.del-{os.urandom(4).hex()}")
    os.rename(path, doomed)
    return doomed


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _step_of(name: str) -> int:
    return int(name.split("-", 1)[1].split(".", 1)[0])


def _complete_steps(root: Path) -> list[int]:
    """Steps with a committed (renamed into place) directory under ``root``."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    return [int(m.group(1)) for e in entries if (m := STEP_RE.match(e.name)) and e.is_dir()]


def _read_latest(root: Path) -> tuple[int | None, str | None]:
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


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)
