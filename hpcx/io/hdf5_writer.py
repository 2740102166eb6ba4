"""The writer behind :func:`hpcx.io.hdf5.create`: :class:`SharedFile`, one HDF5 file written by every rank in one
of three layouts (mpio, per-rank, serial), renamed into place only when complete. h5py and numpy are imported
inside the methods that need them."""

from __future__ import annotations

import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from hpcx.errors import RuntimeFailure, UsageError
from hpcx.io import hdf5_parts as parts
from hpcx.io.hdf5_fs import (
    FsInfo,
    file_kwargs,
    fsync_path,
    gib,
    metadata_margin,
    mpi_info,
    setstripe,
    transfer_mode,
    unlink,
    write_failed,
)
from hpcx.io.hdf5_layout import placement, token
from hpcx.profiling import iometrics as metrics
from hpcx.runtime.collective import Collective


class MpioUnavailable(Exception):
    """The mpio open failed on some rank: the filesystem cannot do MPI-IO; fall back to per-rank files."""


def _as_array(data: Any, name: str) -> Any:
    import numpy as np

    arr = np.asarray(data)
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)  # (not for 0-d data: ascontiguousarray makes scalars 1-d)
    if arr.dtype.hasobject:
        raise UsageError(
            f"dataset {name!r}: dtype {arr.dtype} holds Python objects, which parallel HDF5 cannot write",
            hint="use fixed-length types: numbers, bool, np.bytes_ ('S<n>') or a structured dtype of those",
        )
    return arr


def _slab(data: Any, dtype: Any, name: str, distributed: bool) -> Any:
    """This rank's ``data`` as a C-contiguous array of ``dtype`` (when given; converted in memory with a
    warning that says how to avoid it), refused when it cannot be written as asked."""
    import numpy as np

    arr = _as_array(data, name)
    target = np.dtype(dtype) if dtype is not None else arr.dtype
    if target != arr.dtype:
        warnings.warn(
            f"dataset {name!r}: converting {arr.dtype} in memory to the dataset's {target} before writing; "
            f"write {target} data (or pass dtype={str(arr.dtype)!r}) to skip the conversion",
            RuntimeWarning,
            stacklevel=3,  # the caller of SharedFile.write
        )
        arr = arr.astype(target)
    if distributed and arr.ndim == 0:
        raise UsageError(
            f"dataset {name!r}: a scalar cannot be split by rows",
            hint="pass distributed=False for a value every rank holds",
        )
    return arr


