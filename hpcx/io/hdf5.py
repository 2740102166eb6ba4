"""Parallel HDF5 writing: one shared file, written collectively, with a fallback that always works.

``create(path, comm)`` is collective over ``comm`` and returns a :class:`SharedFile` whose ``write(name, slab)``
takes each rank's slab of a rank-distributed array (rows along axis 0) in one collective call. Two layouts sit
behind that one API, and readers cannot tell them apart:

- ``mpio``: one file opened with h5py's mpio driver and tuned the way the NERSC and HDF Group guides ask
  (latest file format, no fill values, objects aligned to the filesystem's block or Lustre stripe, file locking
  off on network filesystems, Lustre striping set before create, collective transfers);
- ``per-rank``: each rank writes ``<name>.parts/<gen>/rank-NNNNN.h5`` with serial h5py and rank 0 stitches them
  into a virtual dataset at ``<name>`` (``<gen>``: one directory per write, so a new file replaces an old one
  atomically). Chosen when h5py was built without MPI, when there is no communicator, when the mpio open fails
  on this filesystem, or when asked for (``layout="per-rank"`` or ``HPCX_HDF5_LAYOUT=per-rank``).

One process with no communicator gets ``serial``: a plain h5py file with the same tuning.

Whatever the layout, the file appears at ``path`` only when it is complete: everything is written under a
temporary name and renamed into place by ``close()``. A write that fails (a full disk) raises on every rank
with the path, the size and the free space, and leaves no file at ``path``. The layout chosen and why are
recorded in the profile records (``hpcx.profiling.iometrics.event``) that ``hpcx report`` reads; bytes and seconds
written per rank go there too.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.errors import RuntimeFailure, UsageError
from hpcx.profiling import iometrics as metrics
from hpcx.runtime.collective import Collective

LAYOUT_ENV = "HPCX_HDF5_LAYOUT"
LAYOUTS = ("auto", "mpio", "per-rank")
PARTS_SUFFIX = ".parts"
# Filesystems where POSIX/flock locking is missing, slow or wrong: HDF5's own file locking goes off there
# (h5py#1082, #1101), and ROMIO's data sieving, which takes byte-range locks, is disabled (h5py#673).
NETWORK_FS = frozenset({
    "nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "ceph", "fuse.ceph-fuse", "fuse.sshfs",
    "wekafs", "panfs", "fuse.glusterfs", "orangefs",
})  # fmt: skip
_START_ATTR = "_hpcx_start"
_SHAPE_ATTR = "_hpcx_global_shape"


# --- the filesystem ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FsInfo:
    """What the writer tunes for: the filesystem holding a directory."""

    fs_type: str
    mount_point: str
    block_size: int
    stripe_size: int | None = None  # Lustre only
    stripe_count: int | None = None

    @property
    def network(self) -> bool:
        return self.fs_type in NETWORK_FS

    @property
    def alignment(self) -> int:
        """Objects at least this large start on a multiple of it: the Lustre stripe, else the block size."""
        return self.stripe_size or self.block_size


def _unescape_mount(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def fs_info(directory: str | os.PathLike[str]) -> FsInfo:
    """The filesystem of ``directory`` from /proc/self/mountinfo (longest matching mount point) and statvfs."""
    real = os.path.realpath(directory)
    fs_type, mount = "unknown", "/"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) < 5 or not right:
                    continue
                point = _unescape_mount(fields[4])
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(mount):
                    fs_type, mount = right.split()[0], point
    except OSError:
        pass
    block = os.statvfs(real).f_bsize
    stripe_size = stripe_count = None
    if fs_type == "lustre" and shutil.which("lfs"):
        stripe_count, stripe_size = _lustre_stripe(real)
    return FsInfo(fs_type, mount, block, stripe_size, stripe_count)


def _lustre_stripe(directory: str) -> tuple[int | None, int | None]:
    from hpcx import _proc
    from hpcx.errors import CommandError

    try:
        out = _proc.run(["lfs", "getstripe", "-d", directory], timeout_s=30).stdout
    except CommandError:
        return None, None
    values: dict[str, int] = {}
    for token, value in zip(out.split()[::2], out.split()[1::2]):
        if token.rstrip(":") in ("stripe_count", "stripe_size") and value.lstrip("-").isdigit():
            values[token.rstrip(":")] = int(value)
    count = values.get("stripe_count")
    return (count if count and count > 0 else None), values.get("stripe_size")


def file_kwargs(fs: FsInfo, *, alignment: int | None = None) -> dict[str, Any]:
    """h5py.File keyword arguments tuned for ``fs`` (NERSC: libver='latest' is 2.25x on many objects)."""
    align = alignment or fs.alignment
    kwargs: dict[str, Any] = {"libver": "latest", "alignment_threshold": align, "alignment_interval": align}
    if fs.network and "HDF5_USE_FILE_LOCKING" not in os.environ:
        kwargs["locking"] = False
    return kwargs


def _mpi_info(fs: FsInfo) -> Any:
    from mpi4py import MPI

    info = MPI.Info.Create()
    info.Set("romio_cb_write", "enable")  # two-phase collective buffering for the large slabs
    if fs.network:
        info.Set("romio_ds_write", "disable")  # data sieving takes locks that Lustre/NFS make slow or wrong
    if fs.stripe_count:
        info.Set("cb_nodes", str(fs.stripe_count))  # one aggregator per OST
    return info


def _transfer_mode() -> str:
    """Collective transfers (two-phase buffering: a few aggregators write large aligned pieces, which is what
    Lustre and GPFS need at scale, NERSC measured 2x) unless ``HPCX_HDF5_TRANSFER=independent``. Measured here
    on one ext4 disk, 4 ranks and 256 MiB, collective and independent were within the run-to-run noise under
    both OMPIO and ROMIO (performance.md), so nothing is lost by the default on a single node."""
    forced = os.environ.get("HPCX_HDF5_TRANSFER")
    return forced if forced in ("collective", "independent") else "collective"


# --- ranks ---------------------------------------------------------------------------------------------------


def _token(ranks: Collective) -> str:
    """A name shared by every rank of this attempt, distinct from any other attempt's."""
    if ranks.connected:
        return ranks.bcast(uuid.uuid4().hex[:12] if ranks.rank == 0 else None)
    if ranks.size == 1:
        return f"p{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env = os.environ
    parts = [
        env.get("SLURM_JOB_ID", "nojob"),
        env.get("SLURM_STEP_ID", "0"),
        env.get("SLURM_RESTART_COUNT", "0"),
    ]
    return "j" + ".".join(parts)


