"""The terminal summary of a report: a few lines a person reads at a glance, then one row per rank."""

from __future__ import annotations

from typing import Any


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def render_text(report: dict[str, Any]) -> str:
    s = report["summary"]
    state = "finished" if s["all_finished"] else "still running or killed"
    failed = f", failed ranks: {s['failed_ranks']}" if s["failed_ranks"] else ""
    lines = [
        f"run {report['run_id']}  job {report['job_id']}  kind {report['kind']}",
        f"  {s['ranks']} ranks on {len(s['nodes'])} nodes ({', '.join(s['nodes'])}), {state}, "
        f"exit code {s['exit_code']}{failed}",
        f"  wall {s['wall_s']:.1f} s   CPU {s['cpu_s']:.1f} s   CPU efficiency {_pct(s['cpu_efficiency'])}",
        f"  peak memory {s['peak_rss_mb_max']:.0f} MB on the largest rank, {s['peak_rss_mb_sum']:.0f} MB in all",
        *_io_lines(report.get("io")),
        *_energy_lines(report.get("nodes", [])),
        "",
        f"  {'rank':>4}  {'node':<10} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'exit':>5}",
    ]
    for r in report["ranks"]:
        code = "-" if r["exit_code"] is None else str(r["exit_code"])
        lines.append(
            f"  {r['rank']:>4}  {str(r['node']):<10} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} "
            f"{r['peak_rss_mb']:>8.0f} {code:>5}"
        )
    return "\n".join(lines)


def _size(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes:.0f} B"


def _io_lines(io: dict[str, Any] | None) -> list[str]:
    if not io or not any(io["total"][op]["calls"] for op in ("read", "write")):
        return []
    parts = []
    for op in ("read", "write"):
        t = io["total"][op]
        if t["calls"]:
            rate = (
                f" at {t['bytes'] / 2**20 / t['seconds']:.0f} MiB/s per rank-second" if t["seconds"] else ""
            )
            parts.append(f"{op} {_size(t['bytes'])}{rate}")
    lines = [f"  I/O: {', '.join(parts)}"]
    for path, f in io.get("hdf5_files", {}).items():
        lines.append(f"  HDF5 {path}: {f['layout']} ({f['reason']})")
    return lines


def _energy_lines(nodes: list[dict[str, Any]]) -> list[str]:
    """One line per node: each energy figure measured, or unavailable with the reason (never a silent 0)."""
    lines = []
    for n in nodes:
        parts = []
        for name, e in n["energy"].items():
            if e["status"] == "unavailable":
                parts.append(f"{name} unavailable ({e['reason']})")
            else:
                parts.append(
                    f"{name} {e['energy_j'] / 1000:.2f} kJ ({e['method']}, {_pct(e['coverage'])} covered)"
                )
        lines.append(f"  energy {n['node']}: {'; '.join(parts)}")
    return lines
