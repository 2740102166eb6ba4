"""hpcx's pre-flight verdict agrees with what the real Slurm does with the same request.

240 generated requests (time, nodes, tasks, CPUs, memory, GPUs, partition or none) are checked by hpcx and given
to `sbatch --test-only` on the test cluster (EnforcePartLimits=ANY, so Slurm refuses at submit what can never
run). Where hpcx chose the partition, Slurm gets that partition; where hpcx found none, Slurm gets all of them.
"""

import random
import subprocess

import pytest

from hpcx.errors import RejectedError
from hpcx.site import load_site
from hpcx.spec import format_time
from hpcx.submit.submission import Request, resolve

pytestmark = pytest.mark.slurm
N_REQUESTS = 240


def _requests(seed: int = 20261126) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(N_REQUESTS):
        out.append(
            {
                "partition": rng.choice([None, "debug", "batch", "gpu", "debug", "batch"]),
                "nodes": rng.choice([1, 1, 1, 1, 2, 3]),
                "ntasks_per_node": rng.choice([1, 1, 1, 2, 2, 4, 5]),
                "cpus_per_task": rng.choice([1, 1, 1, 1, 2]),
                "gpus_per_node": rng.choice([0, 0, 0, 0, 1, 2, 3]),
                "mem": rng.choice([None, None, None, None, 1000, 4000, 5000]),
                "time": rng.choice([5, 10, 30, 60, 120, 31, 1440, 2881]),
            }
        )
    return out


def _hpcx_verdict(req: dict, site) -> tuple[bool, str, str]:
    options = {k: (str(v) if v is not None else None) for k, v in req.items()}
    try:
        prep = resolve(Request(kind="serial", options=options, command=("true",)), site)
    except RejectedError as exc:
        return False, req["partition"] or ",".join(site.partitions), str(exc)
    return True, prep.partition.name, prep.choice.get("why", "")


def _sbatch_args(req: dict, partition: str, site) -> list[str]:
    args = [
        "-p",
        partition,
        "-N",
        str(req["nodes"]),
        f"--ntasks-per-node={req['ntasks_per_node']}",
        f"--cpus-per-task={req['cpus_per_task']}",
        f"--time={format_time(req['time'])}",
    ]
    if req["mem"]:
        args.append(f"--mem={req['mem']}M")
    if req["gpus_per_node"]:
        part = site.partitions.get(partition)
        typed = f"gpu:{part.gpu_type}:" if part is not None and part.gpu_type else "gpu:"
        args.append(f"--gres={typed}{req['gpus_per_node']}")
    return args


def test_hpcx_agrees_with_slurm_on_generated_requests(testbed):
    site = load_site(str(testbed))
    disagreements = []
    accepted = 0
    for req in _requests():
        ok, partition, why = _hpcx_verdict(req, site)
        argv = ["sbatch", "--test-only", *_sbatch_args(req, partition, site), "--wrap", "true"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        slurm_ok = proc.returncode == 0
        accepted += slurm_ok
        if ok != slurm_ok:
            disagreements.append(
                f"{req}: hpcx {'accepts' if ok else 'rejects'} ({why}); "
                f"slurm: {proc.stderr.strip().splitlines()[-1:]}"
            )
    # The corpus must exercise both verdicts, or agreement would mean nothing.
    assert 60 <= accepted <= N_REQUESTS - 60, f"only {accepted} of {N_REQUESTS} accepted: widen the corpus"
    assert not disagreements, f"{len(disagreements)} of {N_REQUESTS} disagree:\n" + "\n".join(disagreements)
