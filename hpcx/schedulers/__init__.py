"""Scheduler backends, registered by name and imported on lookup."""

from __future__ import annotations

import importlib

from hpcx.errors import ConfigError
from hpcx.schedulers.base import FINISHED_STATES, JobRef, JobState, Scheduler

_REGISTRY = {"slurm": "hpcx.schedulers.slurm:SlurmScheduler", "local": "hpcx.schedulers.local:LocalScheduler"}

__all__ = ["FINISHED_STATES", "JobRef", "JobState", "Scheduler", "get_scheduler"]


def get_scheduler(name: str) -> Scheduler:
    """The backend called ``name`` (slurm, local)."""
    try:
        module, cls = _REGISTRY[name].split(":")
    except KeyError:
        raise ConfigError(
            f"scheduler {name!r} is unknown", hint=f"use one of {', '.join(_REGISTRY)}"
        ) from None
    return getattr(importlib.import_module(module), cls)()
