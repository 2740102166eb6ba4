"""Grouping: replicates with the same parameters form a group; the baseline a comparison is made against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hpcx.compare.replicates import Replicate
from hpcx.errors import UsageError


@dataclass
class Group:
    """Replicates with the same parameters: each with its value and where the value was read (``source``)."""

    name: str
    params: dict[str, Any]
    members: list[tuple[Replicate, float]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.members]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def group_of(rep: Replicate, by: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    """The name and parameters of the group ``rep`` falls in."""
    params = {k: rep.params.get(k) for k in by} if by is not None else dict(rep.params)
    return ",".join(f"{k}={_fmt(v)}" for k, v in params.items()) or "all", params


def group_replicates(
    reps: Sequence[Replicate],
    values: Sequence[float],
    by: Sequence[str] | None,
    sources: Sequence[dict[str, Any]] | None = None,
) -> list[Group]:
    """Replicates with the same parameters (all of them, or those named in ``by``) form a group; groups keep
    the order their first replicate came in (the sweep's task order)."""
    groups: dict[str, Group] = {}
    for i, (rep, value) in enumerate(zip(reps, values)):
        name, params = group_of(rep, by)
        group = groups.setdefault(name, Group(name, params))
        group.members.append((rep, value))
        group.sources.append(dict(sources[i]) if sources is not None else {})
    return list(groups.values())


def find_baseline(groups: Sequence[Group], wanted: str) -> Group:
    """The group named ``wanted``, or the one group whose parameters include every ``k=v`` of it."""
    exact = [g for g in groups if g.name == wanted]
    if exact:
        return exact[0]
    pairs = dict(p.partition("=")[::2] for p in wanted.split(","))
    matching = [g for g in groups if all(k in g.params and _fmt(g.params[k]) == v for k, v in pairs.items())]
    if len(matching) == 1:
        return matching[0]
    shown = "; ".join(g.name for g in groups[:8])
    what = "matches no group" if not matching else f"matches {len(matching)} groups"
    raise UsageError(f"--baseline {wanted!r} {what}", hint=f"name one of the groups: {shown}")
