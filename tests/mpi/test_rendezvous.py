"""The rendezvous address, chosen and checked without HPCX_MASTER_ADDR: rank 0 listens on the address its host
uses towards the first other node (not what its own name resolves to: 127.0.1.1 on Debian), and every rank
connects to it, bounded, before torch.distributed starts, so an unreachable address ends the job at once with
the address, the node and the fix instead of torch's timeout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.mpi.mpirun import REPO, mpirun

JOB = """
import json, sys
from hpcx import runtime
with runtime.session(torch_backend="gloo") as ctx:
    import torch, torch.distributed as dist
    t = torch.ones(1) * (ctx.rank + 1)
    dist.all_reduce(t)
    # one write per line: a launcher forwards the ranks' output as it comes, so two ranks' print() pieces
    # (text, then newline) could share a line
    sys.stdout.write(json.dumps({"rank": ctx.rank, "addr": ctx.master_addr, "sum": t.item()}) + "\\n")
    sys.stdout.flush()
"""
SCRUB = ("OMPI_", "PMIX_", "PMI_", "SLURM", "HPCX_", "MASTER_", "RANK", "WORLD_SIZE")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB)}
    return {**env, "HPCX_INIT_TIMEOUT_S": "30", **extra}


def _rank1(prefix: str) -> str:
    """``python JOB`` for every rank, with ``prefix`` (shell) in front of rank 1's (Open MPI or MPICH)."""
    return (
        f'r=${{OMPI_COMM_WORLD_RANK:-$PMI_RANK}}; if [ "$r" = 1 ]; then {prefix} exec {sys.executable} -c '
        f'"$JOB"; else exec {sys.executable} -c "$JOB"; fi'
    )


def _global_address() -> str | None:
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True, timeout=10
    ).stdout.split()
    return out[out.index("inet") + 1].split("/")[0] if "inet" in out else None


def test_on_one_node_without_a_pin_rank_0_listens_on_loopback(tmp_path):
    out = mpirun(2, "-c", JOB, env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    docs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert sorted((d["rank"], d["addr"], d["sum"]) for d in docs) == [
        (0, "127.0.0.1", 3.0),
        (1, "127.0.0.1", 3.0),
    ]


@pytest.mark.skipif(shutil.which("ip") is None or _global_address() is None, reason="no global IPv4 address")
def test_rank_0_listens_on_the_address_it_uses_towards_the_other_node(tmp_path):
    # Rank 1's node is named by this host's own global address, so the route towards it leaves from that
    # address: the one a real second node would connect to.
    far = _global_address()
    out = subprocess.run(
        [
            "mpirun",
            "-n",
            "2",
            "--oversubscribe",
            *(["--allow-run-as-root"] * (os.geteuid() == 0)),
            "bash",
            "-c",
            _rank1(f"SLURMD_NODENAME={far}"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**_env(JOB=JOB), "OMPI_MCA_btl": "self,vader,tcp", "GLOO_SOCKET_IFNAME": "lo"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    docs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert sorted((d["rank"], d["addr"], d["sum"]) for d in docs) == [(0, far, 3.0), (1, far, 3.0)]


def test_a_node_without_an_address_is_named_with_the_fix(tmp_path):
    out = subprocess.run(
        [
            "mpirun",
            "-n",
            "2",
            "--oversubscribe",
            *(["--allow-run-as-root"] * (os.geteuid() == 0)),
            "bash",
            "-c",
            _rank1("SLURMD_NODENAME=nowhere.invalid"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**_env(JOB=JOB), "OMPI_MCA_btl": "self,vader,tcp"},
    )
    assert out.returncode != 0
    assert "cannot tell which of its addresses node nowhere.invalid reaches" in out.stderr, out.stderr[-3000:]
    assert "set HPCX_MASTER_ADDR in the site's environment" in out.stderr


def _can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(
    shutil.which("mpiexec.mpich") is None or not _can_unshare(),
    reason="needs Debian's mpich and unshare -n (root)",
)
def test_an_address_another_rank_cannot_reach_fails_at_once_naming_it(tmp_path):
    # Rank 1 runs in a network namespace of its own: rank 0's loopback is not its loopback, as 127.0.1.1 on
    # one Debian node is not on another. MPICH's ranks still talk (PMI over an inherited descriptor, shared
    # memory), so only the rendezvous cannot be reached.
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libmpi.so.12").symlink_to("/usr/lib/x86_64-linux-gnu/libmpich.so.12")
    env = _env(JOB=JOB, LD_LIBRARY_PATH=str(tmp_path / "lib"), MPI4PY_MPIABI="mpich", GLOO_SOCKET_IFNAME="lo")
    t0 = time.monotonic()
    # Each rank's stderr goes to a file of its own: MPICH's mpiexec may drop what a rank wrote just before
    # MPI_Abort tore the job down (seen under load: nothing at all on its stderr).
    to_files = f'exec 2>"{tmp_path}/err-${{OMPI_COMM_WORLD_RANK:-$PMI_RANK}}"; '
    out = subprocess.run(
        [
            "mpiexec.mpich",
            "-n",
            "2",
            "bash",
            "-c",
            to_files
            + _rank1(
                f'unshare -n sh -c "ip link set lo up; exec {sys.executable} -c \\"\\$JOB\\""; exit $?;'
            ),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - t0
    assert out.returncode != 0
    stderr = "".join((tmp_path / f"err-{r}").read_text() for r in (0, 1) if (tmp_path / f"err-{r}").exists())
    assert "rendezvous address 127.0.0.1:" in stderr and "cannot be reached from 1 rank(s)" in stderr, (
        stderr[-3000:] + out.stderr[-2000:]
    )
    assert "rank 1 on node" in stderr and "Connection refused" in stderr
    assert "set HPCX_MASTER_ADDR in the site's environment" in stderr
    assert elapsed < 20, f"{elapsed:.0f} s: the check is bounded, torch's own timeout here is 30 s"


def test_without_mpi_a_wrong_address_is_named_with_the_node_and_the_fix(tmp_path):
    # srun --resv-ports without MPI: each rank is a plain process with the step's variables.
    from hpcx.runtime.freeport import free_port

    port = free_port()
    procs = []
    for rank in (0, 1):
        env = _env(
            SLURM_PROCID=str(rank),
            SLURM_STEP_NUM_TASKS="2",
            SLURM_LOCALID=str(rank),
            SLURM_NODEID="0",
            SLURM_STEP_NODELIST="n1",
            SLURM_STEP_TASKS_PER_NODE="2",
            SLURM_STEP_RESV_PORTS=str(port),
            SLURMD_NODENAME="n1",
            HPCX_MPI="0",
            GLOO_SOCKET_IFNAME="lo",
            HPCX_INIT_TIMEOUT_S="8",
            HPCX_MASTER_ADDR="192.0.2.99",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", JOB],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    t0 = time.monotonic()
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [1, 1], errs
    assert "rank 0's rendezvous address 192.0.2.99 is not an address of its node n1" in errs[0], errs[0][
        -2000:
    ]
    assert f"rank 1 on node n1 cannot rendezvous with rank 0 at 192.0.2.99:{port}" in errs[1], errs[1][-2000:]
    assert all("set HPCX_MASTER_ADDR in the site's environment" in e for e in errs)
    assert time.monotonic() - t0 < 60
