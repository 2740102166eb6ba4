"""How each headline number of a report was obtained: the report's ``methods`` section and its table on the page.

Every number is one of: ``counter`` (a cumulative count the kernel, a sensor or Slurm keeps, read at the ends or
at window edges), ``sampled`` (a gauge read every interval: a peak between two samples may be missed unless the
kernel's own peak is read beside it), ``measured`` (hpcx timed it itself: a clock around the call or the
thread), ``derived`` (computed from other numbers of the report, the rule named) or ``estimated`` (a model of
something not measured, its assumption named). The source says where it was read. A number the report does
not have (null) gets no entry.
"""

from __future__ import annotations

from html import escape
from typing import Any

Label = tuple[str, str]


def _summary_labels(s: dict[str, Any], from_ranks: bool) -> dict[str, Label]:
    ranks = "hpcx.run per rank"
    return {
        "summary.wall_s": ("measured", f"{ranks}: the rank's start to its exit, the longest rank")
        if from_ranks
        else ("counter", "sacct Elapsed"),
        "summary.cpu_s": (
            "counter",
            f"{ranks}: user + system time of the rank's process tree (the kernel's rusage at exit; the last "
            "sample of /proc/PID/stat for a rank that did not exit), summed over ranks",
        )
        if from_ranks
        else ("counter", "sacct TotalCPU"),
        "summary.cpu_efficiency": ("derived", "cpu_s / (ranks x cpus_per_task x wall_s)"),
        "summary.cpu_efficiency_slurm": ("derived", "sacct TotalCPU / (Elapsed x AllocCPUS)"),
        "summary.peak_rss_mb_max": (
            "sampled",
            "the rank's process tree's RSS every interval, and the largest process's VmHWM (the kernel's "
            "peak, so a spike between samples counts); the largest rank",
        ),
        "summary.peak_rss_mb_sum": (
            "derived",
            "the ranks' peaks added (an upper bound: they need not coincide)",
        ),
        "summary.mem_peak_mb": ("derived", f"the node's ranks' peaks added, {s.get('mem_peak_source')}"),
        "summary.elapsed_s": ("counter", "sacct Elapsed")
        if s.get("state_source") == "sacct"
        else ("measured", f"{ranks}: the longest rank"),
        "summary.energy_j": (
            "counter",
            "the nodes' energy counters (RAPL package and DRAM, NVML total energy) at window edges, the job's "
            "own only (RAPL on a node shared with other jobs is left out)",
        ),
        "summary.comm_share": ("derived", "comm.seconds / the ranks' wall time"),
        "summary.gpu_util_mean_pct": ("sampled", "NVML utilisation every interval, averaged"),
        "summary.gpu_mem_used_peak_mb": ("sampled", "NVML used memory of the whole device, every interval"),
        "summary.gpu_alloc_peak_mb": (
            "counter",
            "torch's allocator peak (max_memory_allocated) in hpcx regions",
        ),
        "summary.profiler_share": (
            "measured",
            "the sampler threads' CPU time / the CPU time allocated to the ranks",
        ),
        "summary.carbon_g": (
            "estimated",
            "energy x PUE x the site's carbon intensity (site file's energy block)",
        ),
        "summary.slowest_rank_busy_s": ("derived", "the rank's wall time - its seconds in traced calls"),
    }


def _comm_labels(report: dict[str, Any]) -> dict[str, Label]:
    comm = report.get("comm") or {}
    out: dict[str, Label] = {
        "comm.seconds": (
            "measured",
            "a clock around each traced mpi4py and torch.distributed call (async calls to their completion; NCCL "
            "calls by CUDA events on the stream), DDP's buckets from the hook to their future's completion",
        ),
        "comm.share": ("derived", "comm.seconds / the ranks' wall time"),
    }
    if comm.get("ddp"):
        out["comm.ddp.hidden_share"] = (
            "derived",
            f"the buckets' communication before the last bucket was ready / all of it ({comm['ddp'].get('overlap_timing')} "
            "timing)",
        )
    prof = report.get("profiler") or {}
    if prof.get("comm_added_s") is not None:
        method = str(prof.get("comm_method") or "")
        out["profiler.comm_added_s"] = ("measured" if method.startswith("measured") else "estimated", method)
    return out


def _other_labels(report: dict[str, Any]) -> dict[str, Label]:
    out: dict[str, Label] = {}
    io = report.get("io") or {}
    if io.get("process"):
        out["io.process"] = (
            "counter",
            "/proc/PID/io of every process of the rank (rchar, wchar, syscr, syscw; read_bytes, write_bytes for "
            "the storage layer), sampled with the rest and taken again when the rank is reaped",
        )
    if any(r.get("gpu_memory") for r in report.get("ranks") or []):
        out["ranks.gpu_memory"] = (
            "counter",
            "at the rank's exit: torch's allocator peaks per device, and NVML's memory for the process id",
        )
    if (report.get("comm") or {}).get("energy"):
        out["comm.energy"] = (
            "derived",
            "node energy per window x the node's share of rank time in traced calls",
        )
    return out


def _value(report: dict[str, Any], path: str) -> Any:
    node: Any = report
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def number_methods(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The ``methods`` section: per number present in ``report`` (a dotted path), its method and source."""
    s = report.get("summary") or {}
    labels = {
        **_summary_labels(s, bool(report.get("ranks"))),
        **_comm_labels(report),
        **_other_labels(report),
    }
    present = {
        path: {"method": method, "source": source}
        for path, (method, source) in labels.items()
        if path == "ranks.gpu_memory" or _value(report, path) not in (None, [], {})
    }
    return dict(sorted(present.items()))


def methods_table(methods: dict[str, dict[str, str]] | None) -> str:
    """The page's table of how each number was obtained."""
    if not methods:
        return '<p class="na">no numbers to label</p>'
    rows = "".join(
        f"<tr><td><code>{escape(path)}</code></td><td>{escape(m['method'])}</td><td>{escape(m['source'])}</td></tr>"
        for path, m in methods.items()
    )
    return f"<table><thead><tr><th>number</th><th>how</th><th>source</th></tr></thead><tbody>{rows}</tbody></table>"