def _choose_layout(requested: str, ranks: Collective) -> tuple[str, str]:
    import h5py

    if requested not in LAYOUTS:
        raise UsageError(
            f"HDF5 layout {requested!r} is not one of {', '.join(LAYOUTS)}",
            hint=f"pass layout= or set {LAYOUT_ENV} to one of them",
        )
    has_mpi = bool(h5py.get_config().mpi)
    if requested == "per-rank":
        return "per-rank", "asked for"
    if ranks.connected and not ranks.is_mpi:
        if requested == "mpio":
            raise UsageError(
                "layout 'mpio' needs an MPI communicator, and this job runs without MPI",
                hint="install mpi4py and launch with srun --mpi=pmix or mpirun, or use layout='auto'",
            )
        return "per-rank", "no MPI in this job (torch.distributed only)"
    if not ranks.connected:
        if ranks.size == 1:
            return "serial", "one process, no communicator"
        if requested == "mpio":
            raise UsageError(
                f"layout 'mpio' needs an MPI communicator, and rank {ranks.rank} of {ranks.size} has none",
                hint="pass comm=MPI.COMM_WORLD (pip install 'hpcx[runtime]' for mpi4py), or use layout='auto'",
            )
        return "per-rank", f"no MPI communicator across {ranks.size} ranks"
    if not has_mpi:
        if requested == "mpio":
            raise RuntimeFailure(
                f"h5py {h5py.__version__} was built without MPI, so layout 'mpio' is impossible",
                hint="rebuild it: CC=mpicc HDF5_MPI=ON pip install --no-build-isolation --no-binary=h5py h5py, "
                "or use layout='auto' for the per-rank fallback",
            )
        return "per-rank", f"h5py {h5py.__version__} was built without MPI"
    return "mpio", "h5py with MPI and a communicator"


