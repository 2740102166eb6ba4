"""Per-rank summaries from the profile records: one rank file read (parsing only what the summary needs), and
one rule for a rank run by several job steps (:func:`combine_steps`), the way Slurm's job line sums its steps.

Pure over the records; reading the files is :func:`summarize_rank_file`'s and :func:`summarize_ranks`'s."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hpcx.rundir.records import READABLE_VERSIONS, last_attempt_steps, rank_files, read_records

# Timelines in the report are for reading, not analysis (the records keep every sample). A node's: an hour at
# 1 s becomes one point every 6 s. A rank's: at most 300 points, as many as the page's rank x time heatmap has
# columns, which keeps a 256-rank report a few MB and its build linear in ranks (decoding the samples kept is
# most of its time).
MAX_TIMELINE_POINTS = 600
RANK_TIMELINE_POINTS = 300
STEP_FIELDS = ("step", "node", "start_t", "wall_s", "cpu_s", "peak_rss_mb", "exit_code", "finished")
_START, _SAMPLE, _END = b'"type":"start"', b'"type":"sample"', b'"type":"end"'  # as RecordWriter writes them


def summarize_rank(
    records: Iterable[dict[str, Any]], max_points: int = MAX_TIMELINE_POINTS
) -> dict[str, Any]:
    """One rank's numbers from its records: the last attempt's start and end, samples in between; the
    timeline keeps every n-th sample, at most ``max_points``."""
    start, end, samples = _last_attempt(records)
    last_t = (end or (samples[-1] if samples else start)).get("t", start.get("t", 0.0))
    # hwm_mb (format 2) is the kernel's peak, so a spike between two samples still counts after a kill -9.
    peak = max(
        [max(s["rss_mb"], s.get("hwm_mb", 0.0)) for s in samples] + [end["peak_rss_mb"] if end else 0.0]
    )
    return {
        **{key: start.get(key) for key in ("rank", "step", "node", "host", "launcher")},
        "attempt": start.get("attempt", 0),
        "start_t": start.get("t"),
        "wall_s": end["wall_s"] if end else last_t - start.get("t", last_t),
        "cpu_s": end["cpu_s"] if end else (samples[-1]["cpu_s"] if samples else 0.0),
        "peak_rss_mb": peak,
        "exit_code": end["exit_code"] if end else None,
        "finished": end is not None,
        "samples": len(samples),
        "cpus_allowed": start.get("cpus_allowed"),
        "sampler_cpu_s": end.get("sampler_cpu_s") if end else None,
        "sampler_rss_mb": end.get("sampler_rss_mb") if end else None,
        "timeline": _timeline(samples, start.get("t"), max_points),
        **io_figures(
            samples[:: -(-len(samples) // max_points) or 1], samples[-1] if samples else None, start.get("t")
        ),
    }


def _timeline(samples: list[dict[str, Any]], t0: float | None, max_points: int) -> list[list[float]]:
    """``[seconds since t0, rss_mb, cpu_s]`` of every n-th sample, at most ``max_points``. A reaped sample
    (the tree's counters after its exit, hpcx.profiling.sources) has no RSS: it is not drawn."""
    live = [s for s in samples if not s.get("reaped")]
    return [
        [round(s["t"] - (s["t"] if t0 is None else t0), 3), round(s["rss_mb"], 2), round(s["cpu_s"], 3)]
        for s in live[:: -(-len(live) // max_points) or 1]
    ]


# The report's name of each /proc/PID/io counter the sampler records (hpcx.profiling.sources.IO_FIELDS).
IO_KEYS = {
    "read_bytes": "rchar",
    "write_bytes": "wchar",
    "read_calls": "syscr",
    "write_calls": "syscw",
    "storage_read_bytes": "read_bytes",
    "storage_write_bytes": "write_bytes",
}
IO_TIMELINE_KEYS = ("read_bytes", "write_bytes", "storage_read_bytes", "storage_write_bytes")


def io_figures(picked: list[dict[str, Any]], last: dict[str, Any] | None, t0: float | None) -> dict[str, Any]:
    """A rank's I/O from its process tree's /proc counters: ``io``, the totals of its last sample (``None``
    for records without them), and ``io_timeline``, ``[t, read_bytes, write_bytes, storage_read_bytes,
    storage_write_bytes]`` cumulative at the ``picked`` samples and the last one (t from ``t0``)."""
    if last is None or "write_bytes" not in last:
        return {"io": None, "io_timeline": []}
    points = [*picked, last] if not picked or picked[-1] is not last else picked
    start = t0 if t0 is not None else points[0]["t"]
    return {
        "io": _io_totals(last),
        "io_timeline": [_io_point(s, start) for s in points if "write_bytes" in s],
    }


def _io_totals(last: dict[str, Any]) -> dict[str, Any]:
    """The counters of a rank's last sample under the report's names; ``to_exit``: whether they count up to
    the exit (the sample taken after the reap) or only to that sample (a killed rank, a torchrun worker)."""
    return {**{key: last.get(field) for key, field in IO_KEYS.items()}, "to_exit": bool(last.get("reaped"))}


def _io_point(sample: dict[str, Any], t0: float) -> list[float]:
    return [round(sample["t"] - t0, 3), *(sample.get(IO_KEYS[k]) or 0 for k in IO_TIMELINE_KEYS)]


def _last_attempt(
    records: Iterable[dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]:
    """The start, end (None without one) and samples of the records' last attempt."""
    start: dict[str, Any] = {}
    end: dict[str, Any] | None = None
    samples: list[dict[str, Any]] = []
    for rec in records:
        if rec["type"] == "start":  # a requeued job appends a new attempt: keep only the last one
            start, end, samples = rec, None, []
        elif rec["type"] == "sample":
            samples.append(rec)
        elif rec["type"] == "end":
            end = rec
    return start, end, samples


def summarize_rank_file(path: Path, max_points: int = MAX_TIMELINE_POINTS) -> dict[str, Any]:
    """:func:`summarize_rank` of one rank file, parsing only what it needs: a finished rank's end record holds
    its totals and peak, so of its samples only the timeline's are decoded (parsing every line of a 256-rank
    hour is most of the report's time). Lines are told apart by how RecordWriter writes ``type``; a file that
    is not written that way, or a rank without an end record (running, killed), is parsed whole."""
    data = path.read_bytes()
    lines = data.splitlines()  # bytes: most lines are only searched, never decoded
    at = data.rfind(_START)  # the last attempt's start: its line is the number of line ends before it
    first = data.count(b"\n", 0, at) if at >= 0 else None
    last = next((i for i in range(len(lines) - 1, max(len(lines) - 4, -1), -1) if _END in lines[i]), None)
    if first is None or last is None or last < first or not list(_decode(lines[last : last + 1])):
        return summarize_rank(read_records(path), max_points)
    samples = _sample_lines(data, lines, first, last)
    step = -(-len(samples) // max_points) or 1
    picked = [lines[first], *samples[::step], lines[last]]
    summary = summarize_rank(_decode(picked), max_points)
    summary["samples"] = len(samples)
    if samples and (len(samples) - 1) % step:  # not picked, but the last sample holds the I/O totals
        final = next(_decode(samples[-1:]), None)
        if final is not None and "write_bytes" in final:
            summary["io"] = _io_totals(final)
            summary["io_timeline"].append(_io_point(final, summary["start_t"] or final["t"]))
    return summary


def summarize_ranks(profile: Path, max_points: int = MAX_TIMELINE_POINTS) -> list[dict[str, Any]]:
    """Every rank of a profile directory in rank order, each :func:`summarize_rank_file` of its file, or of its
    job steps' files combined by :func:`combine_steps`."""
    ranks = []
    for paths in rank_files(profile).values():
        parts = [r for r in (summarize_rank_file(p, max_points) for p in paths) if r["rank"] is not None]
        if parts:
            ranks.append(combine_steps(parts, max_points))
    return sorted(ranks, key=lambda r: r["rank"])


def combine_steps(parts: list[dict[str, Any]], max_points: int = MAX_TIMELINE_POINTS) -> dict[str, Any]:
    """One rank run by several job steps (one summary each, :func:`summarize_rank`), the way Slurm's job line
    sums its steps: the job's last attempt only; wall time the union of the steps' lifetimes (steps one after
    another add up, concurrent ones count once); CPU time summed; the timeline the steps' sum at each moment
    (a step contributes its RSS while it runs, and its CPU time from its start on), so the peak is the highest
    of any step's own and the sum of those running together at a sample; ``exit_code`` the first failing
    step's, else 0 once every step is over (ended, or without an end record but followed by a later step: it
    was killed and the script went on); ``steps`` each step's own figures. One part comes back as is."""
    kept = last_attempt_steps(parts, start=lambda r: {"t": r["start_t"] or 0.0, "attempt": r["attempt"]})
    if len(kept) <= 1:
        return (kept or parts)[0]
    t0 = kept[0]["start_t"] or 0.0
    lives = [((r["start_t"] or t0), (r["start_t"] or t0) + r["wall_s"]) for r in kept]
    offsets = [a - t0 for a, _ in lives]  # each step's start on the rank's clock
    steps_tl = [[(p[0] + d, p[1], p[2]) for p in r["timeline"]] for r, d in zip(kept, offsets)]
    ts = [[p[0] for p in tl] for tl in steps_tl]
    # A step without an end record is over too once a later step started after its last sample (killed, as
    # by kill -9 or the OOM killer, and the script went on); only a step still running keeps its last RSS.
    over = [
        r["finished"] or any(d > (step_ts[-1] if step_ts else 0.0) for d in offsets[i + 1 :])
        for i, (r, step_ts) in enumerate(zip(kept, ts))
    ]
    timeline = _summed_timeline(list(zip(steps_tl, ts, kept, over)), max_points)
    return {
        **_combined(kept, _union_s(lives, t0), timeline, all(over)),
        **_combined_io(kept, offsets, max_points),
    }


def _combined_io(kept: list[dict[str, Any]], offsets: list[float], max_points: int) -> dict[str, Any]:
    """The steps' I/O summed, as their CPU time is: each step's counters start at 0 in its own processes.
    The timeline adds each step's cumulative counters at every moment any step was sampled (its last point
    at or before the moment; 0 before its first)."""
    parts = [(r["io"], r["io_timeline"], d) for r, d in zip(kept, offsets) if r.get("io")]
    if not parts:
        return {"io": None, "io_timeline": []}
    io: dict[str, Any] = {
        key: None if any(p[0][key] is None for p in parts) else sum(p[0][key] for p in parts)
        for key in IO_KEYS
    }
    io["to_exit"] = all(p[0]["to_exit"] for p in parts)
    shifted = [[[pt[0] + d, *pt[1:]] for pt in tl] for _, tl, d in parts]
    times = sorted({pt[0] for tl in shifted for pt in tl})
    times = times[:: -(-len(times) // max_points) or 1] + times[-1:]
    step_ts = [[pt[0] for pt in tl] for tl in shifted]
    timeline = []
    for t in dict.fromkeys(times):
        at = [tl[bisect.bisect_right(ts, t) - 1] for tl, ts in zip(shifted, step_ts) if ts and ts[0] <= t]
        timeline.append([round(t, 3), *(sum(pt[i] for pt in at) for i in range(1, 5))])
    return {"io": io, "io_timeline": timeline}


def _union_s(lives: list[tuple[float, float]], t0: float) -> float:
    """The length of the union of the steps' lifetimes ``(start, end)``, sorted by start from ``t0`` on."""
    wall = 0.0
    reach = t0
    for a, b in lives:
        wall += max(0.0, b - max(a, reach))
        reach = max(reach, b)
    return wall


_Step = tuple[
    list[tuple[float, float, float]], list[float], dict[str, Any], bool
]  # timeline, its times, part, over


def _summed_timeline(steps: list[_Step], max_points: int) -> list[list[float]]:
    """The steps' timelines summed at every moment any of them was sampled, at most ``max_points`` of them."""
    times = sorted({t for _, step_ts, _, _ in steps for t in step_ts})
    times = times[:: -(-len(times) // max_points) or 1]
    return [_sum_at(steps, t) for t in times]


def _sum_at(steps: list[_Step], t: float) -> list[float]:
    """``[t, rss_mb, cpu_s]`` of the steps together at ``t``."""
    rss = cpu = 0.0
    for tl, step_ts, r, done in steps:
        if not tl or t < step_ts[0]:
            continue
        if t > step_ts[-1]:  # after its last point: ended (its CPU stays counted) or not sampled since
            cpu += r["cpu_s"] if r["finished"] else tl[-1][2]
            rss += 0.0 if done else tl[-1][1]
            continue
        at = _interp(tl, step_ts, t)
        rss, cpu = rss + at[0], cpu + at[1]
    return [round(t, 3), round(rss, 2), round(cpu, 3)]


def _combined(
    kept: list[dict[str, Any]], wall: float, timeline: list[list[float]], finished: bool
) -> dict[str, Any]:
    """The rank's figures from its steps' (``kept``), its wall time and summed timeline (:func:`combine_steps`)."""
    failed = [r["exit_code"] for r in kept if r["exit_code"]]
    sampler = [r["sampler_cpu_s"] for r in kept]
    return {
        **kept[0],
        "step": None,
        "wall_s": wall,
        "cpu_s": sum(r["cpu_s"] for r in kept),
        "peak_rss_mb": max([r["peak_rss_mb"] for r in kept] + [p[1] for p in timeline]),
        "exit_code": failed[0] if failed else (0 if finished else None),
        "finished": finished,
        "samples": sum(r["samples"] for r in kept),
        "cpus_allowed": max((r["cpus_allowed"] for r in kept if r["cpus_allowed"] is not None), default=None),
        "sampler_cpu_s": None if None in sampler else sum(sampler),
        "sampler_rss_mb": max(
            (r["sampler_rss_mb"] for r in kept if r["sampler_rss_mb"] is not None), default=None
        ),
        "timeline": timeline,
        "steps": [{k: r[k] for k in STEP_FIELDS} for r in kept],
    }


def end_t(rank: dict[str, Any]) -> float:
    """When a rank's last step ended (or was last sampled): its wall time counts the gaps between steps out."""
    steps = rank.get("steps") or [rank]
    return max(s["start_t"] + s["wall_s"] for s in steps if s["start_t"] is not None)


def _interp(tl: list[tuple[float, float, float]], ts: list[float], t: float) -> tuple[float, float]:
    """RSS and CPU time of a timeline (``ts`` its times) at ``t`` within its span, linear between points."""
    i = min(bisect.bisect_left(ts, t), len(tl) - 1)
    q = tl[i]
    if i == 0 or q[0] == t:
        return q[1], q[2]
    p = tl[i - 1]
    f = (t - p[0]) / (q[0] - p[0])
    return p[1] + (q[1] - p[1]) * f, p[2] + (q[2] - p[2]) * f


def _sample_lines(data: bytes, lines: list[bytes], first: int, last: int) -> list[bytes]:
    """The sample lines between the start line ``first`` and the end line ``last``. RecordWriter writes the
    few other records (sources) right after the start, so when the samples counted in the bytes fill the
    rest, they are one slice; otherwise each line is searched."""
    between = last - first - 1
    count = b"\n".join(lines[first + 1 : last]).count(_SAMPLE) if between > 0 else 0
    head = between - count
    if count and head >= 0 and _SAMPLE in lines[first + 1 + head] and _SAMPLE in lines[last - 1]:
        if not any(_SAMPLE in lines[first + 1 + i] for i in range(head)):
            return lines[first + 1 + head : last]
    return [line for line in lines[first:last] if _SAMPLE in line]


def _decode(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    """The records of whole lines; a torn one is skipped. One json.loads for them all when they parse (the
    usual case: a third of the time of one call per line)."""
    try:
        records = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:  # JSONDecodeError, or UnicodeDecodeError from a torn multi-byte character
        records = None
    if records is not None:
        yield from (r for r in records if isinstance(r, dict) and r.get("v") in READABLE_VERSIONS)
        return
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn line
        if isinstance(record, dict) and record.get("v") in READABLE_VERSIONS:
            yield record
