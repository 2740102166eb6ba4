"""ddp_runtime_overhead: the same DDP training loop with hpcx's runtime over plain torch DDP (target <= 1.01), and
ddp_traced_overhead: that hpcx loop with --profile's comm tracing and DDP bucket hook over the same untraced (target <= 1.01).
Two more rows tell the traced case's cost apart: python_hook_overhead, the untraced hpcx loop whose program registers
torch's own Python all-reduce hook (the path hpcx's timed hook takes instead of the Reducer's C++ all-reduce) over
the same without; and hook_timing_overhead, the traced case over that Python-hook case: hpcx's timing alone.

Both run under mpirun (2 ranks on CPUs with gloo; on a GPU machine, one rank per GPU with NCCL), alternating,
and report the steady-state time per step; the ratio of the medians is hpcx's cost per step (an MPI
preemption check and a metric record each step, seeds, the negotiated rendezvous).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from _common import REPO, Skip, alternate, main, result, stats, timing_row

LOOPBACK = {
    "OMPI_MCA_btl": "self,vader,tcp",
    "OMPI_MCA_btl_tcp_if_include": "lo",
    "OMPI_MCA_oob_tcp_if_include": "lo",
    "GLOO_SOCKET_IFNAME": "lo",
}


def _ranks() -> int:
    try:
        import torch

        return max(torch.cuda.device_count(), 1) if torch.cuda.is_available() else 2
    except ImportError as exc:
        raise Skip("torch is not installed") from exc


def run(quick: bool) -> list[dict]:
    if shutil.which("mpirun") is None:
        raise Skip("mpirun not found")
    ranks, steps, repeats = _ranks(), (100 if quick else 400), (2 if quick else 5)
    per_step: dict[str, list[float]] = {
        "hpcx": [],
        "plain": [],
        "traced": [],
        "python_hook": [],
        "plain_again": [],
    }
    run_dir = tempfile.mkdtemp(prefix="hpcx-ddp-bench-")
    env = {
        **os.environ,
        **LOOPBACK,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29533",
        "HPCX_RUN_DIR": run_dir,
    }
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []

    traced_env = {
        **env,
        "HPCX_PROFILE_COMM": "1",
        "HPCX_PROFILE_DIR": os.path.join(run_dir, "profile"),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO / "hpcx" / "profiling" / "_hook"), env.get("PYTHONPATH")])
        ),
    }

    def case(mode: str, name: str | None = None, case_env: dict | None = None):
        def go() -> None:
            argv = [
                "mpirun",
                "-n",
                str(ranks),
                "--oversubscribe",
                *root,
                sys.executable,
                str(REPO / "benchmarks" / "_ddp_worker.py"),
                "--mode",
                mode,
                "--steps",
                str(steps),
            ]
            out = subprocess.run(
                argv, capture_output=True, text=True, timeout=600, env=case_env or env, cwd=REPO
            )
            if out.returncode != 0:
                raise RuntimeError(f"{mode} worker failed: {out.stderr[-2000:]}")
            line = next(x for x in out.stdout.splitlines() if x.startswith("SECONDS_PER_STEP"))
            per_step[name or mode].append(float(line.split()[1]))

        return go

    try:
        cases = {
            "plain": case("plain"),
            "hpcx": case("hpcx"),
            "traced": case("hpcx", "traced", traced_env),  # --profile: comm tracing with the DDP bucket hook
            "python_hook": case("hpcx", "python_hook", {**env, "BENCH_PYTHON_HOOK": "1"}),
            "plain_again": case("plain", "plain_again"),  # the null control: the same case twice
        }
        alternate(cases, repeats, warmup=1)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    h, p = stats(per_step["hpcx"])["median"], stats(per_step["plain"])["median"]
    t, p2 = stats(per_step["traced"])["median"], stats(per_step["plain_again"])["median"]
    py = stats(per_step["python_hook"])["median"]
    backend = "nccl" if ranks and _gpu() else "gloo"
    return [
        result(
            "ddp_runtime_overhead",
            round(h / p, 4),
            "ratio",
            f"plain torch DDP, same model and data, {ranks} rank(s), {backend}, median s/step",
            1.01,
        ),
        result(
            "ddp_traced_overhead",
            round(t / h, 4),
            "ratio",
            "the same hpcx run untraced: --profile's comm tracing with the DDP bucket hook, median s/step",
            1.01,
        ),
        result(
            "python_hook_overhead",
            round(py / h, 4),
            "ratio",
            "the same hpcx run untraced with torch's Python allreduce_hook registered, over without",
        ),
        result(
            "hook_timing_overhead",
            round(t / py, 4),
            "ratio",
            "the traced case over the Python-hook case: hpcx's timer and comm wrappers alone",
        ),
        result("null_control", round(p2 / p, 4), "ratio", "plain against plain: how far the same case moves"),
        timing_row(
            "hpcx_step_ms", per_step["hpcx"], "hpcx.runtime session + seeds + log + preempt check per step"
        ),
        timing_row("traced_step_ms", per_step["traced"], "the hpcx case with comm tracing and the DDP hook"),
        timing_row("python_hook_step_ms", per_step["python_hook"], "the hpcx case with torch's Python hook"),
        timing_row("plain_step_ms", per_step["plain"], "init_process_group(env://) and the bare loop"),
    ]


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main("ddp_runtime_overhead", run, __doc__))
