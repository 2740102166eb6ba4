"""Site configuration: find the site file, load and validate it, and say where each value came from."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.errors import ConfigError
from hpcx.fsutil import YamlError, load_yaml
from hpcx.site.cache import validated
from hpcx.site.checks import cross_check
from hpcx.site.model import Launcher, NamedResource, Partition, Site, build_site, builtin_local_doc
from hpcx.site.schema import validate

__all__ = [
    "Launcher",
    "NamedResource",
    "Partition",
    "Site",
    "SiteChoice",
    "choose_site",
    "load_site",
    "site_source",
    "runs_root",
    "system_site_files",
    "LOCAL_SITE",
]

LOCAL_SITE = "local"  # `--site local`, HPCX_SITE=local: the builtin local site, asked for by name
SYSTEM_SITE_FILE = Path("/etc/hpcx/site.yaml")
PIN_HINT = "pin it: hpcx site discover -o FILE, then --site FILE or HPCX_SITE=FILE"


def system_site_files(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where an admin puts the site file for every user, in the order tried: hpcx/site.yaml in each of
    $XDG_CONFIG_DIRS's directories (XDG's order, most important first), then /etc/hpcx/site.yaml."""
    env = os.environ if env is None else env
    dirs = [d for d in env.get("XDG_CONFIG_DIRS", "").split(":") if d]
    return [*(Path(d) / "hpcx" / "site.yaml" for d in dirs), SYSTEM_SITE_FILE]


def site_source(cli_path: str | None, user_site: str | None = None) -> tuple[str | None, str]:
    """Which site file applies, and why: --site, HPCX_SITE, the user config's site, a system-wide site file
    (``system``); ``(None, "auto")`` when there is none: then the live cluster, else the builtin local site
    (``choose_site``). ``local`` names the builtin local site."""
    if cli_path:
        return cli_path, "cli"
    if os.environ.get("HPCX_SITE"):
        return os.environ["HPCX_SITE"], "env"
    if user_site:
        return user_site, "user"
    for path in system_site_files():
        if path.is_file():
            return str(path), "system"
    return None, "auto"


@dataclass(frozen=True)
class SiteChoice:
    """The site in use, the layer that chose it (cli, env, user, system, cluster, builtin), and why."""

    site: Site
    origin: str
    path: str | None  # the site file; None for the live cluster and the builtin local site
    why: str = ""  # for the live cluster and the builtin site: what was found instead of a site file

    def describe(self) -> str:
        """One line for people: which site, where from, and how to pin it."""
        layer = {
            "cli": "--site",
            "env": "HPCX_SITE",
            "user": "the user config's site",
            "system": "the system-wide site file",
        }.get(self.origin, self.origin)
        if self.origin == "cluster":
            return f"site: live cluster {self.site.cluster} ({self.why}; {PIN_HINT})"
        if self.path is None or self.path == LOCAL_SITE:
            how = self.why if self.path is None else f"asked for by {layer}"
            return f"site: builtin local site, jobs run on this machine ({how})"
        return f"site: {self.site.source} (from {layer})"


def choose_site(cli_path: str | None, user_site: str | None = None) -> SiteChoice:
    """The site a command uses: the site file ``site_source`` finds; without one the live Slurm cluster,
    discovered (cached per user for a few minutes); the builtin local site only where no Slurm answers."""
    path, origin = site_source(cli_path, user_site)
    if path == LOCAL_SITE:
        return SiteChoice(load_site(None), origin, path)
    if path is not None:
        return SiteChoice(load_site(path), origin, path)
    from hpcx.site.discover import live_site  # yaml and Slurm: only without a site file

    live, why = live_site()
    if live is not None:
        return SiteChoice(live, "cluster", None, why)
    return SiteChoice(load_site(None), "builtin", None, why)


def load_site(path: str | None, *, cluster: str | None = None) -> Site:
    """Load and validate the site file at ``path`` (None or ``local``: the builtin local site).

    Raises ConfigError with one line per problem, each naming the key path, the value and what was expected.
    """
    if path is None or path == LOCAL_SITE:
        doc = builtin_local_doc()
        return build_site(doc, source="builtin", raw=json.dumps(doc, sort_keys=True).encode())
    p = Path(path).expanduser()
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"site file {str(p)!r} cannot be read: {exc.strerror}",
            hint="pass an existing file with --site or HPCX_SITE",
        ) from exc
    doc = validated(raw, "site", lambda raw: _parse_and_validate(p, raw))
    if cluster is not None and cluster not in doc["clusters"]:
        raise ConfigError(
            f"cluster {cluster!r} is not in site file {str(p)!r}",
            hint=f"known clusters: {', '.join(doc['clusters'])}",
        )
    return build_site(doc, source=str(p.resolve()), raw=raw, cluster=cluster)


def _parse_and_validate(p: Path, raw: bytes) -> Any:
    try:
        doc = load_yaml(raw)
    except YamlError as exc:
        tab = "\t" in raw.decode(errors="replace")
        raise ConfigError(
            f"site file {str(p)!r} is not valid YAML{exc.where}: {exc.problem}",
            hint="indent with spaces: YAML does not allow tabs" if tab else None,
        ) from exc
    problems = validate(doc)
    if not problems:  # references are followed only in a document of the right shape
        problems = cross_check(doc, p.resolve().parent)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ConfigError(f"site file {str(p)!r} is invalid:\n  {shown}{more}")
    return doc


def runs_root(site: Site | None, user_root: str | None = None) -> tuple[Path, str]:
    """Where run directories live, and why: HPCX_RUNS, the user config, the site file, else ~/hpcx-runs
    (``site`` None: not loaded, because HPCX_RUNS or the user config decide)."""
    for value, source in (
        (os.environ.get("HPCX_RUNS"), "env"),
        (user_root, "user"),
        (site.runs_root if site is not None else None, "site"),
    ):
        if value:
            return Path(os.path.expandvars(os.path.expanduser(value))).resolve(), source
    return (Path.home() / "hpcx-runs").resolve(), "default"
