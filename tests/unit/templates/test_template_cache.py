"""The compiled-template cache on disk never serves code compiled under other settings or another hpcx."""

from __future__ import annotations

import os
import time

import pytest

import hpcx.templates as templates

TEMPLATE = "{% if true %}\nX={{ value }}\n{% endif %}\n"


@pytest.fixture
def kind_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HPCX_TEMPLATE_DIR", raising=False)
    d = tmp_path / "kinds"
    d.mkdir()
    (d / "probe.sbatch.j2").write_text(TEMPLATE)
    templates._environment.cache_clear()
    yield d
    templates._environment.cache_clear()


def _render(d):
    templates._environment.cache_clear()  # a new process, as far as the in-memory cache goes
    return templates.render("probe", {"value": "a b"}, [d]).text


def test_a_changed_setting_is_seen_although_the_source_is_cached(kind_dir, monkeypatch):
    assert _render(kind_dir) == "X='a b'\n"  # trim_blocks: the {% %} lines leave no blank line
    assert list((kind_dir.parent / "cache" / "hpcx" / "jinja").rglob("*.cache")), "nothing was cached on disk"
    monkeypatch.setitem(templates._SETTINGS, "trim_blocks", False)
    assert _render(kind_dir) == "\nX='a b'\n\n"


def test_another_hpcx_version_compiles_again(kind_dir, monkeypatch):
    import hpcx

    _render(kind_dir)
    root = kind_dir.parent / "cache" / "hpcx" / "jinja"
    before = {p.name for p in root.iterdir()}
    monkeypatch.setattr(hpcx, "__version__", hpcx.__version__ + ".post1")
    assert _render(kind_dir) == "X='a b'\n"
    new = {p.name for p in root.iterdir()} - before
    assert len(new) == 1, "the new version must compile into its own key"


def test_stale_cache_directories_and_the_old_flat_files_are_removed(kind_dir):
    root = kind_dir.parent / "cache" / "hpcx" / "jinja"
    root.mkdir(parents=True)
    (root / "__jinja2_0123.cache").write_bytes(b"old flat layout")
    old, recent = root / ("0" * 16), root / ("1" * 16)
    for d in (old, recent):
        d.mkdir()
    week_ago = time.time() - 8 * 86400
    os.utime(old, (week_ago, week_ago))
    _render(kind_dir)
    names = {p.name for p in root.iterdir()}
    assert old.name not in names and "__jinja2_0123.cache" not in names
    assert recent.name in names, "another hpcx's recently used cache is left alone"


def test_a_cache_in_use_is_not_stale_and_one_removed_under_us_is_no_traceback(kind_dir):
    _render(kind_dir)
    root = kind_dir.parent / "cache" / "hpcx" / "jinja"
    (key,) = list(root.iterdir())
    week_ago = time.time() - 8 * 86400
    os.utime(key, (week_ago, week_ago))
    _render(kind_dir)
    assert time.time() - key.stat().st_mtime < 3600, "using a cache directory must mark it as used"
    import shutil

    shutil.rmtree(root)  # another hpcx's clean-up, between two renders of one process
    (kind_dir / "other.sbatch.j2").write_text(TEMPLATE)
    assert templates.render("other", {"value": "x"}, [kind_dir]).text == "X=x\n"
