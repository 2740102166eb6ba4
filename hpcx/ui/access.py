"""Who may read, and what: the dashboard's token and the one rule for paths.

Every request carries the token, as ``?token=`` (the URL `hpcx ui` prints) or the cookie the first such request
sets (HttpOnly, SameSite=Strict: the page's own requests carry it, no other site's); it is compared in constant
time. Every file the server reads is named by a run id (and a task number), never by a path from the request,
and resolves inside the runs root: ``..``, an absolute name, or a symlink that leads out of the root is not there
(404), whoever made it.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from http.cookies import CookieError, SimpleCookie
from pathlib import Path

COOKIE = "hpcx_ui_token"
TOKEN_BYTES = 24
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")  # what a run directory's name may be here


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison (hmac.compare_digest) of the request's token with the server's."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "replace"))


def cookie_token(header: str | None) -> str | None:
    """The token in a Cookie header, None when there is none or the header is malformed."""
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def set_cookie(token: str) -> str:
    """The Set-Cookie value that lets the page's own requests through without the token in their URL."""
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"


@functools.lru_cache(maxsize=16)
def resolved(root: Path) -> Path:
    """The runs root with its symlinks resolved, once per server (it is asked on every request)."""
    return root.resolve()


def inside(root: Path, *parts: str) -> Path | None:
    """``root / parts`` resolved (symlinks followed), or None when it is not inside the resolved ``root``, a
    part is empty, ``.``, ``..`` or holds a separator, or the path does not exist."""
    if any(not p or p in (".", "..") or "/" in p or "\\" in p or "\x00" in p for p in parts):
        return None
    base = resolved(root)
    try:
        target = base.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    return target if target == base or target.is_relative_to(base) else None


def run_dir(root: Path, run_id: str) -> Path | None:
    """The directory of run ``run_id`` inside ``root``, None when the id is not a run id or leads elsewhere."""
    if not RUN_ID.fullmatch(run_id):
        return None
    found = inside(root, run_id)
    return found if found is not None and found.is_dir() and found.parent == resolved(root) else None


def contained(root: Path, path: Path) -> bool:
    """Whether ``path`` (a file the server is about to read) resolves inside ``root``: a symlink in a run
    directory that points out of it is not followed."""
    try:
        return path.resolve(strict=True).is_relative_to(resolved(root))
    except (OSError, RuntimeError):
        return False
