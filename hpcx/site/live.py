"""The site file against the live cluster, for the admin's `hpcx site discover` (a draft of the site file from
what Slurm says now) and `hpcx site diff` (where a site file and the cluster disagree). Both ask Slurm now,
never the cached live site that commands without a site file use (hpcx.site.discover.live_site)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hpcx.errors import ConfigError, UsageError
from hpcx.fsutil import atomic_write
from hpcx.site import LOCAL_SITE, Site, discover, load_site
from hpcx.site.drift import Drift, compare_sites


@dataclass(frozen=True)
class Draft:
    """A site file drafted from the live cluster: its document and the YAML text written for the admin."""

    cluster: str
    doc: dict[str, Any]
    text: str


def draft_site(output: Path | None = None, *, force: bool = False) -> Draft:
    """Draft a site file from the live cluster, checked to validate, and write it to ``output`` when given
    (refused before Slurm is asked anything when it exists and not ``force``)."""
    if output and output.exists() and not force:
        raise UsageError(f"{output} exists", hint="pass --force to overwrite it, or choose another -o FILE")
    state = discover.read_cluster()
    doc = discover.draft_site_doc(state)
    discover.site_from_doc(doc, source="cluster")  # refuse a draft that would not validate
    draft = Draft(state.cluster_name, doc, discover.render_site_yaml(doc, state, datetime.now(timezone.utc)))
    if output:
        _write(output, draft.text)
    return draft


def _write(path: Path, text: str) -> None:
    try:
        atomic_write(path, text)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class SiteDrift:
    """A site file compared with the live cluster: the site as loaded, the cluster's name, what differs."""

    site: Site
    cluster: str
    found: list[Drift]

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site.source, "cluster": self.cluster, "drift": [d.to_dict() for d in self.found]}


def site_drift(path: str | None) -> SiteDrift:
    """Compare the site file at ``path`` with the live cluster: the file's entry for that cluster when it has
    one, else the file's default (the drift then names both clusters)."""
    if path is None or path == LOCAL_SITE:  # the live cluster is what it is compared with; local is no file
        raise ConfigError("no site file to compare", hint="pass --site FILE or set HPCX_SITE")
    mine = load_site(path)  # a broken site file fails before Slurm is asked anything
    live = discover.site_from_doc(discover.draft_site_doc(discover.read_cluster()), source="cluster")
    if mine.cluster != live.cluster:
        mine = _site_for_cluster(path, live.cluster, fallback=mine)
    return SiteDrift(mine, live.cluster, compare_sites(mine, live))


def _site_for_cluster(path: str, cluster: str, *, fallback: Site) -> Site:
    """The site file's entry for ``cluster`` when it has one, else ``fallback``."""
    try:
        return load_site(path, cluster=cluster)
    except ConfigError:
        return fallback