# --- the writer ----------------------------------------------------------------------------------------------


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


def _metadata_margin(fs: FsInfo) -> int:
    """Room a dataset needs beyond its data: object headers, the superblock, and padding to the alignment."""
    return 64 * 1024 + 2 * fs.alignment


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _write_failed(path: Path, what: str, exc: BaseException) -> RuntimeFailure:
    try:
        free = _gib(shutil.disk_usage(path.parent).free)
    except OSError:
        free = "unknown"
    errno = getattr(exc, "errno", None)
    why = os.strerror(errno) if errno else (str(exc).splitlines() or [type(exc).__name__])[0]
    return RuntimeFailure(
        f"writing {what} to {path} failed: {why} ({free} free on {path.parent})",
        hint="free space or choose another directory; no file was left at that path",
    )


class SharedFile:
    """One HDF5 file written by every rank. Create it with :func:`create`; every method is collective."""

    def __init__(self, path: Path, ranks: Collective, layout: str, reason: str, fs: FsInfo, *,
                 alignment: int | None, stripe_count: int | None, stripe_size: int | None) -> None:  # fmt: skip
        import h5py

        self.path, self.layout, self.reason, self.fs = path, layout, reason, fs
        self._ranks = ranks
        self._attrs: dict[str, dict[str, Any]] = {}  # per-rank layout: object -> attrs, set on the stitch
        self._closed = False
        self._bytes = 0
        token = _token(ranks)
        self._tmp = path.parent / f".{path.name}.tmp-{token}"
        self._parts_tmp = path.parent / f".{path.name}{PARTS_SUFFIX}.tmp-{token}"
        kwargs = file_kwargs(fs, alignment=alignment)
        error: BaseException | None = None
        self._file: Any = None
        if layout == "per-rank":
            try:
                self._parts_tmp.mkdir(parents=True, exist_ok=True)
                self._file = h5py.File(self._part_path(self._parts_tmp, ranks.rank, tmp=True), "w", **kwargs)
            except OSError as exc:
                error = _write_failed(path, f"rank {ranks.rank}'s part", exc)
            ranks.agree(error, f"creating {path}")
        elif layout == "serial":
            try:
                self._file = h5py.File(self._tmp, "w", **kwargs)
            except OSError as exc:
                raise _write_failed(path, "the file", exc) from exc
        else:
            if ranks.rank == 0 and (stripe_count or stripe_size) and fs.fs_type == "lustre":
                _setstripe(self._tmp, stripe_count, stripe_size)
            ranks.barrier()
            try:
                self._file = h5py.File(
                    self._tmp, "w", driver="mpio", comm=ranks.mpi_comm, info=_mpi_info(fs), **kwargs
                )
            except OSError as exc:
                error = exc
            errors = ranks.allgather(None if error is None else str(error))
            if any(errors):
                if self._file is not None:
                    self._file.close()
                if ranks.rank == 0:
                    _unlink(self._tmp)
                raise _MpioUnavailable(next(e for e in errors if e))
        self.transfer = _transfer_mode() if layout == "mpio" else "posix"
        metrics.event("hdf5_open", path=str(path), layout=layout, reason=reason, ranks=ranks.size,
                      transfer=self.transfer,
                      fs_type=fs.fs_type, alignment=kwargs["alignment_interval"],
                      locking=kwargs.get("locking", "default"))  # fmt: skip

    # -- writing

    @property
    def rank(self) -> int:
        return self._ranks.rank

    @property
    def size(self) -> int:
        return self._ranks.size

    def write(self, name: str, data: Any, *, dtype: Any = None, start: int | None = None,
              shape: tuple[int, ...] | None = None, distributed: bool = True, **create_kwargs: Any) -> None:  # fmt: skip
        """Write dataset ``name``: collective, one call per dataset.

        ``distributed`` (the default): ``data`` is this rank's slab of rows (axis 0; empty slabs are fine); the
        slabs are laid out in rank order, or at ``start`` within a dataset of global ``shape`` when each rank
        says where its rows go. ``distributed=False``: every rank passes the same array, rank 0's is written.
        ``dtype`` is the dataset's type; when it differs from the data's, the data is converted in memory and a
        warning says so (HDF5's own conversion costs up to 100x, NERSC). ``create_kwargs`` go to
        ``create_dataset`` (chunks, compression; compressed parallel writes are collective, HDF5 >= 1.10.2).
        """
        import numpy as np

        self._check_open()
        arr = _as_array(data, name)
        target = np.dtype(dtype) if dtype is not None else arr.dtype
        if target != arr.dtype:
            warnings.warn(
                f"dataset {name!r}: converting {arr.dtype} in memory to the dataset's {target} before writing; "
                f"write {target} data (or pass dtype={str(arr.dtype)!r}) to skip the conversion",
                RuntimeWarning,
                stacklevel=2,
            )
            arr = arr.astype(target)
        if distributed and arr.ndim == 0:
            raise UsageError(
                f"dataset {name!r}: a scalar cannot be split by rows",
                hint="pass distributed=False for a value every rank holds",
            )
        if self.layout == "per-rank":
            self._write_part(name, arr, start=start, shape=shape, distributed=distributed, **create_kwargs)
            return
        start, gshape = self._placement(name, arr, start, shape, distributed)
        self._check_space(name, int(np.prod(gshape, dtype=np.int64)) * arr.dtype.itemsize)
        error: BaseException | None = None
        t0 = time.perf_counter()
        try:
            dset = self._file.create_dataset(
                name, shape=gshape, dtype=arr.dtype, fill_time="never", **create_kwargs
            )
            self._collective_write(dset, arr if (distributed or self.rank == 0) else None, start)
        except (OSError, RuntimeError) as exc:  # h5py reports a failed H5Dwrite/flush as either
            error = _write_failed(self.path, f"dataset {name!r}", exc)
        except (ValueError, TypeError) as exc:
            error = exc
        self._ranks.agree(error, f"writing dataset {name!r} of {self.path}")
        nbytes = arr.nbytes if (distributed or self.rank == 0) else 0
        metrics.add("write", nbytes, time.perf_counter() - t0)
        self._bytes += nbytes

    def _placement(self, name: str, arr: Any, start: int | None, shape: tuple[int, ...] | None,
                   distributed: bool) -> tuple[int, tuple[int, ...]]:  # fmt: skip
        """Where this rank's rows go and the dataset's shape, checked alike on every rank before any HDF5 call."""
        meta = self._ranks.allgather((arr.shape, arr.dtype.str, arr.dtype.descr, start, shape))
        shapes = [m[0] for m in meta]
        if any(m[1:3] != meta[0][1:3] for m in meta):
            kinds = sorted({m[1] for m in meta})
            raise UsageError(
                f"dataset {name!r}: ranks pass different dtypes {kinds}", hint="pass dtype= on every rank"
            )
        if not distributed:
            if any(s != shapes[0] for s in shapes):
                raise UsageError(
                    f"dataset {name!r}: distributed=False but ranks pass shapes {sorted(set(shapes))}",
                    hint="every rank passes the same array, or drop distributed=False",
                )
            return 0, tuple(shapes[0])
        trailing = {s[1:] for s in shapes}
        if len(trailing) > 1:
            raise UsageError(
                f"dataset {name!r}: ranks' slabs differ beyond axis 0: {sorted(trailing)}",
                hint="split arrays by rows only",
            )
        starts = [m[3] for m in meta]
        if any(s is None for s in starts) != all(s is None for s in starts):
            raise UsageError(
                f"dataset {name!r}: some ranks pass start= and some do not", hint="pass it on all"
            )
        if starts[0] is None:
            offsets = [0]
            for s in shapes[:-1]:
                offsets.append(offsets[-1] + s[0])
            gshape = (sum(s[0] for s in shapes), *shapes[0][1:])
            given = {m[4] for m in meta}
            if given != {None} and given != {gshape}:
                raise UsageError(f"dataset {name!r}: shape={sorted(given)} but the slabs add up to {gshape}")
            return offsets[self.rank], gshape
        gshapes = {tuple(m[4]) if m[4] is not None else None for m in meta}
        if len(gshapes) != 1 or None in gshapes:
            raise UsageError(
                f"dataset {name!r}: start= needs the same shape= on every rank", hint="pass both"
            )
        gshape = gshapes.pop()
        assert gshape is not None
        for rank, (s, st) in enumerate(zip(shapes, starts)):
            if st < 0 or st + s[0] > gshape[0] or tuple(gshape[1:]) != tuple(s[1:]):
                raise UsageError(
                    f"dataset {name!r}: rank {rank}'s rows {st}..{st + s[0]} of shape {s} do not fit shape {gshape}",
                    hint="start + len(slab) must be <= shape[0] and the trailing dims equal",
                )
        return starts[self.rank], gshape

    def _check_space(self, name: str, nbytes: int) -> None:
        """Refuse, on every rank, a dataset the filesystem has no room for, before anything is written.

        This check is what keeps a full disk a clean error: once HDF5 1.10 fails to flush an mpio file, closing
        that file crashes the process (at exit, if not before), so the data and a margin for the metadata and
        alignment padding must fit before the first byte is written."""
        nbytes += _metadata_margin(self.fs)
        free = self._ranks.bcast(shutil.disk_usage(self.path.parent).free if self.rank == 0 else None)
        if nbytes > free:
            raise RuntimeFailure(
                f"dataset {name!r} needs {_gib(nbytes)} but {self.path.parent} has {_gib(free)} free",
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

    def _write_part(self, name: str, arr: Any, *, start: int | None, shape: tuple[int, ...] | None,
                    distributed: bool, **create_kwargs: Any) -> None:  # fmt: skip
        mine = arr if (distributed or self.rank == 0) else None
        error: BaseException | None = None
        t0 = time.perf_counter()
        nbytes = 0 if mine is None else mine.nbytes
        try:
            free = shutil.disk_usage(self._parts_tmp).free
            if nbytes + _metadata_margin(self.fs) > free:
                raise RuntimeFailure(
                    f"rank {self.rank}'s part of dataset {name!r} needs {_gib(nbytes)} but {self.path.parent} "
                    f"has {_gib(free)} free",
                    hint="free space or write to another directory; no file was left at " + str(self.path),
                )
            if mine is not None:
                dset = self._file.create_dataset(name, data=mine, fill_time="never", **create_kwargs)
                dset.attrs["_hpcx_distributed"] = distributed
                if start is not None:
                    dset.attrs[_START_ATTR] = int(start)
                if shape is not None:
                    dset.attrs[_SHAPE_ATTR] = tuple(int(x) for x in shape)
        except OSError as exc:
            error = _write_failed(self.path, f"rank {self.rank}'s part of dataset {name!r}", exc)
        except RuntimeFailure as exc:
            error = exc
        self._agree_or_raise(error, f"writing dataset {name!r} of {self.path}")
        metrics.add("write", nbytes, time.perf_counter() - t0)
        self._bytes += nbytes

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
            error: BaseException | None = None
            try:
                self._file.close()
            except (OSError, RuntimeError) as exc:  # the disk filled while HDF5 flushed data or metadata
                error = _write_failed(self.path, "the file's data and metadata", exc)
            try:
                self._ranks.agree(error, f"closing {self.path}")
            except BaseException:
                if self.rank == 0:
                    _unlink(self._tmp)
                raise
            if self.rank == 0:
                _fsync_path(self._tmp)
                os.replace(self._tmp, self.path)
                _fsync_path(self.path.parent)
                # A per-rank file this one replaced left its parts: nothing names them any more.
                shutil.rmtree(self.path.parent / (self.path.name + PARTS_SUFFIX), ignore_errors=True)
            self._ranks.barrier()
        metrics.flush()

    def abort(self) -> None:
        """Give up: close what is open and remove the temporary files; nothing appears at ``path``."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._file is not None:
                self._file.close()
        except Exception:  # noqa: BLE001 - aborting already; the original error is what matters
            pass
        if self.layout == "per-rank":
            _unlink(self._part_path(self._parts_tmp, self.rank, tmp=True))
            if self.rank == 0:
                shutil.rmtree(self._parts_tmp, ignore_errors=True)
        elif self.rank == 0:
            _unlink(self._tmp)

    def __enter__(self) -> SharedFile:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @staticmethod
    def _part_path(directory: Path, rank: int, *, tmp: bool = False) -> Path:
        return directory / (f"rank-{rank:05d}.h5" + (".tmp" if tmp else ""))

    def _close_parts(self) -> None:
        error: BaseException | None = None
        part_tmp = self._part_path(self._parts_tmp, self.rank, tmp=True)
        try:
            self._file.close()
            _fsync_path(part_tmp)
            os.replace(part_tmp, self._part_path(self._parts_tmp, self.rank))  # the part is complete: say so
        except (OSError, RuntimeError) as exc:
            error = _write_failed(self.path, f"rank {self.rank}'s part", exc)
            _unlink(part_tmp)
        try:
            self._agree_or_raise(error, f"closing {self.path}")
        except BaseException:
            if self.rank == 0:
                shutil.rmtree(self._parts_tmp, ignore_errors=True)
            raise
        stitch_error: BaseException | None = None
        if self.rank == 0:
            try:
                self._wait_for_parts()
                _stitch(self.path, self._parts_tmp, self.size, self._attrs)
            except (OSError, RuntimeError) as exc:
                stitch_error = _write_failed(self.path, "the stitched file", exc)
            except (RuntimeFailure, UsageError) as exc:
                stitch_error = exc
            if stitch_error is not None:
                shutil.rmtree(self._parts_tmp, ignore_errors=True)
        self._agree_or_raise(stitch_error, f"stitching {self.path}")

    def _agree_or_raise(self, error: BaseException | None, what: str) -> None:
        """With a communicator every rank raises when one failed; without one, each rank speaks for itself."""
        if self._ranks.connected:
            self._ranks.agree(error, what)
        elif error is not None:
            raise error

    def _wait_for_parts(self, timeout_s: float | None = None) -> None:
        """Without MPI, rank 0 learns that the others are done from their renamed part files."""
        if self._ranks.connected:
            return
        limit = (
            timeout_s if timeout_s is not None else float(os.environ.get("HPCX_HDF5_PART_TIMEOUT_S", "600"))
        )
        deadline = time.monotonic() + limit
        while True:
            missing = [r for r in range(self.size) if not self._part_path(self._parts_tmp, r).exists()]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"{self.path}: ranks {missing[:8]} did not finish their parts within {limit:g} s",
                    hint="a rank failed (see its log), or raise HPCX_HDF5_PART_TIMEOUT_S",
                )
            time.sleep(0.2)


class _MpioUnavailable(Exception):
    """The mpio open failed on some rank: the filesystem cannot do MPI-IO; fall back to per-rank files."""


def _stitch(path: Path, parts_tmp: Path, size: int, attrs: dict[str, dict[str, Any]]) -> None:
    """Rank 0: one virtual dataset per name over the ranks' parts, then both moved into place.

    Replacing a file is atomic: the parts go to a new generation directory, ``<name>.parts/<gen>/``, beside
    the old file's, and the new file is renamed over the old one only once it and its parts are complete and
    fsynced. A crash at any moment leaves either the old file, whole, with the parts it names, or the new one.
    Generations no longer named by the file at ``path`` are removed last."""
    import h5py

    final_parts = path.parent / (path.name + PARTS_SUFFIX)
    layouts: dict[str, list[tuple[int, tuple[int, ...], Any, int | None, tuple[int, ...] | None, bool]]] = {}
    for rank in range(size):
        with h5py.File(SharedFile._part_path(parts_tmp, rank), "r") as part:
            for name, dset in _datasets(part):
                start = dset.attrs.get(_START_ATTR)
                gshape = dset.attrs.get(_SHAPE_ATTR)
                layouts.setdefault(name, []).append(
                    (rank, dset.shape, dset.dtype, None if start is None else int(start),
                     None if gshape is None else tuple(int(x) for x in gshape),
                     bool(dset.attrs.get("_hpcx_distributed", True)))
                )  # fmt: skip
    generation = uuid.uuid4().hex[:12]  # never the old file's: a fixed name would have to be emptied first
    tmp = path.parent / f".{path.name}.stitch-{generation}"
    rel = f"{final_parts.name}/{generation}"
    replaced = False
    try:
        with h5py.File(tmp, "w", libver="latest") as out:
            for name, pieces in layouts.items():
                _virtual(out, name, pieces, rel)
            for obj, values in attrs.items():
                target = out[obj] if obj != "/" else out
                for key, value in values.items():
                    target.attrs[key] = value
        _fsync_path(tmp)
        final_parts.mkdir(exist_ok=True)
        os.replace(parts_tmp, final_parts / generation)
        _fsync_path(final_parts)
        _fsync_path(path.parent)
        os.replace(tmp, path)  # the one step that changes what a reader of ``path`` sees
        replaced = True
        _fsync_path(path.parent)
    except BaseException:
        _unlink(tmp)
        if not replaced:  # the old file, if any, still names its own parts: the new ones are nobody's
            shutil.rmtree(final_parts / generation, ignore_errors=True)
        raise
    _remove_old_parts(final_parts, keep=generation)


def _remove_old_parts(final_parts: Path, keep: str) -> None:
    """Everything in ``<name>.parts/`` but the generation the file now names: the replaced file's parts (a
    file written before generations existed kept them at the top), and those of stitches that crashed."""
    for entry in final_parts.iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            _unlink(entry)


def _virtual(out: Any, name: str, pieces: list[Any], rel: str) -> None:
    import h5py

    dtypes = {p[2] for p in pieces}
    trailing = {p[1][1:] for p in pieces}
    if len(dtypes) > 1 or len(trailing) > 1:
        raise RuntimeFailure(
            f"dataset {name!r}: the ranks' parts disagree: dtypes {dtypes}, trailing dims {trailing}"
        )
    if not pieces[0][5]:  # replicated: rank 0's copy is the dataset
        rank, shape, dtype = pieces[0][:3]
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(f"{rel}/rank-{rank:05d}.h5", name, shape=shape)
        out.create_virtual_dataset(name, layout)
        return
    explicit = pieces[0][3] is not None
    if explicit:
        gshape = pieces[0][4]
    else:
        gshape = (sum(p[1][0] for p in pieces), *pieces[0][1][1:])
    layout = h5py.VirtualLayout(shape=gshape, dtype=pieces[0][2])
    offset = 0
    for rank, shape, _dtype, start, _g, _d in sorted(pieces, key=lambda p: p[0]):
        lo = start if explicit else offset
        if shape[0]:
            layout[lo : lo + shape[0]] = h5py.VirtualSource(f"{rel}/rank-{rank:05d}.h5", name, shape=shape)
        offset += shape[0]
    out.create_virtual_dataset(name, layout, fillvalue=None)


def _datasets(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    import h5py

    found = []
    for key, obj in group.items():
        full = f"{prefix}/{key}" if prefix else key
        if isinstance(obj, h5py.Dataset):
            found.append((full, obj))
        elif isinstance(obj, h5py.Group):
            found.extend(_datasets(obj, full))
    return found


def _setstripe(path: Path, count: int | None, size: int | None) -> None:
    """Lay the new file out over ``count`` OSTs in ``size`` stripes before HDF5 creates it (Lustre only)."""
    from hpcx import _proc

    argv = ["lfs", "setstripe"]
    if count:
        argv += ["-c", str(count)]
    if size:
        argv += ["-S", str(size)]
    _proc.run([*argv, str(path)], timeout_s=60)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --- entry points --------------------------------------------------------------------------------------------


def create(path: str | os.PathLike[str], comm: Any = None, *, layout: str | None = None,
           alignment: int | None = None, stripe_count: int | None = None,
           stripe_size: int | None = None) -> SharedFile:  # fmt: skip
    """Create ``path`` for writing by every rank of ``comm`` (collective); see the module docstring.

    ``layout``: "auto" (default; also ``$HPCX_HDF5_LAYOUT``), "mpio" or "per-rank". ``alignment`` overrides
    the filesystem's block/stripe size; ``stripe_count``/``stripe_size`` apply on Lustre (``lfs setstripe``)
    and are ignored elsewhere. The file appears at ``path`` only after a successful ``close()``.
    """
    try:
        import h5py  # noqa: F401
    except ImportError as exc:
        raise RuntimeFailure("h5py is not installed", hint="pip install 'hpcx[runtime]'") from exc
    target = Path(path).absolute()
    if not target.parent.is_dir():
        raise UsageError(
            f"cannot create {target}: {target.parent} is not a directory", hint="create it first"
        )
    ranks = Collective.of(comm)
    requested = layout or os.environ.get(LAYOUT_ENV) or "auto"
    chosen, reason = _choose_layout(requested, ranks)
    fs = fs_info(target.parent)
    options = {"alignment": alignment, "stripe_count": stripe_count, "stripe_size": stripe_size}
    if chosen == "mpio":
        try:
            return SharedFile(target, ranks, "mpio", reason, fs, **options)
        except _MpioUnavailable as exc:
            if requested == "mpio":
                raise RuntimeFailure(
                    f"the mpio driver cannot create {target} on this {fs.fs_type} filesystem: {exc}",
                    hint="use layout='auto' or 'per-rank' to write one file per rank instead",
                ) from None
            chosen, reason = "per-rank", f"the mpio open failed on {fs.fs_type}: {exc}"
    return SharedFile(target, ranks, chosen, reason, fs, **options)


def open_shared(path: str | os.PathLike[str], mode: str, comm: Any) -> Any:
    """Open an existing or new ``path`` on every rank of ``comm`` with the mpio driver, tuned as ``create``
    tunes (a collective call; for reading back, or appending to, a file written by :func:`create`).

    Raises RuntimeFailure with the fix when h5py was built without MPI.
    """
    try:
        import h5py
    except ImportError as exc:
        raise RuntimeFailure("h5py is not installed", hint="pip install 'hpcx[runtime]'") from exc
    if not h5py.get_config().mpi:
        raise RuntimeFailure(
            f"h5py {h5py.__version__} was built without MPI, so {os.fspath(path)!r} cannot be shared by ranks",
            hint="rebuild it: CC=mpicc HDF5_MPI=ON pip install --no-build-isolation --no-binary=h5py h5py",
        )
    fs = fs_info(Path(path).absolute().parent)
    return h5py.File(path, mode, driver="mpio", comm=comm, info=_mpi_info(fs), **file_kwargs(fs))