class SharedFile:
    """One HDF5 file written by every rank. Create it with :func:`hpcx.io.hdf5.create`; every method is
    collective."""

    def __init__(
        self,
        path: Path,
        ranks: Collective,
        layout: str,
        reason: str,
        fs: FsInfo,
        *,
        alignment: int | None,
        stripe_count: int | None,
        stripe_size: int | None,
    ) -> None:
        self.path, self.layout, self.reason, self.fs = path, layout, reason, fs
        self._ranks = ranks
        self._attrs: dict[str, dict[str, Any]] = {}  # per-rank layout: object -> attrs, set on the stitch
        self._closed = False
        name = token(ranks)
        self._tmp = path.parent / f".{path.name}.tmp-{name}"
        self._parts_tmp = path.parent / f".{path.name}{parts.PARTS_SUFFIX}.tmp-{name}"
        kwargs = file_kwargs(fs, alignment=alignment)
        self._file: Any = None
        if layout == "per-rank":
            self._open_part(kwargs)
        elif layout == "serial":
            self._open_serial(kwargs)
        else:
            self._open_mpio(kwargs, stripe_count, stripe_size)
        self.transfer = transfer_mode() if layout == "mpio" else "posix"
        self._record_open(kwargs)

    # -- opening

    def _open_part(self, kwargs: dict[str, Any]) -> None:
        import h5py

        error: BaseException | None = None
        try:
            self._parts_tmp.mkdir(parents=True, exist_ok=True)
            self._file = h5py.File(parts.part_path(self._parts_tmp, self.rank, tmp=True), "w", **kwargs)
        except OSError as exc:
            error = write_failed(self.path, f"rank {self.rank}'s part", exc)
        self._ranks.agree(error, f"creating {self.path}")

    def _open_serial(self, kwargs: dict[str, Any]) -> None:
        import h5py

        try:
            self._file = h5py.File(self._tmp, "w", **kwargs)
        except OSError as exc:
            raise write_failed(self.path, "the file", exc) from exc

    def _open_mpio(self, kwargs: dict[str, Any], stripe_count: int | None, stripe_size: int | None) -> None:
        """Every rank opens the temp file with the mpio driver; if any rank cannot, all raise MpioUnavailable."""
        import h5py

        if self.rank == 0 and (stripe_count or stripe_size) and self.fs.fs_type == "lustre":
            setstripe(self._tmp, stripe_count, stripe_size)
        self._ranks.barrier()
        error: BaseException | None = None
        try:
            comm, info = self._ranks.mpi_comm, mpi_info(self.fs)
            self._file = h5py.File(self._tmp, "w", driver="mpio", comm=comm, info=info, **kwargs)
        except OSError as exc:
            error = exc
        errors = self._ranks.allgather(None if error is None else str(error))
        if any(errors):
            if self._file is not None:
                self._file.close()
            if self.rank == 0:
                unlink(self._tmp)
            raise MpioUnavailable(next(e for e in errors if e))

    def _record_open(self, kwargs: dict[str, Any]) -> None:
        """The layout and why, in the profile records that ``hpcx report`` reads."""
        metrics.event(
            "hdf5_open",
            path=str(self.path),
            layout=self.layout,
            reason=self.reason,
            ranks=self.size,
            transfer=self.transfer,
            fs_type=self.fs.fs_type,
            alignment=kwargs["alignment_interval"],
            locking=kwargs.get("locking", "default"),
        )

    # -- writing

    @property
    def rank(self) -> int:
        return self._ranks.rank

    @property
    def size(self) -> int:
        return self._ranks.size

    def write(
        self,
        name: str,
        data: Any,
        *,
        dtype: Any = None,
        start: int | None = None,
        shape: tuple[int, ...] | None = None,
        distributed: bool = True,
        **create_kwargs: Any,
    ) -> None:
        """Write dataset ``name``: collective, one call per dataset.

        ``distributed`` (the default): ``data`` is this rank's slab of rows (axis 0; empty slabs are fine); the
        slabs are laid out in rank order, or at ``start`` within a dataset of global ``shape`` when each rank
        says where its rows go. ``distributed=False``: every rank passes the same array, rank 0's is written.
        ``dtype`` is the dataset's type; when it differs from the data's, the data is converted in memory and a
        warning says so (HDF5's own conversion costs up to 100x, NERSC). ``create_kwargs`` go to
        ``create_dataset`` (chunks, compression; compressed parallel writes are collective, HDF5 >= 1.10.2).
        """
        self._check_open()
        arr = _slab(data, dtype, name, distributed)
        if self.layout == "per-rank":
            self._write_part(name, arr, start=start, shape=shape, distributed=distributed, **create_kwargs)
        else:
            self._write_shared(name, arr, start, shape, distributed, create_kwargs)

    def _write_shared(
        self,
        name: str,
        arr: Any,
        start: int | None,
        shape: tuple[int, ...] | None,
        distributed: bool,
        create_kwargs: dict[str, Any],
    ) -> None:
        """One dataset of the one shared file (mpio or serial): placed, its room checked, written by all."""
        import numpy as np

        meta = self._ranks.allgather((arr.shape, arr.dtype.str, arr.dtype.descr, start, shape))
        offset, gshape = placement(name, meta, self.rank, distributed)
        self._check_space(name, int(np.prod(gshape, dtype=np.int64)) * arr.dtype.itemsize)
        mine = arr if (distributed or self.rank == 0) else None
        error: BaseException | None = None
        t0 = time.perf_counter()
        try:
            dset = self._file.create_dataset(
                name, shape=gshape, dtype=arr.dtype, fill_time="never", **create_kwargs
            )
            self._collective_write(dset, mine, offset)
        except (OSError, RuntimeError) as exc:  # h5py reports a failed H5Dwrite/flush as either
            error = write_failed(self.path, f"dataset {name!r}", exc)
        except (ValueError, TypeError) as exc:
            error = exc
        self._ranks.agree(error, f"writing dataset {name!r} of {self.path}")
        metrics.add("write", 0 if mine is None else mine.nbytes, time.perf_counter() - t0)

    def _check_space(self, name: str, nbytes: int) -> None:
        """Refuse, on every rank, a dataset the filesystem has no room for, before anything is written.

        This check is what keeps a full disk a clean error: once HDF5 1.10 fails to flush an mpio file, closing
        that file crashes the process (at exit, if not before), so the data and a margin for the metadata and
        alignment padding must fit before the first byte is written."""
        nbytes += metadata_margin(self.fs)
        free = self._ranks.bcast(shutil.disk_usage(self.path.parent).free if self.rank == 0 else None)
        if nbytes > free:
            raise RuntimeFailure(
                f"dataset {name!r} needs {gib(nbytes)} but {self.path.parent} has {gib(free)} free",
                hint="free space or write to another directory; no file was left at " + str(self.path),
            )

    def _collective_write(self, dset: Any, arr: Any, start: int) -> None:
        """One H5Dwrite per rank, collective under mpio: every rank takes part, and a rank with nothing to
        write (an empty slab, or not rank 0 for replicated data) selects nothing rather than skipping the call,
        which would leave the others waiting in the collective."""
        import h5py
        import numpy as np

        fspace = dset.id.get_space()
        if arr is not None and (arr.ndim == 0 or arr.shape[0] > 0):
            if arr.ndim:
                fspace.select_hyperslab((start,) + (0,) * (arr.ndim - 1), arr.shape)
            mspace = h5py.h5s.create_simple(arr.shape) if arr.ndim else h5py.h5s.create(h5py.h5s.SCALAR)
            buf = arr
        else:
            fspace.select_none()
            mspace = h5py.h5s.create_simple((1,))
            mspace.select_none()
            buf = np.zeros(1, dtype=dset.dtype)
        dxpl = h5py.h5p.create(h5py.h5p.DATASET_XFER)
        if self.layout == "mpio":
            # Filtered (compressed) datasets can only be written collectively; otherwise self.transfer says.
            collective = self.transfer == "collective" or dset.id.get_create_plist().get_nfilters() > 0
            dxpl.set_dxpl_mpio(h5py.h5fd.MPIO_COLLECTIVE if collective else h5py.h5fd.MPIO_INDEPENDENT)
        dset.id.write(mspace, fspace, buf, dxpl=dxpl)

    # The same arguments as _write_shared: the two ways one dataset is written, chosen by write().
    def _write_part(
        self,
        name: str,
        arr: Any,
        *,
        start: int | None,
        shape: tuple[int, ...] | None,
        distributed: bool,
        **create_kwargs: Any,
    ) -> None:
        mine = arr if (distributed or self.rank == 0) else None
        error: BaseException | None = None
        t0 = time.perf_counter()
        nbytes = 0 if mine is None else mine.nbytes
        try:
            self._check_part_space(name, nbytes)
            if mine is not None:
                dset = self._file.create_dataset(name, data=mine, fill_time="never", **create_kwargs)
                dset.attrs[parts.DISTRIBUTED_ATTR] = distributed
                if start is not None:
                    dset.attrs[parts.START_ATTR] = int(start)
                if shape is not None:
                    dset.attrs[parts.SHAPE_ATTR] = tuple(int(x) for x in shape)
        except OSError as exc:
            error = write_failed(self.path, f"rank {self.rank}'s part of dataset {name!r}", exc)
        except RuntimeFailure as exc:
            error = exc
        self._ranks.agree(error, f"writing dataset {name!r} of {self.path}")
        metrics.add("write", nbytes, time.perf_counter() - t0)

    def _check_part_space(self, name: str, nbytes: int) -> None:
        free = shutil.disk_usage(self._parts_tmp).free
        if nbytes + metadata_margin(self.fs) > free:
            raise RuntimeFailure(
                f"rank {self.rank}'s part of dataset {name!r} needs {gib(nbytes)} but {self.path.parent} "
                f"has {gib(free)} free",
                hint="free space or write to another directory; no file was left at " + str(self.path),
            )

    # -- attributes

    def set_attrs(self, obj: str = "/", **attrs: Any) -> None:
        """Set attributes of ``obj`` (the file root by default) collectively: rank 0's values win, so every
        rank writes identical metadata, as parallel HDF5 requires."""
        self._check_open()
        if self._ranks.connected:  # without one, only rank 0's values reach the stitched file anyway
            attrs = self._ranks.bcast(attrs if self.rank == 0 else None)
        if self.layout == "per-rank":
            self._attrs.setdefault(obj, {}).update(attrs)
            return
        target = self._file[obj]
        for key, value in attrs.items():
            target.attrs[key] = value

    # -- closing

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"{self.path} is already closed", hint="write everything before close()")

    def close(self) -> None:
        """Finish the file (collective): flush, fsync, stitch the parts, and rename it into place."""
        if self._closed:
            return
        self._closed = True
        if self.layout == "per-rank":
            self._close_parts()
        else:
            self._close_shared()
        metrics.flush()

    def _close_shared(self) -> None:
        error: BaseException | None = None
        try:
            self._file.close()
        except (OSError, RuntimeError) as exc:  # the disk filled while HDF5 flushed data or metadata
            error = write_failed(self.path, "the file's data and metadata", exc)
        try:
            self._ranks.agree(error, f"closing {self.path}")
        except BaseException:
            if self.rank == 0:
                unlink(self._tmp)
            raise
        if self.rank == 0:
            fsync_path(self._tmp)
            os.replace(self._tmp, self.path)
            fsync_path(self.path.parent)
            # A per-rank file this one replaced left its parts: nothing names them any more.
            shutil.rmtree(self.path.parent / (self.path.name + parts.PARTS_SUFFIX), ignore_errors=True)
        self._ranks.barrier()

    def abort(self) -> None:
        """Give up: close what is open and remove the temporary files; nothing appears at ``path``."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._file is not None:
                self._file.close()
        except Exception:  # aborting already; the original error is what matters
            pass
        if self.layout == "per-rank":
            unlink(parts.part_path(self._parts_tmp, self.rank, tmp=True))
            if self.rank == 0:
                shutil.rmtree(self._parts_tmp, ignore_errors=True)
        elif self.rank == 0:
            unlink(self._tmp)

    def __enter__(self) -> SharedFile:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _close_parts(self) -> None:
        """This rank's part closed, fsynced and renamed complete; then rank 0 stitches them all."""
        error: BaseException | None = None
        part_tmp = parts.part_path(self._parts_tmp, self.rank, tmp=True)
        try:
            self._file.close()
            fsync_path(part_tmp)
            os.replace(part_tmp, parts.part_path(self._parts_tmp, self.rank))  # the part is complete: say so
        except (OSError, RuntimeError) as exc:
            error = write_failed(self.path, f"rank {self.rank}'s part", exc)
            unlink(part_tmp)
        try:
            self._ranks.agree(error, f"closing {self.path}")
        except BaseException:
            if self.rank == 0:
                shutil.rmtree(self._parts_tmp, ignore_errors=True)
            raise
        self._ranks.agree(self._stitch() if self.rank == 0 else None, f"stitching {self.path}")

    def _stitch(self) -> BaseException | None:
        """Rank 0: the parts stitched into the file at ``path``; the error instead, with the parts removed."""
        error: BaseException | None = None
        try:
            if (
                not self._ranks.connected
            ):  # without MPI, rank 0 learns from the renamed parts that all are done
                parts.wait_for_parts(self.path, self._parts_tmp, self.size)
            parts.stitch(self.path, self._parts_tmp, self.size, self._attrs)
        except (OSError, RuntimeError) as exc:
            error = write_failed(self.path, "the stitched file", exc)
        except (RuntimeFailure, UsageError) as exc:
            error = exc
        if error is not None:
            shutil.rmtree(self._parts_tmp, ignore_errors=True)
        return error
