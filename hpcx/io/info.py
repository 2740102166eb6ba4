"""What an HDF5 file holds, and a fingerprint of its values that does not depend on how they are stored.

``inspect`` lists every dataset (shape, dtype, layout, chunks, filters, fill value, sizes, attributes, the
source files of a virtual dataset) and the soft and external links, which it reports without following.
It also fingerprints the *values*: two files with the same datasets and values fingerprint equal whatever
their chunking, compression, byte order, compound padding or layout (a virtual dataset stitched from per-rank
files equals one plain dataset), and any changed value changes the fingerprint. Reading streams in blocks of
``BLOCK_BYTES`` (or one row of chunks, up to ``CHUNK_ROW_BYTES``), so memory stays bounded whatever the file's
size.

Fingerprint (scheme ``hpcx.h5content/1``), per dataset: sha256 over
``SCHEME NUL dtype-tag NUL shape NUL [sampled NUL SAMPLE_BYTES NUL]`` and then the values in C order, numbers
little-endian, compounds packed field by field, each variable-length value as its 8-byte little-endian length
followed by its bytes (strings as stored, sequences as their values, references as the target's path).
The file's: sha256 over ``SCHEME LF`` and one ``path NUL dataset-sha256 LF`` per dataset, sorted by path.
Attributes and links are not part of it. A ``sampled`` fingerprint covers the dtype, the shape and the first
and last blocks of ``SAMPLE_BYTES``; a dataset no larger than two such blocks is always hashed in full.

Used by the login-side CLI and by provenance at submission: h5py and numpy are imported inside functions.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcx.errors import UsageError

if TYPE_CHECKING:
    import h5py
    import numpy as np

SCHEME = "hpcx.h5content/1"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
BLOCK_BYTES = 32 << 20  # one read in full mode; aligned to whole chunks along the split axis
SAMPLE_BYTES = 4 << 20  # --quick: the first and the last block of this size
CHUNK_ROW_BYTES = 256 << 20  # a block may grow to one row of chunks this large (tall chunks, wide arrays)
CHUNK_CACHE_BYTES = 64 << 20  # so a block that cuts through chunks does not decompress them again and again
CHUNK_CACHE_SLOTS = 100_003  # a prime well above the chunk count the cache can hold
VARIABLE_BLOCK_VALUES = 1 << 16  # per block, for strings and other variable-length values
SOURCES_SHOWN = 50
# What h5py raises for values it cannot read (a filter plugin that is not installed, an unsupported type).
READ_ERRORS = (
    OSError,
    RuntimeError,
    TypeError,
    ValueError,
    KeyError,
)  # a virtual dataset over thousands of rank files lists the first ones only


def is_hdf5(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts with the HDF5 signature, at byte 0 or after a user block (512, 1024, 2048,
    ... bytes); reads a few bytes, never the file's name, and needs no h5py."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        offset = 0
        while offset + len(HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def inspect(
    path: str | os.PathLike[str], *, quick: bool = False, full_limit_bytes: int | None = None
) -> dict[str, Any]:
    """The file's datasets, links and content fingerprint (see the module docstring for its definition).

    ``quick`` samples each large dataset instead of reading it all; so does a file whose datasets add up to
    more than ``full_limit_bytes`` (logical or stored, whichever is larger). A dataset that cannot be read (a
    missing filter plugin, a virtual source file that is not there) gets an ``error`` instead of a fingerprint,
    and so does the file. Raises UsageError when ``path`` is missing, unreadable or not an HDF5 file."""
    file = _checked(Path(path))
    h5py = _h5py(file)
    try:
        handle = h5py.File(file, "r", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=CHUNK_CACHE_SLOTS)
    except OSError as exc:
        raise UsageError(
            f"{file} has an HDF5 signature but HDF5 cannot open it ({exc})",
            hint="it may be truncated or still being written; check it with h5dump -H",
        ) from exc
    with handle as f:
        try:
            datasets, links, groups = _walk(f)
            described = [describe_dataset(ds, name, file) for name, ds in datasets]
        except READ_ERRORS as exc:  # a damaged object header, a datatype h5py has no NumPy type for
            raise UsageError(
                f"cannot read the structure of {file} ({exc})", hint="check it with h5dump -H"
            ) from exc
        total = sum(max(d["logical_bytes"] or 0, d["storage_bytes"]) for d in described)
        sampled = quick or (full_limit_bytes is not None and total > full_limit_bytes)
        fingerprints: dict[Any, dict[str, Any]] = {}  # one read per object, however many hard links name it
        for (_, ds), doc in zip(datasets, described):
            if ds not in fingerprints:
                fingerprints[ds] = _guarded_fingerprint(ds, doc, sampled)
            doc["fingerprint"] = fingerprints[ds]
        return {
            "file": str(file),
            "size_bytes": file.stat().st_size,
            "userblock_bytes": f.userblock_size,
            "superblock_version": f.id.get_create_plist().get_version()[0],
            "libver": list(f.libver),
            "hdf5_version": h5py.version.hdf5_version,
            "fingerprint": file_fingerprint(described),
            "groups": groups,
            "datasets": described,
            "links": links,
        }


def _checked(file: Path) -> Path:
    """``file``, absolute, once it is known to be a readable HDF5 file; UsageError naming it otherwise."""
    file = file.absolute()
    if not file.exists():
        raise UsageError(f"{file} does not exist", hint="check the path")
    if file.is_dir():
        raise UsageError(f"{file} is a directory", hint="give one HDF5 file")
    try:
        found = is_hdf5(file)
    except OSError as exc:
        raise UsageError(
            f"cannot read {file}: {exc.strerror or exc}", hint="check its permissions (ls -l)"
        ) from exc
    if not found:
        raise UsageError(
            f"{file} is not an HDF5 file (no HDF5 signature at its start)",
            hint="give a file written by HDF5 (h5py, netCDF-4, ...)",
        )
    return file


def _h5py(file: Path) -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise UsageError(
            f"reading {file} needs h5py, which this Python cannot import ({exc})",
            hint="pip install 'hpcx[runtime]'",
        ) from exc
    return h5py


# --- structure -----------------------------------------------------------------------------------------------


def _walk(f: h5py.File) -> tuple[list[tuple[str, h5py.Dataset]], list[dict[str, Any]], int]:
    """Every dataset reached through hard links, sorted by path; soft and external links as reported, never
    followed; and the number of groups. A group reached again (a hard link cycle) is listed, not entered."""
    import h5py

    datasets, links = [], []
    seen: dict[Any, str] = {f["/"]: "/"}
    pending = [("", f)]
    while pending:
        prefix, group = pending.pop()
        for name in group:
            path = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.SoftLink):
                links.append({"path": path, "type": "soft", "target": link.path})
            elif isinstance(link, h5py.ExternalLink):
                links.append({"path": path, "type": "external", "file": link.filename, "target": link.path})
            elif isinstance(obj := group[name], h5py.Dataset):
                datasets.append((path, obj))
            elif isinstance(obj, h5py.Group) and obj in seen:
                links.append({"path": path, "type": "hard", "target": seen[obj]})
            elif isinstance(obj, h5py.Group):
                seen[obj] = path
                pending.append((path, obj))
    return sorted(datasets, key=lambda pair: pair[0]), sorted(links, key=lambda d: d["path"]), len(seen) - 1


def describe_dataset(ds: h5py.Dataset, path: str, file: Path) -> dict[str, Any]:
    """Shape, dtype, storage layout, filters, fill value, sizes and attribute count of ``ds``; a virtual
    dataset adds its source files, each with whether it is there (HDF5 reads fill values where it is not)."""
    import h5py

    dcpl = ds.id.get_create_plist()
    layout = {
        h5py.h5d.COMPACT: "compact",
        h5py.h5d.CONTIGUOUS: "contiguous",
        h5py.h5d.CHUNKED: "chunked",
        h5py.h5d.VIRTUAL: "virtual",
    }.get(dcpl.get_layout(), "unknown")
    fixed_size = not ds.dtype.hasobject  # variable-length values have no logical size short of reading them
    doc: dict[str, Any] = {
        "path": path,
        "shape": None if ds.shape is None else list(ds.shape),
        "dtype": dtype_tag(ds.dtype, keep_order=True),
        "layout": layout,
        "chunks": list(ds.chunks) if ds.chunks else None,
        "filters": [_filter(dcpl.get_filter(i)) for i in range(dcpl.get_nfilters())],
        "compression": ds.compression,
        "compression_opts": _jsonable(ds.compression_opts),
        "fill_value": _guarded_jsonable(lambda: ds.fillvalue),
        "fill_time": {
            h5py.h5d.FILL_TIME_IFSET: "ifset",
            h5py.h5d.FILL_TIME_ALLOC: "alloc",
            h5py.h5d.FILL_TIME_NEVER: "never",
        }.get(dcpl.get_fill_time()),
        "storage_bytes": ds.id.get_storage_size(),
        "logical_bytes": (ds.size or 0) * ds.dtype.itemsize if fixed_size else None,
        "attributes": len(ds.attrs),
    }
    if dcpl.get_external_count():
        doc["external_storage"] = [
            os.fsdecode(dcpl.get_external(i)[0]) for i in range(dcpl.get_external_count())
        ]
    if layout == "virtual":
        sources = _virtual_sources(ds, file)
        doc["virtual_sources_total"] = len(sources)
        doc["virtual_sources"] = sources[:SOURCES_SHOWN]
        doc["virtual_sources_missing"] = [s for s in sources if s["found"] is False][:SOURCES_SHOWN]
    return doc


def _filter(entry: tuple[int, int, tuple[int, ...], bytes]) -> dict[str, Any]:
    code, _flags, values, name = entry
    return {"id": code, "name": name.decode(errors="replace"), "options": list(values)}


def _virtual_sources(ds: h5py.Dataset, file: Path) -> list[dict[str, Any]]:
    """The distinct (file, dataset) pairs a virtual dataset maps, with ``found``: whether that file holds that
    dataset (None for a printf-style name such as ``rank-%b.h5``, which names many files)."""
    import h5py

    pairs = list(dict.fromkeys((m.file_name, m.dset_name) for m in ds.virtual_sources()))
    sources = []
    for name, dataset in pairs:
        where = _source_file(name, file)
        found: bool | None = None if "%" in name else False
        if where is not None:
            try:
                with h5py.File(where, "r") as src:
                    found = dataset in src
            except OSError:
                found = False
        sources.append(
            {"file": name, "dataset": dataset, "resolved": str(where) if where else None, "found": found}
        )
    return sources


def _source_file(name: str, file: Path) -> Path | None:
    """Where HDF5 looks for a virtual dataset's source file: HDF5_VDS_PREFIX, the virtual file's directory,
    then the working directory; ``.`` is the virtual file itself. None when none of them has it."""
    if name == ".":
        return file
    if "%" in name or os.path.isabs(name):
        return Path(name) if os.path.isfile(name) else None
    prefixes = os.environ.get("HDF5_VDS_PREFIX", "").replace("${ORIGIN}", str(file.parent)).split(":")
    for folder in [*filter(None, prefixes), str(file.parent), os.getcwd()]:
        if os.path.isfile(candidate := os.path.join(folder, name)):
            return Path(candidate)
    return None


# --- fingerprints --------------------------------------------------------------------------------------------


def file_fingerprint(datasets: list[dict[str, Any]]) -> dict[str, Any]:
    """The file's fingerprint from its datasets' (described, each with its ``fingerprint``): None, with an
    ``error``, when any of them could not be read."""
    modes = {d["fingerprint"].get("mode") for d in datasets}
    doc: dict[str, Any] = {"scheme": SCHEME, "mode": "sampled" if "sampled" in modes else "full"}
    failed = [d for d in datasets if d["fingerprint"]["sha256"] is None]
    if failed:
        more = f" (and {len(failed) - 1} more datasets)" if len(failed) > 1 else ""
        return {
            **doc,
            "sha256": None,
            "error": f"{failed[0]['path']}: {failed[0]['fingerprint']['error']}{more}",
        }
    digest = hashlib.sha256(f"{SCHEME}\n".encode())
    for d in sorted(datasets, key=lambda d: d["path"]):
        digest.update(f"{d['path']}\0{d['fingerprint']['sha256']}\n".encode())
    return {**doc, "sha256": digest.hexdigest()}


def _guarded_fingerprint(ds: h5py.Dataset, doc: dict[str, Any], sampled: bool) -> dict[str, Any]:
    missing = doc.get("virtual_sources_missing")
    if missing:
        where = f"{missing[0]['file']}:{missing[0]['dataset']}"
        return {"sha256": None, "error": f"virtual source {where} is missing (HDF5 would read fill values)"}
    try:
        return dataset_fingerprint(ds, sampled=sampled)
    except READ_ERRORS as exc:
        return {"sha256": None, "error": f"cannot read its values: {exc}"}


def dataset_fingerprint(ds: h5py.Dataset, *, sampled: bool = False) -> dict[str, Any]:
    """``{"sha256", "mode"}`` of ``ds``'s values: ``full``, or ``sampled`` (dtype, shape, first and last
    ``SAMPLE_BYTES`` block) when ``sampled`` and the dataset is larger than two such blocks."""
    import numpy as np

    shape = ds.shape
    mode = "full"
    header = [SCHEME, dtype_tag(ds.dtype), "null" if shape is None else ",".join(map(str, shape))]
    if shape is None or 0 in shape:
        blocks: list[tuple[Any, ...]] | Iterator[tuple[Any, ...]] = []
    elif shape == ():
        blocks = [()]
    else:
        budget = SAMPLE_BYTES if sampled else BLOCK_BYTES
        if ds.dtype.hasobject:  # a variable-length value costs far more memory than its itemsize
            budget = min(budget, VARIABLE_BLOCK_VALUES * ds.dtype.itemsize)
        axis, step = _plan(shape, ds.dtype.itemsize, budget, None if sampled else ds.chunks)
        blocks = _blocks(shape, axis, step)
        if sampled and math.prod(shape[:axis]) * -(-shape[axis] // step) > 2:
            mode = "sampled"
            header += [mode, str(SAMPLE_BYTES)]
            last = (shape[axis] - 1) // step * step
            blocks = [next(blocks), (*(n - 1 for n in shape[:axis]), slice(last, shape[axis]))]
    digest = hashlib.sha256("\0".join(header).encode() + b"\0")
    for selection in blocks:
        values = np.asarray(ds[selection], dtype=ds.dtype)  # a scalar read gives a Python or numpy scalar
        _hash_values(digest, values, ds)
    return {"sha256": digest.hexdigest(), "mode": mode}


def _plan(
    shape: tuple[int, ...], itemsize: int, budget_bytes: int, chunks: tuple[int, ...] | None
) -> tuple[int, int]:
    """How to cut ``shape`` into blocks of at most ``budget_bytes`` (or one element): the axis to cut along
    (whole trailing axes after it, single indices before it) and the slab length along it. With ``chunks`` the
    slab is whole chunks long, up to a row of chunks of ``CHUNK_ROW_BYTES``, so HDF5 decompresses each chunk
    once instead of once per block that cuts through it."""
    axis = 0
    while axis < len(shape) - 1 and math.prod(shape[axis + 1 :]) * itemsize > budget_bytes:
        axis += 1
    row_bytes = max(1, math.prod(shape[axis + 1 :]) * itemsize)
    step = max(1, budget_bytes // row_bytes)
    if chunks and step >= chunks[axis]:
        step -= step % chunks[axis]
    elif chunks and chunks[axis] * row_bytes <= CHUNK_ROW_BYTES:
        step = chunks[axis]
    return axis, step


def _blocks(shape: tuple[int, ...], axis: int, step: int) -> Iterator[tuple[Any, ...]]:
    """The selections of the plan in C order: read one after the other they give the values' C-order bytes,
    whatever the plan, so the hash does not depend on the block size or the chunking."""
    for prefix in itertools.product(*map(range, shape[:axis])):
        for start in range(0, shape[axis], step):
            yield (*prefix, slice(start, min(start + step, shape[axis])))


def _hash_values(digest: Any, values: np.ndarray, ds: h5py.Dataset) -> None:
    """Feed ``values`` in canonical form: fixed-size types as packed little-endian bytes (one pass, no
    per-element Python), anything holding variable-length data element by element."""
    import numpy as np

    if not values.dtype.hasobject:
        canonical = canonical_dtype(values.dtype)
        digest.update(np.ascontiguousarray(values if values.dtype == canonical else values.astype(canonical)))
        return
    digest.update(b"".join(_element_bytes(v, values.dtype, ds) for v in values.reshape(-1)))


def _element_bytes(value: Any, dt: np.dtype, ds: h5py.Dataset) -> bytes:
    import numpy as np

    if dt.names:
        return b"".join(_element_bytes(value[n], _field_dtype(dt, n), ds) for n in dt.names)
    if dt.subdtype:
        return b"".join(_element_bytes(v, dt.subdtype[0], ds) for v in np.asarray(value).reshape(-1))
    if not dt.hasobject:
        return np.asarray(value, dtype=dt).astype(canonical_dtype(dt)).tobytes()
    raw = _variable_bytes(value, dt, ds)
    return len(raw).to_bytes(8, "little") + raw


def _variable_bytes(value: Any, dt: np.dtype, ds: h5py.Dataset) -> bytes:
    """One variable-length value: a string's bytes, a sequence's values, a reference's target path."""
    import h5py
    import numpy as np

    if h5py.check_string_dtype(dt) is not None:
        return value.encode() if isinstance(value, str) else bytes(value)
    base = h5py.check_vlen_dtype(dt)
    if base is not None:
        items = np.asarray(value, dtype=base)
        if not base.hasobject:
            return items.astype(canonical_dtype(base)).tobytes()
        return b"".join(_element_bytes(v, base, ds) for v in items.reshape(-1))
    if h5py.check_ref_dtype(dt) is not None:
        return ds.file[value].name.encode() if value else b""
    raise TypeError(f"values of dtype {dt} cannot be fingerprinted")


