"""Launcher command builders: how to start N ranks inside an allocation. Pure functions, no I/O."""

from __future__ import annotations

import os

from hpcx.errors import ConfigError
from hpcx.site import Launcher
from hpcx.spec import Resources


def srun(launcher: Launcher, res: Resources) -> list[str]:
    # Inside an sbatch allocation srun takes the geometry from it; --mpi picks the PMI flavour.
    argv = [
        "srun",
        "--kill-on-bad-exit=1",
    ]  # one failing rank ends the step instead of leaving the others waiting
    if launcher.mpi:
        argv.append(f"--mpi={launcher.mpi}")
    return [*argv, *launcher.args]


def mpirun(launcher: Launcher, res: Resources) -> list[str]:
    argv = ["mpirun", "-n", str(res.tasks)]
    if os.geteuid() == 0:
        argv.append(
            "--allow-run-as-root"
        )  # Open MPI refuses root without it; test beds and containers run as root
    return [*argv, *launcher.args]


def torchrun(launcher: Launcher, res: Resources) -> list[str]:
    per_node = res.gpus_on_node or res.ntasks_per_node
    return ["torchrun", f"--nnodes={res.nodes}", f"--nproc-per-node={per_node}", *launcher.args]


BUILDERS = {"srun": srun, "mpirun": mpirun, "torchrun": torchrun}


def launch_argv(launcher: Launcher, res: Resources) -> list[str]:
    """The argv prefix that starts one rank per task for ``res`` with ``launcher``."""
    try:
        build = BUILDERS[launcher.type]
    except KeyError:
        raise ConfigError(
            f"launcher {launcher.name!r} has unknown type {launcher.type!r}",
            hint=f"use one of {', '.join(BUILDERS)}",
        ) from None
    return build(launcher, res)
