"""Adaptive search over job arrays (`hpcx tune`), with no database server and no lock file.

A study is a run directory like a sweep's. Its spec (``spec``) names the search space, the objectives, the
budget, the sampler, the early-stopping rule and the workers. The study's state is files under its ``trials/``
folder, each created once with O_EXCL (``store``), so one directory listing gives any worker the whole state;
the samplers are Optuna's, used as a library over a study rebuilt in memory from those files (``sampling``); the
stopping rules (``stopping``: ASHA, Hyperband's brackets, the median rule, and ASHA over several objectives by
non-dominated sorting) decide from the same listing. Used by `hpcx tune` on the login node and by the worker tasks
inside the job; it imports neither ``hpcx.cli`` nor ``hpcx.runtime`` internals.
"""

from hpcx.tune.trial import Trial, trial

__all__ = ["Trial", "trial"]
