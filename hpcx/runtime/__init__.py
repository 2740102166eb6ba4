"""The compute side: rank identity, MPI + torch.distributed bring-up, parallel HDF5.

Importing this package imports nothing heavy; mpi4py, torch and h5py load inside the functions that need them.
"""

from hpcx.runtime.dist import Context, init, session, shutdown
from hpcx.runtime.metrics import log, progress
from hpcx.runtime.rankenv import RankEnv, detect

__all__ = ["Context", "RankEnv", "detect", "init", "log", "progress", "session", "shutdown"]
