"""hpcx: a batch toolkit for Slurm/MPI supercomputers.

Importing hpcx does nothing but define the version: the login side (``hpcx.cli``) and the compute side
(``hpcx.runtime``, ``hpcx.profiling``) are imported explicitly by whoever needs them.
"""

__version__ = "0.1.0"
