"""Writing one checkpoint file: torch.save through a writer that hashes every byte as it goes (so nothing is read
back), starts writeback early, and leaves the file under its name only once it is complete and fsynced.
torch is imported inside the functions that need it."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger("hpcx.checkpoint")

WRITE_BUFFER_BYTES = 8 << 20  # small pickle records are gathered into big writes; tensors go straight through
PARALLEL_HASH_MIN_BYTES = 1 << 20  # below this, hashing in another thread costs more than it saves
WRITEBACK_CHUNK_BYTES = 16 << 20  # writeback of new pages is started every 16 MiB (see HashingWriter)

_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()
_crc32_lock = threading.Lock()


def _hasher() -> ThreadPoolExecutor:
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(1, thread_name_prefix="hpcx-ckpt-hash")
        return _hash_pool


def _forget_hasher_in_child() -> None:
    """A forked child has the pool but not its thread (fork copies only the calling thread): a hash handed to it
    would wait for ever. The child starts its own pool on its first large write."""
    global _hash_pool, _hash_pool_lock
    _hash_pool, _hash_pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_hasher_in_child)


class HashingWriter:
    """The file object torch.save writes to: it hashes every byte while writing it, so nothing is read back.

    With ``parallel_hash`` a large write (a tensor's storage) is hashed in a second thread while this one writes
    it; both release the GIL, so with a spare core the hash costs (almost) no time. write() returns only when
    both are done with the buffer: torch may free it afterwards (the CPU copy of a GPU storage).

    Every WRITEBACK_CHUNK_BYTES it asks the kernel to start writing the new pages to disk
    (``posix_fadvise(DONTNEED)`` starts writeback of dirty pages on Linux), so the disk works while torch is
    still serialising and the final fsync waits only for the tail, instead of for the whole file.
    """

    def __init__(self, fh: BinaryIO, *, parallel_hash: bool = True) -> None:
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


def write_file(directory: Path, name: str, obj: Any, *, parallel_hash: bool = True) -> dict[str, Any]:
    """torch.save ``obj`` to ``directory/name`` via a temp name, fsynced; returns its sha256 and size."""
    import torch

    tmp = directory / f".{name}.tmp"
    writer = None
    try:
        with open(tmp, "wb", buffering=WRITE_BUFFER_BYTES) as fh:
            writer = HashingWriter(fh, parallel_hash=parallel_hash)
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


def write_all(
    directory: Path, jobs: list[tuple[str, Any]], *, parallel_hash: bool = True
) -> tuple[dict[str, Any], str | None]:
    """Write this rank's files; returns their entries for the manifest, and the error if one failed."""
    done: dict[str, Any] = {}
    for name, obj in jobs:
        try:
            done[name] = write_file(directory, name, obj, parallel_hash=parallel_hash)
        except Exception as exc:
            log.debug("writing %s failed", directory / name, exc_info=True)
            return done, f"writing {name} failed: {type(exc).__name__}: {exc}"
    return done, None
