"""Which other jobs shared the job's nodes while it ran: RAPL counts the whole CPU package and its DRAM, every
job's on the node, so on a shared node that energy is not the job's own. Pure over sacct's rows (the query is
:func:`hpcx.schedulers.slurm.jobs_on_nodes`)."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Any

# RAPL's figures: whole package and DRAM, never per job.
RAPL_SOURCES = ("cpu_package", "dram")
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def expand_nodelist(text: str) -> list[str]:
    """Slurm's compressed node list as names: ``n[1-3,7],gpu01`` -> ``n1 n2 n3 n7 gpu01`` (zero padding kept:
    ``c[08-10]`` -> ``c08 c09 c10``). ``None assigned`` and empty text give no names."""
    names: list[str] = []
    for part in _top_level_parts(text.strip()):
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", part)
        if not m:
            if part and " " not in part and part != "None":
                names.append(part)
            continue
        prefix, ranges, suffix = m.groups()
        for item in ranges.split(","):
            r = _RANGE.match(item)
            if not r:
                continue
            lo, hi = r.group(1), r.group(2) or r.group(1)
            names += [f"{prefix}{i:0{len(lo)}d}{suffix}" for i in range(int(lo), int(hi) + 1)]
    return names


def compress_nodelist(names: Iterable[str]) -> str:
    """Node names as Slurm writes them: ``n1 n2 n3 n7 gpu01`` -> ``n[1-3,7],gpu01`` (the inverse of
    :func:`expand_nodelist`; names that share a prefix and a number's width go in one bracket)."""
    groups: dict[tuple[str, int], list[int]] = {}
    plain: list[str] = []
    for name in dict.fromkeys(names):
        m = re.fullmatch(r"(.*?)(\d+)", name)
        if m:
            groups.setdefault((m.group(1), len(m.group(2))), []).append(int(m.group(2)))
        else:
            plain.append(name)
    parts = []
    for (prefix, width), numbers in groups.items():
        numbers = sorted(set(numbers))
        if len(numbers) == 1:
            parts.append(f"{prefix}{numbers[0]:0{width}d}")
            continue
        ranges = []
        for _, run in itertools.groupby(enumerate(numbers), lambda p: p[1] - p[0]):
            nums = [v for _, v in run]
            lo, hi = f"{nums[0]:0{width}d}", f"{nums[-1]:0{width}d}"
            ranges.append(lo if lo == hi else f"{lo}-{hi}")
        parts.append(f"{prefix}[{','.join(ranges)}]")
    return ",".join([*parts, *plain])


def _top_level_parts(text: str) -> list[str]:
    """``n[1-2,4],m1`` -> ``n[1-2,4]``, ``m1``: split at the commas outside brackets."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p for p in [*parts, current] if p]


def _time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):  # "Unknown" (not ended yet), "None"
        return None


def shared_jobs(
    rows: Iterable[dict[str, str]], own_ids: Sequence[str], nodes: Sequence[str], start: str, end: str
) -> dict[str, list[str]]:
    """Per node of ``nodes``, the other jobs (sacct's JobID, array tasks as ``JOB_INDEX``) that ran on it at some
    moment between ``start`` and ``end``; a job still running counts to the window's end. ``own_ids``: the run's
    own job ids (an array task of one of them is its own too)."""
    t0, t1 = _time(start), _time(end)
    own = {str(i) for i in own_ids}
    out: dict[str, list[str]] = {n: [] for n in nodes}
    if t0 is None or t1 is None:
        return out
    for row in rows:
        job = row.get("JobID", "")
        if job.split("_")[0].split("+")[0] in own or job in own:
            continue
        a, b = _time(row.get("Start", "")), _time(row.get("End", "")) or t1
        if a is None or not (a < t1 and b > t0):
            continue  # never started, or outside the window
        for node in expand_nodelist(row.get("NodeList", "")):
            if node in out and job not in out[node]:
                out[node].append(job)
    return out


def scope_text(others: int) -> str:
    """How a RAPL figure on a node shared with ``others`` jobs is labelled."""
    return f"whole package, node shared with {others} other job{'s' if others != 1 else ''}"


def mark_shared(nodes: list[dict[str, Any]], shared: dict[str, list[str]] | None) -> float:
    """Label each node of the report with the jobs it was shared with (``shared_jobs``; absent when unknown)
    and each of its measured RAPL figures with its ``scope``; return the joules of those figures, which are
    the node's, not the job's."""
    if shared is None:
        return 0.0
    left_out = 0.0
    for n in nodes:
        others = shared.get(str(n["node"]))
        if others is None:
            continue
        n["shared_jobs"] = list(others)
        for name in RAPL_SOURCES:
            e = n["energy"].get(name)
            if others and e and e.get("status") == "measured":
                e["scope"] = scope_text(len(others))
                left_out += e["energy_j"]
    return left_out


def is_jobs_own(name: str, energy: dict[str, Any]) -> bool:
    """Whether a node's energy figure counts as the job's: measured, and not RAPL on a shared node."""
    return energy.get("status") == "measured" and "scope" not in energy


def _window(accounting: dict[str, Any] | None) -> tuple[list[str], str, str] | None:
    """The nodes of the jobs in ``accounting`` and the window from their first start to their last end (now
    for one still running); None when none started."""
    rows = [r for r in (accounting or {}).get("rows", []) if "." not in r["JobID"]]
    nodes = list(dict.fromkeys(n for r in rows for n in expand_nodelist(r.get("NodeList", ""))))
    starts = [r["Start"] for r in rows if _time(r.get("Start", ""))]
    if not nodes or not starts:
        return None
    now = dt.datetime.now().isoformat(timespec="seconds")  # sacct's times are the controller's local time
    return nodes, min(starts), max(r["End"] if _time(r.get("End", "")) else now for r in rows)


def sharing_of(
    found: Sequence[dict[str, str]], accounting: dict[str, Any] | None, own_ids: Sequence[str]
) -> dict[str, list[str]] | None:
    """Per node of the jobs in ``accounting`` (a job's rows, or one array task's), the other jobs among
    ``found`` (:func:`query_node_jobs`) that ran on it meanwhile; None when that is unknown (no accounting,
    never started)."""
    window = _window(accounting)
    return None if window is None else shared_jobs(found, own_ids, *window)


def query_node_jobs(accounting: dict[str, Any] | None) -> list[dict[str, str]] | None:
    """Every job on the run's nodes during its whole window (all its jobs and array tasks), from one sacct
    query (:func:`hpcx.schedulers.slurm.jobs_on_nodes`); None when Slurm cannot say (no accounting, never
    started, sacct failed). The report cuts it per job or task with :func:`sharing_of`."""
    from hpcx.errors import HpcxError
    from hpcx.schedulers.slurm import jobs_on_nodes

    window = _window(accounting)
    if window is None:
        return None
    try:
        return jobs_on_nodes(*window)
    except (HpcxError, OSError):
        return None
