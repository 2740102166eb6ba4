"""Rendering rules as a template author and a user meet them: where templates are found and which one wins, what
every expression becomes in the script, the one-line errors of a bad template, the admin's locked blocks, and the
compiled-template cache on disk."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

import hpcx.templates as templates
from hpcx.errors import TemplateError
from hpcx.templates import builtin_dir, list_kinds, render, search_path, template_dirs

REPO = Path(__file__).resolve().parents[3]
BASE = "#!/bin/bash\n{% block header %}\n#SBATCH --partition=p\n{% endblock header %}\n{% block launch %}{% endblock %}\n"


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    """A private compiled-template cache and no $HPCX_TEMPLATE_DIR; every render starts from a new environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HPCX_TEMPLATE_DIR", raising=False)
    templates._environment.cache_clear()
    yield
    templates._environment.cache_clear()


def _dir(root: Path, name: str, **files: str) -> Path:
    d = root / name
    d.mkdir()
    for kind, text in files.items():
        (d / f"{kind}.sbatch.j2").write_text(text)
    return d


def _error(*args, **kw) -> str:
    with pytest.raises(TemplateError) as err:
        render(*args, **kw)
    return str(err.value)


# --- where templates are found ----------------------------------------------------------------------------


def test_hpcx_ships_its_kinds():
    assert (builtin_dir() / "base.sbatch.j2").read_text() == (
        REPO / "job_templates" / "base.sbatch.j2"
    ).read_text()
    assert {"serial", "mpi", "array", "torch-ddp"} <= set(list_kinds([]))
    assert "base" not in list_kinds([])


def test_hpcx_own_kinds_are_found_wherever_its_code_lies(monkeypatch):
    """From the installed package's data (a wheel), and from a source tree that was never installed."""
    monkeypatch.setattr(templates, "__file__", "/nowhere/hpcx/templates/__init__.py")
    assert (builtin_dir() / "serial.sbatch.j2").is_file()


