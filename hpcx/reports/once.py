"""Say a thing once: what each node's sensors and energy figures report, grouped across nodes.

A 64-node job whose nodes have no RAPL and no NVIDIA driver has one status per source, with the nodes it holds
for (``n[1-64]``), not 64 copies of the same reason. Pure over the report's ``nodes`` rows.
"""

from __future__ import annotations

from typing import Any

from hpcx.reports.sharing import compress_nodelist


def source_status(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sensor's (``kind`` source) and energy figure's (``kind`` energy) status once per distinct
    (status, reason), with the nodes it holds for: ``nodes`` as a list and ``node_range`` as Slurm writes it."""
    groups: dict[tuple[str, str, str, str | None], list[str]] = {}
    for n in nodes:
        node = str(n["node"])
        for kind, items in (("source", n.get("sources") or {}), ("energy", n.get("energy") or {})):
            for name, rec in items.items():
                status = rec.get("status") or "unknown"
                if kind == "energy" and status == "measured" and "scope" in rec:
                    status = f"measured ({rec['scope']})"  # RAPL of a shared node: the node's, not the job's
                groups.setdefault((kind, name, status, rec.get("reason")), []).append(node)
    return [
        {
            "kind": kind,
            "name": name,
            "status": status,
            "reason": reason,
            "nodes": where,
            "node_range": compress_nodelist(where),
        }
        for (kind, name, status, reason), where in groups.items()
    ]


def unavailable_energy(nodes: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The energy figures that could not be measured, as (node range, [(figures, reason), ...]): one entry per
    set of nodes, each reason once with the figures it explains (``cpu_package, dram``: no RAPL ...)."""
    by_nodes: dict[str, dict[str, list[str]]] = {}
    for row in source_status(nodes):
        if row["kind"] == "energy" and row["status"] == "unavailable":
            reasons = by_nodes.setdefault(row["node_range"], {})
            reasons.setdefault(row["reason"] or "no reason recorded", []).append(row["name"])
    return [
        (where, [(", ".join(names), reason) for reason, names in reasons.items()])
        for where, reasons in by_nodes.items()
    ]
