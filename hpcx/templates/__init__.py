"""Render job scripts from Jinja templates: sandboxed, StrictUndefined, every expression shell-quoted.

Templates are searched in the site's template directories first, then in the templates shipped with hpcx.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hpcx.errors import TemplateError
from hpcx.fsutil import cache_dir
from hpcx.templates.quoting import Shell, join_argv, quote

SUFFIX = ".sbatch.j2"
__all__ = ["Shell", "quote", "join_argv", "template_dirs", "list_kinds", "render", "Rendered"]


def builtin_dir() -> Path:
    """The directory of the templates that ship with hpcx (the wheel's package data, or the source checkout)."""
    try:
        return Path(str(resources.files("hpcx.job_templates")))
    except ModuleNotFoundError:  # running from a source tree that was never pip-installed
        return Path(__file__).resolve().parents[2] / "job_templates"


def template_dirs(site_dirs: Sequence[Path]) -> list[Path]:
    """The site's directories, then $HPCX_TEMPLATE_DIR (colon-separated; the hpcx modulefile sets it), then
    hpcx's own templates."""
    env_dirs = [Path(d) for d in os.environ.get("HPCX_TEMPLATE_DIR", "").split(":") if d]
    return [*site_dirs, *env_dirs, builtin_dir()]


def list_kinds(site_dirs: Sequence[Path]) -> list[str]:
    """Every job kind that can be rendered (site kinds first shadow the builtin ones)."""
    kinds = {
        p.name[: -len(SUFFIX)] for d in template_dirs(site_dirs) if d.is_dir() for p in d.glob(f"*{SUFFIX}")
    }
    return sorted(k for k in kinds if k != "base")


class Rendered:
    """A rendered script with the hash of the template source it came from."""

    def __init__(self, text: str, template_path: str, template_sha256: str) -> None:
        self.text = text
        self.template_path = template_path
        self.template_sha256 = template_sha256


@functools.lru_cache(maxsize=8)
def _environment(dirs: tuple[Path, ...]) -> ImmutableSandboxedEnvironment:
    """One environment per search path: Jinja caches compiled templates in it (and checks their mtimes)."""
    cache = cache_dir("jinja")
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        # Compiled templates kept on disk (keyed by the source's checksum): a new process skips compiling.
        bytecode_cache=jinja2.FileSystemBytecodeCache(str(cache)) if cache else None,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # Every {{ expression }} goes through quote(): a template cannot forget to quote a user value.
        finalize=quote,
    )
    env.filters["sh"] = quote
    env.filters["argv"] = join_argv
    return env


def _check_locks(
    env: jinja2.Environment, name: str, user_dirs: Sequence[Path], locked: Sequence[str]
) -> None:
    """Refuse a user template that overrides a block the site locked, or that escapes the site's base."""
    user_roots = [str(d.resolve()) + "/" for d in user_dirs]
    seen = set()
    while name and name not in seen:
        seen.add(name)
        source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        if not any(str(Path(filename).resolve()).startswith(root) for root in user_roots):
            return  # the site's own or hpcx's template: trusted
        tree = env.parse(source)
        overridden = sorted({b.name for b in tree.find_all(jinja2.nodes.Block)} & set(locked))
        if overridden:
            raise TemplateError(
                f"template {filename} overrides block(s) {', '.join(overridden)}, which the site locked",
                hint="remove those blocks; the site's versions apply",
            )
        parent = next(tree.find_all(jinja2.nodes.Extends), None)
        if parent is None or not isinstance(parent.template, jinja2.nodes.Const):
            raise TemplateError(
                f"template {filename} must {{% extends %}} a site template by name while blocks are locked",
                hint='start it with {% extends "base.sbatch.j2" %}',
            )
        name = parent.template.value


def render(
    kind: str,
    context: dict[str, Any],
    site_dirs: Sequence[Path] = (),
    *,
    user_dirs: Sequence[Path] = (),
    locked: Sequence[str] = (),
) -> Rendered:
    """Render job kind ``kind`` with ``context``; raise TemplateError naming the kind or the missing value.

    Templates are searched in ``user_dirs``, then ``site_dirs``, then hpcx's own; blocks in ``locked`` may only
    come from the site's or hpcx's templates.
    """
    dirs = (*user_dirs, *template_dirs(site_dirs))
    env = _environment(dirs)
    name = kind + SUFFIX
    try:
        template = env.get_template(name)
        if locked and user_dirs:
            _check_locks(env, name, user_dirs, locked)
    except jinja2.TemplateNotFound as exc:
        kinds = ", ".join(list_kinds([*user_dirs, *site_dirs])) or "none"
        raise TemplateError(
            f"job kind {kind!r} has no template {exc.name!r}", hint=f"known kinds: {kinds}"
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {exc.filename or name}:{exc.lineno}: {exc.message}") from exc
    try:
        text = template.render(**context)
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"template {template.filename}: {exc.message}", hint="pass the value with --set NAME=VALUE"
        ) from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {template.filename} failed to render: {exc}") from exc
    source = Path(template.filename or name).read_bytes()
    return Rendered(text, str(template.filename), hashlib.sha256(source).hexdigest())
