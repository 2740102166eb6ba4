"""Profiling on the compute side: ``import hpcx.profiling`` gives the API for code wanting regions or metrics.

- :func:`region` marks a named span (``with region("forward"):`` or ``@region("step")``), timestamps only;
- :func:`log` records the job's own numbers per training step (the same function as ``hpcx.runtime.log``).

The sampler (``python -m hpcx.run`` starts it) records each rank's process tree and each node's sensors into
the run's ``profile/`` directory; nothing here starts a thread or imports torch, psutil or NVML.
"""

from hpcx.profiling.regions import flush, region
from hpcx.runtime.metrics import log

__all__ = ["flush", "log", "region"]
