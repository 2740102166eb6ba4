"""Run a Python script under real Open MPI on this host (loopback only), with a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MPI_ENV = {
    "OMPI_MCA_btl": "self,vader,tcp",
    "OMPI_MCA_btl_tcp_if_include": "lo",
    "OMPI_MCA_oob_tcp_if_include": "lo",
    "GLOO_SOCKET_IFNAME": "lo",
}


def mpirun(
    n: int, *argv: str, timeout_s: float = 120, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """``mpirun -n N python ARGV...``; raises subprocess.TimeoutExpired rather than hang."""
    cmd = ["mpirun", "-n", str(n), "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    return subprocess.run(
        [*cmd, sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **MPI_ENV, **(env or {})},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
