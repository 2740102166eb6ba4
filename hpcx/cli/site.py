"""site validate/show, and the admin's tools: discover (draft a site file from Slurm) and diff (drift)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from hpcx.cli.app import Ctx, cli, pass_ctx
from hpcx.errors import ConfigError, UsageError
from hpcx.fsutil import atomic_write
from hpcx.site import LOCAL_SITE, Site, discover, load_site
from hpcx.site.drift import Drift, compare_sites
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
    if output and Path(output).exists() and not force:  # before asking Slurm anything
        raise UsageError(f"{output} exists", hint="pass --force to overwrite it, or choose another -o FILE")
    state = discover.read_cluster()
    doc = discover.draft_site_doc(state)
    discover.site_from_doc(doc, source="cluster")  # refuse to print a draft that would not validate
    text = discover.render_site_yaml(doc, state, datetime.now(timezone.utc))
    if output:
        _write(Path(output), text)
    result = {"cluster": state.cluster_name, "output": output, "site": doc}
    shown = f"wrote {output} (cluster {state.cluster_name})" if output else text.rstrip("\n")
    obj.emit("site.discover", result, lambda d: shown)


def _write(path: Path, text: str) -> None:
    try:
        atomic_write(path, text)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


@site.command("diff")
@pass_ctx
def site_diff(obj: Ctx) -> None:
    """Compare the site file (--site / HPCX_SITE) with the live cluster; exit 1 when they differ, like diff."""
    if obj.site_path in (None, LOCAL_SITE):  # the live cluster is what it is compared with; local is no file
        raise ConfigError("no site file to compare", hint="pass --site FILE or set HPCX_SITE")
    mine = load_site(obj.site_path)  # a broken site file fails before Slurm is asked anything
    live = discover.site_from_doc(discover.draft_site_doc(discover.read_cluster()), source="cluster")
    if mine.cluster != live.cluster:
        mine = _site_for_cluster(obj.site_path, live.cluster, fallback=mine)
    found = compare_sites(mine, live)
    doc = {"site": mine.source, "cluster": live.cluster, "drift": [d.to_dict() for d in found]}
    obj.emit("site.diff", doc, lambda d: _drift_text(d, found))
    if found:
        # Not ctx.exit(1): hpcx.cli.main runs click with standalone_mode=False and drops the code it returns.
        raise SystemExit(1)


def _site_for_cluster(path: str, cluster: str, *, fallback: Site) -> Site:
    """The site file's entry for ``cluster`` when it has one, else ``fallback`` (the drift then names both)."""
    try:
        return load_site(path, cluster=cluster)
    except ConfigError:
        return fallback


def _drift_text(doc: dict, found: list[Drift]) -> str:
    if not found:
        return f"{doc['site']}: no drift from cluster {doc['cluster']}"
    return "\n".join(d.text() for d in found)
