"""Kept for code written against ``hpcx.io.metrics``: the I/O accounting lives in :mod:`hpcx.profiling.iometrics`."""

from hpcx.profiling.iometrics import FLUSH_EVERY_S, OPS, add, event, flush, profile_dir, timed, totals

__all__ = ["FLUSH_EVERY_S", "OPS", "add", "event", "flush", "profile_dir", "timed", "totals"]
