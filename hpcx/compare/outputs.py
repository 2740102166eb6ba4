"""The written report: compare.json, the plots, compare.md and compare.html under --out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcx.compare.html_page import render_html
from hpcx.compare.markdown import render_markdown
from hpcx.compare.plots import plot


def write_outputs(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """compare.json, the plots (groups and differences, SVG and PDF), compare.md and compare.html (one
    self-contained file, the SVG plots inlined) under ``out_dir``."""
    from hpcx.fsutil import atomic_write, atomic_write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_json(out_dir / "compare.json", doc)]
    plots = plot(doc, out_dir)
    written += plots
    written.append(atomic_write(out_dir / "compare.md", render_markdown(doc, [p.name for p in plots])))
    svgs = {p.stem: p.read_text() for p in plots if p.suffix == ".svg"}
    written.append(atomic_write(out_dir / "compare.html", render_html(doc, svgs)))
    return written
