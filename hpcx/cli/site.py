"""site validate/show (and the admin's discovery tools)."""

from __future__ import annotations

import dataclasses

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.site import load_site


@cli.group()
def site() -> None:
    """Check and show the site configuration."""


@site.command("validate")
@click.argument("file", required=False)
@pass_ctx
def site_validate(obj: Ctx, file: str | None) -> None:
    """Check FILE (default: the current site file) against the schema; one line per problem."""
    loaded = load_site(file or obj.site_path)
    obj.emit(
        "site.validate",
        {"valid": True, "source": loaded.source, "sha256": loaded.sha256},
        lambda d: f"{d['source']}: valid",
    )


@site.command("show")
@pass_ctx
def site_show(obj: Ctx) -> None:
    """Print the loaded site: cluster, scheduler and partitions with their limits."""
    s = obj.site
    doc = {
        "name": s.name,
        "source": s.source,
        "origin": obj.site_origin,
        "cluster": s.cluster,
        "scheduler": s.scheduler,
        "partitions": {n: dataclasses.asdict(p) for n, p in s.partitions.items()},
    }

    def text(d: dict) -> str:
        lines = [
            f"site {d['name']} ({d['source']}, from {d['origin']}): cluster {d['cluster']}, {d['scheduler']}"
        ]
        for name, p in d["partitions"].items():
            lines.append(
                f"  {name:<10} max_time_min={p['max_time_min']} max_nodes={p['max_nodes']} "
                f"cpus_per_node={p['cpus_per_node']} gpus_per_node={p['gpus_per_node']}"
            )
        return "\n".join(lines)

    obj.emit("site.show", doc, text)