def test_hpcx_own_kinds_are_found_in_a_source_tree_never_installed(monkeypatch):
    def not_installed(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(templates.resources, "files", not_installed)
    assert builtin_dir() == Path(templates.__file__).resolve().parents[2] / "job_templates"
    assert (builtin_dir() / "serial.sbatch.j2").is_file()


def test_the_search_path_is_user_site_env_then_hpcx(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCX_TEMPLATE_DIR", f"{tmp_path}/e1::{tmp_path}/e2:")
    got = search_path([tmp_path / "s"], [tmp_path / "u"])
    assert got == [
        (tmp_path / "u", "user"),
        (tmp_path / "s", "site"),
        (tmp_path / "e1", "env"),
        (tmp_path / "e2", "env"),
        (builtin_dir(), "builtin"),
    ]
    assert template_dirs([tmp_path / "s"]) == [
        tmp_path / "s",
        tmp_path / "e1",
        tmp_path / "e2",
        builtin_dir(),
    ]
    monkeypatch.delenv("HPCX_TEMPLATE_DIR")
    assert search_path([], []) == [(builtin_dir(), "builtin")]


def test_site_kinds_are_listed_with_hpcx_own(tmp_path):
    site = _dir(tmp_path, "site", zeta="", alpha="", base="")
    kinds = list_kinds([site, tmp_path / "missing"])
    assert kinds == sorted(kinds) and {"alpha", "zeta", "serial"} <= set(kinds) and "base" not in kinds


def test_the_first_directory_that_has_a_kind_wins(tmp_path):
    site = _dir(tmp_path, "site", serial="site serial\n", only="site only\n")
    user = _dir(tmp_path, "user", only="user only\n")
    assert render("serial", {}, [site]).text == "site serial\n"  # the site's shadows hpcx's own
    assert render("only", {}, [site], user_dirs=[user]).text == "user only\n"  # the user's shadows the site's


def test_a_render_names_the_template_and_its_source_hash(tmp_path):
    text = "echo {{ x }}\n"
    site = _dir(tmp_path, "site", probe=text)
    out = render("probe", {"x": 1}, [site])
    assert out.text == "echo 1\n" and out.template_path == str(site / "probe.sbatch.j2")
    assert out.template_sha256 == hashlib.sha256(text.encode()).hexdigest()


# --- what every expression becomes ------------------------------------------------------------------------


def test_every_expression_is_one_shell_word(tmp_path):
    site = _dir(
        tmp_path,
        "site",
        probe="A={{ a }}\nB={{ b | sh }}\nrun {{ argv | argv }}\n{% if flag %}F={{ flag }}{% endif %}\n",
    )
    out = render("probe", {"a": "x y", "b": "$(id)", "argv": ["p", "a b", ""], "flag": True}, [site]).text
    assert out == "A='x y'\nB='$(id)'\nrun p 'a b' ''\nF=1"  # trim_blocks: a tag eats its newline


def test_block_tags_leave_no_blank_lines_and_the_last_newline_stays(tmp_path):
    site = _dir(tmp_path, "site", probe="{% if true %}\n  {% if true %}\nX\n  {% endif %}\n{% endif %}\n")
    assert render("probe", {}, [site]).text == "X\n"


def test_a_template_cannot_change_what_it_is_given(tmp_path):
    site = _dir(tmp_path, "site", probe="{{ items.append(3) }}\n")
    assert _error("probe", {"items": [1]}, [site]).startswith(
        f"template {site / 'probe.sbatch.j2'} failed to render: "
    )


# --- the errors of a bad template -------------------------------------------------------------------------


def test_an_unknown_kind_lists_the_known_ones(tmp_path):
    site = _dir(tmp_path, "site", mykind="")
    message = _error("nope", {}, [site])
    assert message.startswith("job kind 'nope' has no template 'nope.sbatch.j2'; known kinds: ")
    assert message.split("known kinds: ")[1] == ", ".join(list_kinds([site]))


def test_a_missing_parent_is_named(tmp_path):
    site = _dir(tmp_path, "site", child='{% extends "gone.sbatch.j2" %}\n')
    assert _error("child", {}, [site]).startswith(
        f"template {site / 'child.sbatch.j2'} failed to render: 'gone.sbatch.j2' not found in search paths: "
    )


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    site = _dir(tmp_path, "site", broken="ok\n{% if %}\n")
    assert (
        _error("broken", {}, [site])
        == f"template {site / 'broken.sbatch.j2'}:2: Expected an expression, got 'end of statement block'"
    )


def test_a_missing_value_says_how_to_pass_it(tmp_path):
    site = _dir(tmp_path, "site", probe="echo {{ learning_rate }}\n")
    assert _error("probe", {}, [site]) == (
        f"template {site / 'probe.sbatch.j2'}: 'learning_rate' is undefined; pass the value with --set NAME=VALUE"
    )


# --- locked blocks: the admin's templates render as written ------------------------------------------------


@pytest.fixture
def admin(tmp_path) -> Path:
    return _dir(
        tmp_path,
        "admin",
        **{
            "site-base": BASE,
            "inc": "included\n",
            "uses-inc": '{% extends "site-base.sbatch.j2" %}{% block launch %}{% include "inc.sbatch.j2" %}{% endblock %}\n',
        },
    )


def _locked(kind: str, admin: Path, user: Path) -> str:
    return render(kind, {}, [admin], user_dirs=[user], locked=["header"]).text


def test_a_user_kind_filling_unlocked_blocks_renders_under_the_sites_header(tmp_path, admin):
    user = _dir(
        tmp_path,
        "user",
        mine='{% extends "site-base.sbatch.j2" %}\n\n{% block launch %}{% set x = 1 %}echo {{ x }}\n{% endblock %}\n\n',
    )
    assert _locked("mine", admin, user) == "#!/bin/bash\n#SBATCH --partition=p\necho 1\n"


def test_a_user_kind_setting_names_outside_its_blocks_is_refused(tmp_path, admin):
    user = _dir(tmp_path, "user", mine='{% extends "site-base.sbatch.j2" %}\n{% set job = 1 %}\n')
    assert _error("mine", {}, [admin], user_dirs=[user], locked=["header", "setup"]) == (
        f"template {user / 'mine.sbatch.j2'}:2: a top-level {{% assign %}} would change the names the site's "
        "locked block(s) header, setup read; move it inside the unlocked block that uses it, e.g. "
        "{% block launch %}{% set n = 2 %}..."
    )


def test_each_locked_block_a_user_kind_overrides_is_named(tmp_path, admin):
    text = '{% extends "site-base.sbatch.j2" %}\n{% block setup %}{% endblock %}\n{% block header %}{% endblock %}\n'
    user = _dir(tmp_path, "user", mine=text)
    assert _error("mine", {}, [admin], user_dirs=[user], locked=["header", "setup"]).startswith(
        f"template {user / 'mine.sbatch.j2'}:2: overrides block(s) header, setup, which the site locked; "
    )


def test_a_user_kind_overriding_a_locked_block_is_refused(tmp_path, admin):
    user = _dir(
        tmp_path,
        "user",
        mine='{% extends "site-base.sbatch.j2" %}\n{% block launch %}{% endblock %}\n'
        "{% block header %}\n#SBATCH --qos=high\n{% endblock %}\n",
    )
    assert _error("mine", {}, [admin], user_dirs=[user], locked=["header", "setup"]) == (
        f"template {user / 'mine.sbatch.j2'}:3: overrides block(s) header, which the site locked; "
        "remove those blocks; the site's versions apply"
    )


@pytest.mark.parametrize(
    "text, line",
    [
        ("#SBATCH --qos=high\necho\n", 1),  # no parent at all
        ('{% extends "site-base.sbatch.j2" %}\n{% extends "site-base.sbatch.j2" %}\n', 2),
        ('{% extends "site-base.sbatch.j2" %}\n{% if true %}\n{% extends "x.sbatch.j2" %}\n{% endif %}\n', 3),
        ("{% extends parent %}\n", 1),  # a parent chosen at render time
    ],
)
def test_a_user_kind_must_extend_one_site_template_by_name(tmp_path, admin, text, line):
    user = _dir(tmp_path, "user", mine=text)
    assert _error(
        "mine", {"parent": "site-base.sbatch.j2"}, [admin], user_dirs=[user], locked=["header"]
    ) == (
        f"template {user / 'mine.sbatch.j2'}:{line}: must {{% extends %}} one site template by name while blocks "
        'are locked; start it with {% extends "base.sbatch.j2" %}'
    )


@pytest.mark.parametrize(
    "text, line, where",
    [
        (
            '#SBATCH --qos=high\n{% extends "site-base.sbatch.j2" %}\n',
            1,
            "before its {% extends %}, ahead of the site's header",
        ),
        (
            '{% extends "site-base.sbatch.j2" %}\n{% block launch %}{% endblock %}\nrm -rf x\n',
            3,
            "after its blocks",
        ),
        (
            '{% extends "site-base.sbatch.j2" %}\n\n{% block launch %}{% endblock %}\nrm -rf x\n',
            4,
            "after its blocks",
        ),
    ],
)
def test_a_user_kind_emitting_text_outside_its_blocks_is_refused(tmp_path, admin, text, line, where):
    user = _dir(tmp_path, "user", mine=text)
    assert _error("mine", {}, [admin], user_dirs=[user], locked=["header", "setup"]) == (
        f"template {user / 'mine.sbatch.j2'}:{line}: emits text outside the blocks it may override ({where}; "
        "the site locked header, setup); put it inside an unlocked block such as {% block launch %}"
    )


def test_a_user_template_cannot_take_the_name_of_one_the_site_uses(tmp_path, admin):
    user = _dir(tmp_path, "user", inc="#SBATCH --qos=high\n")
    assert _error("uses-inc", {}, [admin], user_dirs=[user], locked=["header"]) == (
        f"template {user / 'inc.sbatch.j2'} takes the name 'inc.sbatch.j2', which the site's template "
        f"{admin / 'uses-inc.sbatch.j2'} uses, while blocks are locked; give your template another name"
    )


def test_every_template_the_site_names_is_checked_not_only_the_last(tmp_path, admin):
    (admin / "inc2.sbatch.j2").write_text("also included\n")
    (admin / "two.sbatch.j2").write_text('{% include "inc.sbatch.j2" %}{% include "inc2.sbatch.j2" %}')
    user = _dir(tmp_path, "user", inc="#SBATCH --qos=high\n")
    assert _error("two", {}, [admin], user_dirs=[user], locked=["header"]).startswith(
        f"template {user / 'inc.sbatch.j2'} takes the name 'inc.sbatch.j2', which the site's template "
        f"{admin / 'two.sbatch.j2'} uses"
    )


def test_a_user_kind_extending_itself_is_refused(tmp_path, admin):
    user = _dir(tmp_path, "user", mine='{% extends "mine.sbatch.j2" %}\n')
    assert _error("mine", {}, [admin], user_dirs=[user], locked=["header"]) == (
        f"template {user / 'mine.sbatch.j2'}: its {{% extends 'mine.sbatch.j2' %}} leads back to itself, never "
        "to a site template; extend a template of the site or of hpcx under a name your own templates do not use"
    )


def test_a_user_directory_beside_the_sites_is_not_the_sites(tmp_path, admin):
    """/x/admin-mine starts with the text /x/admin, but it is not under it."""
    user = _dir(tmp_path, "admin-mine", mine="#SBATCH --qos=high\n")
    assert "must {% extends %} one site template" in _error(
        "mine", {}, [admin], user_dirs=[user], locked=["header"]
    )


def test_the_sites_and_hpcx_own_templates_are_trusted(tmp_path, admin):
    user = _dir(tmp_path, "user")
    assert _locked("uses-inc", admin, user) == "#!/bin/bash\n#SBATCH --partition=p\nincluded\n"
    assert render("site-base", {}, [admin], user_dirs=[user], locked=["header"]).text == (
        "#!/bin/bash\n#SBATCH --partition=p\n"
    )
    hpcx_base = _dir(
        tmp_path, "more", mine='{% extends "base.sbatch.j2" %}{% block launch %}x{% endblock %}\n'
    )
    message = _error("mine", {}, [admin], user_dirs=[hpcx_base], locked=["header"])  # checked, then rendered
    assert message.endswith("'job' is undefined; pass the value with --set NAME=VALUE")


def test_without_locks_a_user_kind_may_do_anything(tmp_path, admin):
    user = _dir(tmp_path, "user", mine="#SBATCH --qos=high\n")
    assert render("mine", {}, [admin], user_dirs=[user]).text == "#SBATCH --qos=high\n"


# --- the compiled-template cache on disk ------------------------------------------------------------------


def _cache_root(tmp_path) -> Path:
    return tmp_path / "cache" / "hpcx" / "jinja"


def test_templates_are_compiled_once_into_one_directory(tmp_path):
    site = _dir(tmp_path, "site", probe="X={{ x }}\n")
    assert render("probe", {"x": "a b"}, [site]).text == "X='a b'\n"
    (key,) = _cache_root(tmp_path).iterdir()
    assert key.is_dir() and len(key.name) == 16 and list(key.glob("*.cache"))
    templates._environment.cache_clear()  # a new process: served from the cache, same script
    assert render("probe", {"x": "a b"}, [site]).text == "X='a b'\n"
    assert [p.name for p in _cache_root(tmp_path).iterdir()] == [key.name]


def test_the_cache_in_use_is_kept_however_old_and_other_keys_go_after_a_week(tmp_path):
    site = _dir(tmp_path, "site", probe="X\n")
    render("probe", {}, [site])
    root = _cache_root(tmp_path)
    (mine,) = root.iterdir()
    other_old, other_recent = root / ("a" * 16), root / ("b" * 16)
    other_old.mkdir(), other_recent.mkdir()
    eight_days, six_days = time.time() - 8 * 86400, time.time() - 6 * 86400
    for path in (*mine.iterdir(), mine):  # compiled long ago, unused since
        os.utime(path, (eight_days, eight_days))
    compiled = {p.name: p.stat().st_mtime for p in mine.iterdir()}
    os.utime(other_old, (eight_days, eight_days))
    os.utime(other_recent, (six_days, six_days))
    templates._environment.cache_clear()
    assert render("probe", {}, [site]).text == "X\n"
    assert sorted(p.name for p in root.iterdir()) == sorted([mine.name, other_recent.name])
    assert compiled == {p.name: p.stat().st_mtime for p in mine.iterdir()}, (
        "the compiled templates in use stay"
    )


def test_without_a_writable_cache_templates_still_render(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    site = _dir(tmp_path, "site", probe="X={{ x }}\n")
    assert render("probe", {"x": 1}, [site]).text == "X=1\n"
