"""How the job's ranks were started and what drove them: the report's ``launch`` section.

The launcher of each rank comes from its start record (``srun``, ``mpirun``, ``torchrun`` for a worker of a
torchrun agent, ``none`` for the batch step itself); the agents from their agent files; the framework from the
framework records hpcx's exit hook writes in a torch job (hpcx.profiling.frameworks): each names what the rank's
Python had loaded, most specific first. A rank killed before it exited wrote none.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from hpcx.rundir.layout import agent_files, process_files, rank_of_process_file
from hpcx.rundir.records import read_records


def _framework_records(profile: Path) -> dict[int, list[dict[str, Any]]]:
    """Per rank, the frameworks its processes recorded: the latest record of the rank (a helper process the rank
    started, which exited first, does not decide it)."""
    latest: dict[int, tuple[float, list[dict[str, Any]]]] = {}
    for path in process_files(profile, "framework"):
        rank = rank_of_process_file(path, "framework")
        for rec in read_records(path):
            if (
                rec.get("type") == "framework"
                and rank is not None
                and isinstance(rec.get("frameworks"), list)
            ):
                t = float(rec.get("t") or 0.0)
                if rank not in latest or t >= latest[rank][0]:
                    latest[rank] = (
                        t,
                        [f for f in rec["frameworks"] if isinstance(f, dict) and f.get("name")],
                    )
    return {rank: frameworks for rank, (_, frameworks) in latest.items()}


def gpu_memory_by_rank(profile: Path) -> dict[int, list[dict[str, Any]]]:
    """Per rank, the GPU memory its processes recorded at exit (hpcx.profiling.frameworks.gpu_memory): per
    device torch's allocator peaks and NVML's figure for the process; a rank's processes are listed together."""
    out: dict[int, list[dict[str, Any]]] = {}
    if not profile.is_dir():
        return out
    for path in process_files(profile, "framework"):
        rank = rank_of_process_file(path, "framework")
        for rec in read_records(path):
            gpu = rec.get("gpu_memory")
            if rec.get("type") == "framework" and rank is not None and isinstance(gpu, list):
                out.setdefault(rank, []).extend(g for g in gpu if isinstance(g, dict))
    return out


def attach_gpu_memory(ranks: list[dict[str, Any]], profile: Path) -> None:
    """Each rank's ``gpu_memory`` (None where its processes recorded none: no CUDA, or killed before exit)."""
    found = gpu_memory_by_rank(profile)
    for r in ranks:
        r["gpu_memory"] = found.get(r["rank"])


def gpu_memory_line(ranks: list[dict[str, Any]]) -> str | None:
    """``GPU memory per rank at exit: ...``: the largest allocator peak and NVML per-process figure, and where."""
    rows = [(r["rank"], g) for r in ranks for g in (r.get("gpu_memory") or [])]
    if not rows:
        return None
    rank, top = max(rows, key=lambda x: x[1].get("max_allocated_mb") or 0.0)
    text = (
        f"GPU memory per rank at exit: torch's allocator peak at most {top['max_allocated_mb']:.0f} MiB allocated, "
        f"{top['max_reserved_mb']:.0f} MiB reserved (rank {rank}, device {top['device']})"
    )
    nvml = [(r, g["process_used_mb"]) for r, g in rows if g.get("process_used_mb") is not None]
    if nvml:
        r_n, mb = max(nvml, key=lambda x: x[1])
        text += f"; NVML for the rank's own process at most {mb:.0f} MiB (rank {r_n})"
    return text


def _label(framework: dict[str, Any]) -> str:
    return (
        f"{framework['name']} {framework['version']}" if framework.get("version") else str(framework["name"])
    )


def _workers(profile: Path) -> dict[str, Any] | None:
    """What the torchrun agents' end records say of their workers: how many they were to start (None where an
    agent decided at run time) and how many hpcx saw (a worker that ended within 50 ms may not be)."""
    expected: int | None = 0
    seen = 0
    ended = 0
    for path in agent_files(profile):
        for rec in read_records(path):
            if rec.get("type") != "end" or "worker_ranks" not in rec:
                continue
            ended += 1
            seen += len(rec.get("worker_ranks") or [])
            n = rec.get("workers_expected")
            expected = expected + n if isinstance(n, int) and expected is not None else None
    if not ended:
        return None
    return {"expected": expected, "seen": seen}


def summarize_launch(profile: Path, ranks: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``launch`` section: launcher(s) with their rank counts, torchrun agents, and the framework(s)."""
    launchers = Counter(r.get("launcher") or "unknown" for r in ranks)
    by_rank = _framework_records(profile) if profile.is_dir() else {}
    named: dict[str, dict[str, Any]] = {}
    for rank, frameworks in sorted(by_rank.items()):
        for f in frameworks:
            entry = named.setdefault(f["name"], {"name": f["name"], "version": f.get("version"), "ranks": []})
            entry["ranks"].append(rank)
    firsts = Counter(_label(fs[0]) for fs in by_rank.values() if fs)
    return {
        "launcher": " + ".join(sorted(launchers)) if launchers else None,
        "ranks_by_launcher": dict(sorted(launchers.items())),
        "agents": len(agent_files(profile)) if profile.is_dir() else 0,
        "workers": _workers(profile) if profile.is_dir() else None,
        "framework": firsts.most_common(1)[0][0] if firsts else None,
        "frameworks": list(named.values()),
    }


def launch_line(launch: dict[str, Any] | None) -> str | None:
    """One line for the terminal and the page, e.g. ``torchrun (4 ranks, 2 agents); PyTorch Lightning 2.5.1``."""
    if not launch or not launch.get("launcher"):
        return None
    counts = ", ".join(f"{n} {name}" for name, n in launch["ranks_by_launcher"].items())
    agents = (
        f", {launch['agents']} torchrun agent{'s' if launch['agents'] != 1 else ''}"
        if launch["agents"]
        else ""
    )
    text = f"ranks started by {counts}{agents}"
    workers = launch.get("workers") or {}
    if isinstance(workers.get("expected"), int) and workers["expected"] > workers.get("seen", 0):
        unseen = workers["expected"] - workers.get("seen", 0)
        text += (
            f" ({unseen} of {workers['expected']} workers ended before hpcx saw them: not profiled, not in "
            "the ranks below)"
        )
    return f"{text}; framework {launch['framework']}" if launch.get("framework") else text
