"""The dashboard's token and path rule: constant-time token check, cookie parsing, nothing outside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpcx.ui import access


def test_tokens_are_long_random_and_matched_exactly():
    a, b = access.new_token(), access.new_token()
    assert a != b and len(a) >= 32
    assert access.token_matches(a, a)
    for wrong in (b, a[:-1], a + "x", "", None, a.upper() if a.upper() != a else a.lower()):
        assert not access.token_matches(a, wrong)


def test_the_comparison_is_hmac_compare_digest(monkeypatch):
    seen = []
    monkeypatch.setattr(access.hmac, "compare_digest", lambda x, y: seen.append((x, y)) or x == y)
    assert access.token_matches("abc", "abc")
    assert seen == [(b"abc", b"abc")]


def test_the_cookie_carries_the_token_and_a_malformed_header_carries_none():
    token = access.new_token()
    assert access.cookie_token(f"other=1; {access.COOKIE}={token}") == token
    assert access.cookie_token("other=1") is None
    assert access.cookie_token(None) is None
    assert access.cookie_token('bad"cookie\\') is None
    set_cookie = access.set_cookie(token)
    assert set_cookie.startswith(f"{access.COOKIE}={token};")
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/" in set_cookie


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    (root / "r1" / "metrics").mkdir(parents=True)
    (root / "r1" / "metrics" / "rank-00000.jsonl").write_text("{}\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, root / "escape")
    os.symlink(outside / "secret.txt", root / "r1" / "leak.txt")
    os.symlink(root / "r1", root / "alias")  # inside the root: another name of r1
    return root


def test_inside_resolves_within_the_root_only(root):
    assert access.inside(root, "r1", "metrics") == (root / "r1" / "metrics").resolve()
    assert access.inside(root, "r1", "leak.txt") is None  # a symlink out of the root
    assert access.inside(root, "escape") is None
    assert access.inside(root, "escape", "secret.txt") is None
    assert access.inside(root, "..", "elsewhere") is None
    assert access.inside(root, "r1/../..") is None
    assert access.inside(root, "r1", "") is None
    assert access.inside(root, "nope") is None


def test_run_dir_takes_only_a_run_directory_directly_under_the_root(root):
    assert access.run_dir(root, "r1") == (root / "r1").resolve()
    for bad in ("escape", "..", ".", "r1/metrics", "", "-r1", "a" * 300, "r1\x00", "missing"):
        assert access.run_dir(root, bad) is None, bad
    assert (
        access.run_dir(root, "alias") == (root / "r1").resolve()
    )  # a link to a run inside the root is that run


def test_contained_refuses_symlinks_out_and_missing_files(root):
    assert access.contained(root, root / "r1" / "metrics" / "rank-00000.jsonl")
    assert not access.contained(root, root / "r1" / "leak.txt")
    assert not access.contained(root, root / "escape" / "secret.txt")
    assert not access.contained(root, root / "r1" / "missing")


def test_a_token_is_24_random_bytes_and_a_given_token_that_cannot_be_encoded_is_refused_not_raised():
    assert len(access.new_token()) == 32  # 24 bytes, URL-safe base64
    assert not access.token_matches("abc", "\udcff")  # a lone surrogate from a hostile URL: no exception


def test_inside_refuses_a_part_holding_a_separator_or_dot_even_when_it_would_land_inside(root):
    for part in ("r1/metrics", "r1\\metrics", ".", "r1\x00"):
        assert access.inside(root, part) is None, repr(part)
    assert access.inside(root, "r1", "metrics/rank-00000.jsonl") is None
    assert access.inside(root) == root.resolve()  # the root itself is inside
