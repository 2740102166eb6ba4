"""Cold ``hpcx render`` against submitit generating the same sbatch script.

metric render_vs_submitit = median wall time of a fresh ``python -m hpcx --site testbed.yaml render mpi -N 2
--ntasks-per-node 1 -- python train.py`` (site load + pre-flight checks + template render) / median wall time of
a fresh ``python`` that imports submitit and prints ``submitit.slurm.slurm._make_sbatch_string(...)`` for the
same resources (the function ``submitit.SlurmExecutor`` writes its scripts with). Target <= 1.0.

Both sides run as subprocesses, alternating, with bytecode caching on for both (see _common.python_env).
The extra rows are the medians behind the ratio, the interpreter's own start-up, the cost of importing
hpcx's command line alone, and in-process (warm) times of each side. None of those has a target.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

NAME = "render_vs_submitit"
SITE = c.REPO / "examples" / "sites" / "testbed.yaml"
RUNS_ROOT = "/tmp/hpcx-bench-runs"  # only named in the rendered script; render creates nothing
HPCX_ARGS = [
    "--site",
    str(SITE),
    "render",
    "mpi",
    "-N",
    "2",
    "--ntasks-per-node",
    "1",
    "--",
    "python",
    "train.py",
]
# The same request for submitit: partition debug (the site default), 10 minutes (debug's default_time),
# 2 nodes, 1 task per node, 1 CPU per task, job name hpcx, logs in the run's logs directory.
SUBMITIT_KWARGS: dict[str, Any] = {
    "command": "python train.py",
    "folder": f"{RUNS_ROOT}/RUN-ID/logs",
    "job_name": "hpcx",
    "partition": "debug",
    "time": 10,
    "nodes": 2,
    "ntasks_per_node": 1,
    "cpus_per_task": 1,
}
SUBMITIT_CODE = (
    "import sys\n"
    "from submitit.slurm.slurm import _make_sbatch_string\n"
    f"sys.stdout.write(_make_sbatch_string(**{SUBMITIT_KWARGS!r}))\n"
)


def _check_outputs(env: dict[str, str]) -> None:
    """Both sides must print a script asking for the same nodes and tasks before either is timed."""
    import subprocess

    hpcx = subprocess.run(
        [sys.executable, "-m", "hpcx", *HPCX_ARGS], env=env, capture_output=True, text=True, check=False
    )
    sub = subprocess.run(
        [sys.executable, "-c", SUBMITIT_CODE], env=env, capture_output=True, text=True, check=False
    )
    for who, proc in (("hpcx render", hpcx), ("submitit", sub)):
        if proc.returncode != 0:
            raise RuntimeError(f"{who} exited {proc.returncode}: {proc.stderr[-2000:]}")
        for needle in ("--nodes=2", "--ntasks-per-node=1", "--partition=debug", "train.py"):
            if needle not in proc.stdout:
                raise RuntimeError(f"{who} printed no {needle!r}:\n{proc.stdout}")


def run(quick: bool) -> list[dict[str, Any]]:
    try:
        import submitit
        from submitit.slurm.slurm import _make_sbatch_string
    except ImportError as exc:
        raise c.Skip(f"submitit is not installed ({exc}): pip install -e '.[bench]'") from exc
    from hpcx.cli import main as hpcx_main

    cold_repeats, warm_repeats = (8, 50) if quick else (30, 300)
    env = c.python_env({"HPCX_RUNS": RUNS_ROOT})
    env.pop("HPCX_SITE", None)
    _check_outputs(env)

    py = sys.executable
    cpu: dict[str, list[float]] = {}
    cold = c.alternate(
        {
            "hpcx": c.subprocess_case([py, "-m", "hpcx", *HPCX_ARGS], env=env, cwd=c.REPO),
            "submitit": c.subprocess_case([py, "-c", SUBMITIT_CODE], env=env, cwd=c.REPO),
            "python": c.subprocess_case([py, "-c", "pass"], env=env, cwd=c.REPO),
            "hpcx_import": c.subprocess_case([py, "-c", "import hpcx.cli"], env=env, cwd=c.REPO),
        },
        cold_repeats,
        warmup=2,
        cpu=cpu,
    )

    def hpcx_warm() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            code = hpcx_main(list(HPCX_ARGS))
        if code != 0:
            raise RuntimeError(f"hpcx render exited {code} in-process")

    old_runs = os.environ.get("HPCX_RUNS")
    os.environ["HPCX_RUNS"] = RUNS_ROOT
    try:
        warm = c.alternate(
            {"hpcx": hpcx_warm, "submitit": lambda: _make_sbatch_string(**SUBMITIT_KWARGS)},
            warm_repeats,
            warmup=5,
        )
    finally:
        if old_runs is None:
            os.environ.pop("HPCX_RUNS", None)
        else:
            os.environ["HPCX_RUNS"] = old_runs

    sub_desc = f"submitit {submitit.__version__} _make_sbatch_string, same resources"
    hpcx_med = c.stats(cold["hpcx"])["median"]
    sub_med = c.stats(cold["submitit"])["median"]
    return [
        c.result(
            "render_vs_submitit",
            round(hpcx_med / sub_med, 3),
            "ratio",
            f"cold: fresh `python -m hpcx render mpi -N 2 ...` / fresh python printing {sub_desc} (medians)",
            1.0,
        ),
        c.result(
            "render_vs_submitit_cpu",
            round(c.stats(cpu["hpcx"])["median"] / c.stats(cpu["submitit"])["median"], 3),
            "ratio",
            "the same two processes, user+system CPU time instead of wall time (less sensitive to load)",
        ),
        c.timing_row(
            "render_cold_ms", cold["hpcx"], "fresh `python -m hpcx --site testbed.yaml render mpi ...`"
        ),
        c.timing_row("submitit_cold_ms", cold["submitit"], f"fresh python: import submitit + {sub_desc}"),
        c.timing_row("python_startup_ms", cold["python"], "fresh `python -c pass` (floor for both sides)"),
        c.timing_row("hpcx_cli_import_ms", cold["hpcx_import"], "fresh `python -c 'import hpcx.cli'`"),
        c.timing_row(
            "render_warm_ms", warm["hpcx"], "in-process hpcx.cli.main(render ...): site+checks+render"
        ),
        c.timing_row("submitit_warm_ms", warm["submitit"], f"in-process {sub_desc}"),
    ]


if __name__ == "__main__":
    sys.exit(c.main(NAME, run, __doc__))
