"""hpcx: a batch toolkit for Slurm/MPI supercomputers.

Importing hpcx does nothing but define the version: the login side (``hpcx.cli``) and the compute side
(``hpcx.runtime``, ``hpcx.profiling``) are imported explicitly by whoever needs them. ``hpcx.region`` is the
one shortcut, loaded on first use so that ``import hpcx`` stays light.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "region":
        from hpcx.profiling.regions import region

        return region
    raise AttributeError(f"module 'hpcx' has no attribute {name!r}")