def _field_dtype(dt: np.dtype, name: str) -> np.dtype:
    """The dtype of field ``name`` of the compound ``dt``."""
    fields = dt.fields
    assert fields is not None  # only called for a name in dt.names: dt is a compound, which has fields
    return fields[name][0]


def canonical_dtype(dt: np.dtype) -> np.dtype:
    """``dt`` little-endian and, for a compound, packed (no padding, whose bytes are undefined), recursively:
    the form the fingerprint hashes, so byte order and alignment in the file do not change it."""
    import numpy as np

    if dt.names:
        return np.dtype([(n, canonical_dtype(_field_dtype(dt, n))) for n in dt.names])
    if dt.subdtype:
        return np.dtype((canonical_dtype(dt.subdtype[0]), dt.subdtype[1]))
    return dt.newbyteorder("<")


def dtype_tag(dt: np.dtype, *, keep_order: bool = False) -> str:
    """A short, stable name of ``dt``: ``<f8``, ``|S8``, ``str:utf-8``, ``vlen:<i4``, ``ref``,
    ``{x:<f4,n:<i8}``, ``<f4[3]``; little-endian unless ``keep_order`` (the fingerprint uses the canonical
    form, the listing shows what the file stores)."""
    import h5py

    if dt.names:
        fields = ",".join(f"{n}:{dtype_tag(_field_dtype(dt, n), keep_order=keep_order)}" for n in dt.names)
        return "{" + fields + "}"
    if dt.subdtype:
        base, shape = dt.subdtype
        return f"{dtype_tag(base, keep_order=keep_order)}{list(shape)}"
    if not dt.hasobject:
        return dt.str if keep_order else dt.newbyteorder("<").str
    if (string := h5py.check_string_dtype(dt)) is not None:
        return f"str:{string.encoding}"
    if (base := h5py.check_vlen_dtype(dt)) is not None:
        return f"vlen:{dtype_tag(base, keep_order=keep_order)}"
    return "ref" if h5py.check_ref_dtype(dt) is not None else "object"


def _guarded_jsonable(read: Any) -> Any:
    try:
        return _jsonable(read())
    except (OSError, TypeError, ValueError):  # some fill values (variable-length ones) h5py cannot give
        return None


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: numpy scalars as numbers, bytes as text, NaN and infinities as text."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
