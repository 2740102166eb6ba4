"""site validate/show, and the admin's tools: discover (draft a site file from Slurm) and diff (drift)."""

from __future__ import annotations

from pathlib import Path

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.site import load_site
from hpcx.site.drift import Drift
from hpcx.site.live import draft_site, site_drift
from hpcx.site.show import site_doc, site_text


@cli.group()
def site() -> None:
    """Check and show the site configuration."""


@site.command("validate")
@click.argument("file", required=False)
@pass_ctx
def site_validate(obj: Ctx, file: str | None) -> None:
    """Check FILE (default: the current site file) against the schema; one line per problem."""
    # no site file: the live cluster's draft, or the local site
    loaded = load_site(file) if file else obj.site
    obj.emit(
        "site.validate",
        {"valid": True, "source": loaded.source, "sha256": loaded.sha256},
        lambda d: f"{d['source']}: valid",
    )


@site.command("show")
@pass_ctx
def site_show(obj: Ctx) -> None:
    """Print the loaded site: cluster, scheduler and partitions with their limits."""
    obj.emit("site.show", site_doc(obj.site, obj.site_origin), site_text)


@site.command("discover")
@click.option("-o", "--output", "output", metavar="FILE", help="Write the site file here (default: stdout).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@pass_ctx
def site_discover(obj: Ctx, output: str | None, force: bool) -> None:
    """Draft a site file from the live Slurm cluster (sinfo, scontrol, sacctmgr); review it before use."""
    draft = draft_site(Path(output) if output else None, force=force)
    result = {"cluster": draft.cluster, "output": output, "site": draft.doc}
    shown = f"wrote {output} (cluster {draft.cluster})" if output else draft.text.rstrip("\n")
    obj.emit("site.discover", result, lambda d: shown)


@site.command("diff")
@pass_ctx
def site_diff(obj: Ctx) -> None:
    """Compare the site file (--site / HPCX_SITE) with the live cluster; exit 1 when they differ, like diff."""
    drift = site_drift(obj.site_path)
    obj.emit("site.diff", drift.to_dict(), lambda d: _drift_text(d, drift.found))
    if drift.found:
        # Not ctx.exit(1): hpcx.cli.main runs click with standalone_mode=False and drops the code it returns.
        raise SystemExit(1)


def _drift_text(doc: dict, found: list[Drift]) -> str:
    if not found:
        return f"{doc['site']}: no drift from cluster {doc['cluster']}"
    return "\n".join(d.text() for d in found)
