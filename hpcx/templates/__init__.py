"""Render job scripts from Jinja templates: sandboxed, StrictUndefined, every expression shell-quoted.

Templates are searched in the site's template directories first, then in the templates shipped with hpcx.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hpcx.errors import TemplateError
from hpcx.fsutil import cache_dir
from hpcx.templates.quoting import Shell, join_argv, quote

SUFFIX = ".sbatch.j2"
__all__ = ["Shell", "quote", "join_argv", "search_path", "template_dirs", "list_kinds", "render", "Rendered"]


def builtin_dir() -> Path:
    """The directory of the templates that ship with hpcx (the wheel's package data, or the source checkout)."""
    try:
        return Path(str(resources.files("hpcx.job_templates")))
    except ModuleNotFoundError:  # running from a source tree that was never pip-installed
        return Path(__file__).resolve().parents[2] / "job_templates"


def search_path(site_dirs: Sequence[Path], user_dirs: Sequence[Path] = ()) -> list[tuple[Path, str]]:
    """Every directory templates are searched in, in order, with the layer that put it there: the user config's
    template_dirs (user), the site file's (site), $HPCX_TEMPLATE_DIR (env, colon-separated; the hpcx modulefile
    sets it), then hpcx's own (builtin). Only the site's and hpcx's own may change locked blocks."""
    env_dirs = [Path(d) for d in os.environ.get("HPCX_TEMPLATE_DIR", "").split(":") if d]
    layers = ((user_dirs, "user"), (site_dirs, "site"), (env_dirs, "env"), ([builtin_dir()], "builtin"))
    return [(d, layer) for dirs, layer in layers for d in dirs]


def template_dirs(site_dirs: Sequence[Path]) -> list[Path]:
    """The site's directories, then $HPCX_TEMPLATE_DIR, then hpcx's own templates."""
    return [d for d, _ in search_path(site_dirs)]


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


# How templates compile. The compiled code depends on these as much as on the source, so they key the bytecode cache.
_SETTINGS: dict[str, Any] = {
    "autoescape": False,
    "keep_trailing_newline": True,
    "trim_blocks": True,
    "lstrip_blocks": True,
}
# Another key's directory unused this long is removed (another hpcx may still use it).
_STALE_CACHE_S = 7 * 86400


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates on disk, one directory per compile key: hpcx's version and the code of this package
    (the finalize and filters), Jinja's version and _SETTINGS. Jinja itself keys only by the source's checksum, so
    without this an upgrade or a changed setting would keep rendering the old way."""
    root = cache_dir("jinja")
    if root is None:
        return None
    from hpcx import __version__

    digest = hashlib.sha256(repr((__version__, jinja2.__version__, sorted(_SETTINGS.items()))).encode())
    for source in (Path(__file__), Path(__file__).with_name("quoting.py")):
        digest.update(source.read_bytes())
    key = digest.hexdigest()[:16]
    _remove_stale(root, keep=key)
    try:
        (root / key).mkdir(exist_ok=True)
        os.utime(root / key)  # in use: another hpcx's clean-up measures "unused" from this
    except OSError:
        return None
    return _TolerantCache(str(root / key))


class _TolerantCache(jinja2.FileSystemBytecodeCache):
    """A cache directory removed under a running hpcx (another version's clean-up, a tmp reaper) means compiling
    again, never a traceback."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except OSError:
            pass

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _remove_stale(root: Path, keep: str) -> None:
    """Drop the flat cache files of hpcx before keyed directories, and other keys' directories left unused."""
    now = time.time()
    for entry in root.iterdir():
        try:
            if entry.is_file():
                entry.unlink()
            elif entry.name != keep and now - entry.stat().st_mtime > _STALE_CACHE_S:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass  # another process removed it first, or it is not ours to remove


@functools.lru_cache(maxsize=8)
def _environment(dirs: tuple[Path, ...]) -> ImmutableSandboxedEnvironment:
    """One environment per search path: Jinja caches compiled templates in it (and checks their mtimes)."""
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        # Compiled templates kept on disk: a new process skips compiling.
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        # Every {{ expression }} goes through quote(): a template cannot forget to quote a user value.
        finalize=quote,
        **_SETTINGS,
    )
    env.filters["sh"] = quote
    env.filters["argv"] = join_argv
    return env


def _under(filename: str, roots: Sequence[Path]) -> bool:
    path = str(Path(filename).resolve())
    return any(path.startswith(str(root.resolve()) + "/") for root in roots)


def _references(tree: jinja2.nodes.Template) -> list[str]:
    """Every template a template names literally: its parent, includes and imports."""
    nodes: Iterator[
        jinja2.nodes.Extends | jinja2.nodes.Include | jinja2.nodes.Import | jinja2.nodes.FromImport
    ]
    nodes = tree.find_all(
        (jinja2.nodes.Extends, jinja2.nodes.Include, jinja2.nodes.Import, jinja2.nodes.FromImport)
    )
    return [n.template.value for n in nodes if isinstance(n.template, jinja2.nodes.Const)]


def _check_unowned(tree: jinja2.nodes.Template, filename: str, locked: Sequence[str]) -> str:
    """Refuse a template that overrides a locked block, does not extend one parent by name, or emits text outside
    its blocks; return its parent's name."""
    overridden = sorted({b.name for b in tree.find_all(jinja2.nodes.Block)} & set(locked))
    if overridden:
        line = next(b.lineno for b in tree.find_all(jinja2.nodes.Block) if b.name in overridden)
        raise TemplateError(
            f"template {filename}:{line}: overrides block(s) {', '.join(overridden)}, which the site locked",
            hint="remove those blocks; the site's versions apply",
        )
    extends = [n for n in tree.body if isinstance(n, jinja2.nodes.Extends)]
    nested = [n for n in tree.find_all(jinja2.nodes.Extends) if n not in extends]
    if len(extends) != 1 or nested or not isinstance(extends[0].template, jinja2.nodes.Const):
        line = (nested or extends[1:] or extends)[0].lineno if (nested or extends) else 1
        raise TemplateError(
            f"template {filename}:{line}: must {{% extends %}} one site template by name while blocks are locked",
            hint='start it with {% extends "base.sbatch.j2" %}',
        )
    after_extends = False
    for node in tree.body:
        after_extends = after_extends or node is extends[0]
        if isinstance(node, (jinja2.nodes.Extends, jinja2.nodes.Block)):
            continue
        if isinstance(node, jinja2.nodes.Output) and after_extends and _blank(node):
            continue  # blank lines after the {% extends %} are never emitted
        if not isinstance(node, jinja2.nodes.Output):
            # A top-level {% set %}, import or macro binds a name in the context the parent's locked blocks
            # read ({% set acct = "x" %} rewrote the locked #SBATCH --account): set names inside a block instead.
            raise TemplateError(
                f"template {filename}:{node.lineno}: a top-level {{% {type(node).__name__.lower()} %}} would change "
                f"the names the site's locked block(s) {', '.join(locked)} read",
                hint="move it inside the unlocked block that uses it, e.g. {% block launch %}{% set n = 2 %}...",
            )
        where = (
            "after its blocks" if after_extends else "before its {% extends %}, ahead of the site's header"
        )
        raise TemplateError(
            f"template {filename}:{node.lineno}: emits text outside the blocks it may override ({where}; "
            f"the site locked {', '.join(locked)})",
            hint="put it inside an unlocked block such as {% block launch %}",
        )
    return str(extends[0].template.value)


def _blank(node: jinja2.nodes.Output) -> bool:
    return all(isinstance(n, jinja2.nodes.TemplateData) and not n.data.strip() for n in node.nodes)


def _source(env: jinja2.Environment, name: str) -> tuple[str, str]:
    """Template ``name``'s source and the file it was read from."""
    # _environment() always gives a FileSystemLoader, and a FileSystemLoader always names the file it read.
    assert env.loader is not None
    source, filename, _ = env.loader.get_source(env, name)
    assert filename is not None
    return source, filename


def _check_locks(env: jinja2.Environment, name: str, trusted: Sequence[Path], locked: Sequence[str]) -> None:
    """Refuse to render kind ``name`` if a template the admin does not own could change a locked block.

    Templates under ``trusted`` (the site file's template_dirs and hpcx's own) are the admin's. Every other one
    (the user's template_dirs, $HPCX_TEMPLATE_DIR) may only override unlocked blocks of a parent, and may not
    take the name of a template that an admin's template uses (extends, includes or imports).
    """
    todo: list[tuple[str, str | None]] = [(name, None)]  # (template name, the admin's template naming it)
    seen: set[str] = set()
    while todo:
        current, named_by = todo.pop()
        source, filename = _source(env, current)
        tree = env.parse(source, current, filename)
        seen.add(current)
        if _under(filename, trusted):
            todo += [(ref, filename) for ref in _references(tree) if ref not in seen]
            continue
        if named_by is not None:
            raise TemplateError(
                f"template {filename} takes the name {current!r}, which the site's template {named_by} uses, "
                f"while blocks are locked",
                hint="give your template another name",
            )
        parent = _check_unowned(tree, filename, locked)
        if parent in seen:
            raise TemplateError(
                f"template {filename}: its {{% extends {parent!r} %}} leads back to itself, never to a site template",
                hint="extend a template of the site or of hpcx under a name your own templates do not use",
            )
        todo.append((parent, None))


def render(
    kind: str,
    context: dict[str, Any],
    site_dirs: Sequence[Path] = (),
    *,
    user_dirs: Sequence[Path] = (),
    locked: Sequence[str] = (),
) -> Rendered:
    """Render job kind ``kind`` with ``context``; raise TemplateError naming the kind or the missing value.

    Templates are searched in ``user_dirs``, then ``site_dirs``, then $HPCX_TEMPLATE_DIR, then hpcx's own. While
    ``locked`` names blocks, only templates under ``site_dirs`` and hpcx's own are trusted: every other template in
    the chain is checked (see _check_locks), so the locked blocks render exactly as the site wrote them.
    """
    dirs = (*user_dirs, *template_dirs(site_dirs))
    env = _environment(dirs)
    name = kind + SUFFIX
    try:
        template = env.get_template(name)
        if locked:
            _check_locks(env, name, (*site_dirs, builtin_dir()), locked)
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
