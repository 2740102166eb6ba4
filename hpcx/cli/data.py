"""data info: what an HDF5 file holds and a fingerprint of its values (see hpcx.io.info)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.io.info import inspect

FINGERPRINT_SHOWN = 16  # hex digits per dataset in the table; --json has all 64


@cli.group()
def data() -> None:
    """Inspect data files."""


@data.command("info")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--quick", is_flag=True, help="Hash only the first and last 4 MiB of each large dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print one versioned JSON document (as hpcx --json).")
@pass_ctx
def data_info(obj: Ctx, file: Path, quick: bool, as_json: bool) -> None:
    """FILE's datasets (shape, dtype, layout, chunks, filters, sizes), links, and a fingerprint of its values
    that does not change with chunking, compression or layout. See docs/user.md."""
    obj.json = obj.json or as_json
    obj.emit("data.info", inspect(file, quick=quick), render_info)


def render_info(doc: dict[str, Any]) -> str:
    """The file line, the fingerprint, one table row per dataset, then virtual sources, links and errors."""
    fp = doc["fingerprint"]
    lines = [
        f"{doc['file']}: {_size(doc['size_bytes'])}, {_count(len(doc['datasets']), 'dataset')}, "
        f"{_count(doc['groups'], 'group')}; "
        f"superblock v{doc['superblock_version']}, libver {'..'.join(doc['libver'])}, "
        f"userblock {_size(doc['userblock_bytes'])}",
        f"content fingerprint ({fp['mode']}): {fp['sha256'] or 'none: ' + fp['error']}",
    ]
    header = (
        "DATASET",
        "SHAPE",
        "DTYPE",
        "LAYOUT",
        "CHUNKS",
        "FILTERS",
        "STORED",
        "LOGICAL",
        "ATTRS",
        "FINGERPRINT",
    )
    rows = [header] + [_row(d) for d in doc["datasets"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    for d in doc["datasets"]:
        lines += _notes(d)
    lines += [
        f"{link['path']} -> {_target(link)} ({link['type']} link, not followed)" for link in doc["links"]
    ]
    return "\n".join(lines)


def _row(d: dict[str, Any]) -> tuple[str, ...]:
    fp = d["fingerprint"]
    digest = fp["sha256"][:FINGERPRINT_SHOWN] + ("" if fp["mode"] == "full" else " (sampled)")
    filters = ",".join(
        f["name"] + (f"({','.join(map(str, f['options']))})" if f["options"] else "") for f in d["filters"]
    )
    return (
        d["path"],
        "null" if d["shape"] is None else "x".join(map(str, d["shape"])) or "scalar",
        d["dtype"],
        d["layout"],
        "x".join(map(str, d["chunks"])) if d["chunks"] else "-",
        filters or "-",
        _size(d["storage_bytes"]),
        "-" if d["logical_bytes"] is None else _size(d["logical_bytes"]),
        str(d["attributes"]),
        digest if fp["sha256"] else "error",
    )


def _notes(d: dict[str, Any]) -> list[str]:
    """Lines under the table for a dataset: its virtual sources and why it has no fingerprint."""
    notes = []
    if "virtual_sources" in d:
        shown = ", ".join(f"{s['file']}:{s['dataset']}" for s in d["virtual_sources"])
        more = d["virtual_sources_total"] - len(d["virtual_sources"])
        notes.append(f"{d['path']}: virtual, sources {shown}" + (f" and {more} more" if more > 0 else ""))
    if d["fingerprint"]["sha256"] is None:
        notes.append(f"{d['path']}: no fingerprint: {d['fingerprint']['error']}")
    return notes


def _target(link: dict[str, Any]) -> str:
    return f"{link['file']}:{link['target']}" if link["type"] == "external" else link["target"]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _size(nbytes: int) -> str:
    """Bytes as a person reads them: 812 B, 4.2 KiB, 1.5 GiB."""
    if nbytes < 1024:
        return f"{nbytes} B"
    exponent = min(int(math.log(nbytes, 1024)), 4)
    return f"{nbytes / 1024**exponent:.1f} {('KiB', 'MiB', 'GiB', 'TiB')[exponent - 1]}"
