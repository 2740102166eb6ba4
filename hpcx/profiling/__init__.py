"""Profiling hooks on the compute side: per-rank records appended to the run directory's profile/."""
