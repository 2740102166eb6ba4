"""Shared helpers for the benchmarks: machine description, timing with repeats, tables, the command line.

A benchmark module defines ``run(quick: bool) -> list[dict]`` (rows made with :func:`result`) and calls
:func:`main`; ``--json`` prints one object ``{"benchmark", "machine", "results"}``, otherwise a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class Skip(Exception):
    """Raised by a benchmark that cannot run here (no Slurm, no submitit, ...); the reason is reported."""


# ---------------------------------------------------------------- machine


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _mem_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def _tool_version(argv: Sequence[str]) -> str | None:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if out.returncode == 0 and text else None


def _git_commit() -> str | None:
    head = _tool_version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    if head is None:
        return None
    try:
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        dirty = ""
    return head + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_gib": _mem_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "slurm": _tool_version(["sinfo", "--version"]),
        "hpcx_commit": _git_commit(),
        "loadavg": load,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# ---------------------------------------------------------------- timing


def stats(samples: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and IQR of ``samples`` (seconds in, seconds out)."""
    xs = sorted(samples)
    if len(xs) >= 2:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1 = q3 = xs[0]
    return {"median": statistics.median(xs), "q1": q1, "q3": q3, "iqr": q3 - q1, "min": xs[0], "n": len(xs)}


def alternate(
    cases: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    cpu: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Wall times of each case ``repeats`` times, round-robin (A B A B ...), so load drifts hit all alike.

    ``warmup`` untimed rounds come first (file cache, bytecode cache, slurmctld's caches). A case that
    returns a float (the CPU seconds of a :func:`subprocess_case`) has it appended to ``cpu[name]``.
    """
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    out: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            ret = fn()
            out[name].append(time.perf_counter() - t0)
            if cpu is not None and isinstance(ret, float):
                cpu.setdefault(name, []).append(ret)
    return out


def repeat(fn: Callable[[], object], repeats: int, warmup: int = 3) -> list[float]:
    """Time ``fn`` in this process ``repeats`` times after ``warmup`` untimed calls."""
    return alternate({"fn": fn}, repeats, warmup)["fn"]


def subprocess_case(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None
) -> Callable[[], float]:
    """A case that runs ``argv`` to completion (output discarded) and fails loudly if it exits non-zero.

    It returns the user + system CPU seconds of the process and the children it waited for.
    """
    argv = [str(a) for a in argv]

    def call() -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            argv,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    return call


_PYCACHE_DIR: str | None = None


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for the fresh Python processes a benchmark times.

    Bytecode caching is switched on (PYTHONDONTWRITEBYTECODE removed) with the cache in a private temporary
    directory (PYTHONPYCACHEPREFIX), so every side imports cached bytecode after the warm-up round, as an
    installed package does, and nothing is written into the source tree. Without this, an environment that
    sets PYTHONDONTWRITEBYTECODE recompiles hpcx's own modules (an editable install) on every start while
    site-packages keep the .pyc files pip wrote, which favours the baseline.
    """
    global _PYCACHE_DIR
    if _PYCACHE_DIR is None:
        _PYCACHE_DIR = tempfile.mkdtemp(prefix="hpcx-bench-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = _PYCACHE_DIR
    env.update(extra or {})
    return env


def cleanup_pycache() -> None:
    global _PYCACHE_DIR
    if _PYCACHE_DIR is not None:
        shutil.rmtree(_PYCACHE_DIR, ignore_errors=True)
        _PYCACHE_DIR = None


# ---------------------------------------------------------------- results and output


def result(
    metric: str,
    value: float,
    unit: str,
    baseline: str,
    target: float | None = None,
    *,
    iqr: float | None = None,
    n: int | None = None,
) -> dict[str, Any]:
    """One row of a benchmark's results. ``iqr`` and ``n`` are extra keys, present for timed rows."""
    row: dict[str, Any] = {
        "metric": metric,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "target": target,
    }
    if iqr is not None:
        row["iqr"] = iqr
    if n is not None:
        row["n"] = n
    return row


def timing_row(metric: str, samples: Sequence[float], baseline: str, unit: str = "ms") -> dict[str, Any]:
    """A row with the median of ``samples`` (seconds) in ``unit`` (ms or s), its IQR and the sample count."""
    scale = 1000.0 if unit == "ms" else 1.0
    s = stats(samples)
    return result(
        metric, round(s["median"] * scale, 3), unit, baseline, iqr=round(s["iqr"] * scale, 3), n=s["n"]
    )


def verdict(row: Mapping[str, Any]) -> str:
    """ok / MISS against the row's target: an upper bound, or a lower one for rows marked "better": "higher"."""
    target, value = row.get("target"), row.get("value")
    if target is None or value is None:
        return ""
    met = value >= target if row.get("better") == "higher" else value <= target
    return "ok" if met else "MISS"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with left-aligned columns (also valid Markdown)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


RESULT_HEADERS = ("metric", "value", "unit", "IQR", "n", "target", "met", "baseline")


def result_rows(results: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [
            r["metric"],
            r["value"],
            r["unit"],
            r.get("iqr"),
            r.get("n"),
            r.get("target"),
            verdict(r),
            r["baseline"],
        ]
        for r in results
    ]


def describe_machine(m: Mapping[str, Any]) -> str:
    return (
        f"{m.get('cpu')}, {m.get('cores')} cores ({m.get('cores_usable')} usable), {m.get('memory_gib')} GiB, "
        f"{m.get('os')}, {m.get('python')}, {m.get('slurm') or 'no Slurm'}, hpcx {m.get('hpcx_commit')}, "
        f"load {m.get('loadavg')}, {m.get('date')}"
    )


def main(name: str, run: Callable[[bool], list[dict[str, Any]]], doc: str | None = None) -> int:
    """Command line of one benchmark: ``[--json] [--quick]``."""
    parser = argparse.ArgumentParser(prog=f"benchmarks/{name}.py", description=doc)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--quick", action="store_true", help="a short run: fewer repeats")
    args = parser.parse_args()
    info = machine()
    try:
        results = run(args.quick)
    except Skip as exc:
        if args.json:
            print(json.dumps({"benchmark": name, "machine": info, "results": [], "skipped": str(exc)}))
        else:
            print(f"{name}: skipped: {exc}")
        return 0
    finally:
        cleanup_pycache()
    if args.json:
        print(json.dumps({"benchmark": name, "machine": info, "results": results}, indent=2))
    else:
        print(f"{name}  ({'quick' if args.quick else 'full'} run)")
        print(f"machine: {describe_machine(info)}")
        print(table(RESULT_HEADERS, result_rows(results)))
    return 0
