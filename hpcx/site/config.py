"""Layered configuration: command line > HPCX_* environment > user config file > site file > builtin.

Every resolved value is returned together with the layer it came from, so `hpcx config show` and the run
manifest can say why a job got what it got.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcx.errors import ConfigError
from hpcx.fsutil import YamlError, load_yaml
from hpcx.site.cache import validated
from hpcx.site.schema import validate
from hpcx.spec import Origin

# Request values a user may default; HPCX_<NAME> in the environment sets each one.
DEFAULT_KEYS = (
    "kind",
    "partition",
    "time",
    "nodes",
    "ntasks_per_node",
    "cpus_per_task",
    "gpus_per_node",
    "mem",
    "account",
    "qos",
)

USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "version": {"enum": [1]},
        "site": {"type": "string"},
        "runs_root": {"type": "string"},
        "template_dirs": {"type": "array", "items": {"type": "string"}},
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: {"type": ["string", "integer"]} for k in DEFAULT_KEYS},
        },
    },
}


@dataclass(frozen=True)
class UserConfig:
    path: Path | None
    site: str | None = None
    runs_root: str | None = None
    template_dirs: tuple[Path, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """$HPCX_CONFIG, else $XDG_CONFIG_HOME/hpcx/config.yaml, else ~/.config/hpcx/config.yaml."""
    env = os.environ if env is None else env
    if env.get("HPCX_CONFIG"):
        return Path(env["HPCX_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "hpcx" / "config.yaml"


def load_user_config(env: Mapping[str, str] | None = None) -> UserConfig:
    """The user's config file, validated (once per content: see hpcx.site.cache); an absent file is an empty
    config (HPCX_CONFIG must exist)."""
    env = os.environ if env is None else env
    path = user_config_path(env)
    if not path.exists():
        if env.get("HPCX_CONFIG"):
            raise ConfigError(
                f"HPCX_CONFIG names {str(path)!r}, which does not exist",
                hint="create it or unset HPCX_CONFIG",
            )
        return UserConfig(None)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"user config {str(path)!r} cannot be read: {exc}") from exc
    doc = validated(raw, "user", lambda raw: _parse_user_config(path, raw))
    return UserConfig(
        path=path,
        site=doc.get("site"),
        runs_root=doc.get("runs_root"),
        template_dirs=tuple(Path(os.path.expanduser(d)).resolve() for d in doc.get("template_dirs", ())),
        defaults=dict(doc.get("defaults", {})),
    )


def _parse_user_config(path: Path, raw: bytes) -> Any:
    try:
        doc = load_yaml(raw) or {}
    except YamlError as exc:
        raise ConfigError(f"user config {str(path)!r} cannot be read: {exc}") from exc
    problems = validate(doc, USER_SCHEMA)
    if problems:
        raise ConfigError(f"user config {str(path)!r} is invalid:\n  " + "\n  ".join(problems))
    return doc


def env_defaults(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Request defaults from HPCX_PARTITION, HPCX_TIME, HPCX_ACCOUNT, ... (HPCX_ + the key in capitals)."""
    env = os.environ if env is None else env
    return {k: env[f"HPCX_{k.upper()}"] for k in DEFAULT_KEYS if env.get(f"HPCX_{k.upper()}")}


def layered(layers: list[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge ``(source, values)`` layers, highest precedence first; None never overrides."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for key, value in layer.items():
            if value is not None and key not in values:
                values[key], sources[key] = value, source
    return values, sources


def origins(
    sources: Mapping[str, str], *, site_file: str | None, user_file: Path | None
) -> dict[str, Origin]:
    """Where each resolved value came from, with the file for the user and site layers, so that an error about a
    value can name the place to fix it (`HPCX_TIME`, the site file's `defaults.time`), not a flag never typed."""
    files = {
        "site": site_file if site_file != "builtin" else None,
        "user": str(user_file) if user_file else None,
    }
    return {key: (source, files.get(source)) for key, source in sources.items()}
