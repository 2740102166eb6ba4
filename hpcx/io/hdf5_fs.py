"""The filesystem an HDF5 file is written to: what it is (type, block size, Lustre striping), how h5py and ROMIO
are tuned for it, and the room a write needs there. Used by :mod:`hpcx.io.hdf5`'s writer; no h5py or MPI is
imported until a function needs it."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.errors import RuntimeFailure

# Filesystems where POSIX/flock locking is missing, slow or wrong: HDF5's own file locking goes off there
# (h5py#1082, #1101), and ROMIO's data sieving, which takes byte-range locks, is disabled (h5py#673).
NETWORK_FS = frozenset(
    "nfs nfs4 lustre gpfs beegfs cifs smb3 ceph fuse.ceph-fuse fuse.sshfs wekafs panfs fuse.glusterfs orangefs".split()
)


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


def mpi_info(fs: FsInfo) -> Any:
    from mpi4py import MPI

    info = MPI.Info.Create()
    info.Set("romio_cb_write", "enable")  # two-phase collective buffering for the large slabs
    if fs.network:
        info.Set("romio_ds_write", "disable")  # data sieving takes locks that Lustre/NFS make slow or wrong
    if fs.stripe_count:
        info.Set("cb_nodes", str(fs.stripe_count))  # one aggregator per OST
    return info


def transfer_mode() -> str:
    """Collective transfers (two-phase buffering: a few aggregators write large aligned pieces, which is what
    Lustre and GPFS need at scale, NERSC measured 2x) unless ``HPCX_HDF5_TRANSFER=independent``. Measured here
    on one ext4 disk, 4 ranks and 256 MiB, collective and independent were within the run-to-run noise under
    both OMPIO and ROMIO (performance.md), so nothing is lost by the default on a single node."""
    forced = os.environ.get("HPCX_HDF5_TRANSFER")
    return forced if forced in ("collective", "independent") else "collective"


def setstripe(path: Path, count: int | None, size: int | None) -> None:
    """Lay the new file out over ``count`` OSTs in ``size`` stripes before HDF5 creates it (Lustre only)."""
    from hpcx import _proc

    argv = ["lfs", "setstripe"]
    if count:
        argv += ["-c", str(count)]
    if size:
        argv += ["-S", str(size)]
    _proc.run([*argv, str(path)], timeout_s=60)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def metadata_margin(fs: FsInfo) -> int:
    """Room a dataset needs beyond its data: object headers, the superblock, and padding to the alignment."""
    return 64 * 1024 + 2 * fs.alignment


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def write_failed(path: Path, what: str, exc: BaseException) -> RuntimeFailure:
    try:
        free = gib(shutil.disk_usage(path.parent).free)
    except OSError:
        free = "unknown"
    errno = getattr(exc, "errno", None)
    why = os.strerror(errno) if errno else (str(exc).splitlines() or [type(exc).__name__])[0]
    return RuntimeFailure(
        f"writing {what} to {path} failed: {why} ({free} free on {path.parent})",
        hint="free space or choose another directory; no file was left at that path",
    )
