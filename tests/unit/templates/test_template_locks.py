"""The site's locked blocks hold against every template the admin does not own: the user's template_dirs and
$HPCX_TEMPLATE_DIR alike. `hpcx render` is the user's command; the rendered script (or the refusal) the result."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TESTBED = REPO / "examples" / "sites" / "testbed.yaml"


@pytest.fixture
def locked_site(tmp_path: Path) -> Path:
    """The testbed site with header and environment locked, and its own (admin's) template directory."""
    admin = tmp_path / "admin-templates"
    admin.mkdir()
    (admin / "site-kind.sbatch.j2").write_text(
        '{% extends "base.sbatch.j2" %}\n{% block launch %}\necho site kind\n{% endblock %}\n'
    )
    site = tmp_path / "site.yaml"
    site.write_text(TESTBED.read_text() + f"locked_blocks: [header, environment]\ntemplate_dirs: [{admin}]\n")
    return site


@pytest.fixture
def user_dir(tmp_path: Path, hpcx) -> Path:
    """A user config whose template_dirs holds the user's own kinds."""
    mine = tmp_path / "mine"
    mine.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"version: 1\ntemplate_dirs: [{mine}]\n")
    hpcx.env["HPCX_CONFIG"] = str(config)
    return mine


def _render(hpcx, site: Path, kind: str):
    return hpcx("--site", str(site), "render", kind, "-p", "debug", "--", "true", check=False)


def test_text_before_extends_is_refused_with_path_and_line(hpcx, locked_site, user_dir):
    kind = user_dir / "early.sbatch.j2"
    kind.write_text(
        '#!/bin/bash\n#SBATCH --partition=gpu\n{% extends "base.sbatch.j2" %}\n'
        "{% block launch %}\necho hi\n{% endblock %}\n"
    )
    proc = _render(hpcx, locked_site, "early")
    assert proc.returncode == 2, proc.stdout
    assert f"template {kind}:1: emits text outside the blocks it may override" in proc.stderr
    assert "ahead of the site's header" in proc.stderr
    assert "--partition=gpu" not in proc.stdout


def test_template_from_hpcx_template_dir_is_checked_too(hpcx, locked_site, tmp_path):
    env_dir = tmp_path / "env-templates"
    env_dir.mkdir()
    kind = env_dir / "sneaky.sbatch.j2"
    kind.write_text(
        '{% extends "base.sbatch.j2" %}\n{% block header %}\n#SBATCH --qos=high\n{% endblock %}\n'
    )
    hpcx.env["HPCX_TEMPLATE_DIR"] = str(env_dir)
    proc = _render(hpcx, locked_site, "sneaky")
    assert proc.returncode == 2, proc.stdout
    assert f"template {kind}:2: overrides block(s) header, which the site locked" in proc.stderr


def test_a_user_base_cannot_replace_the_one_the_builtin_kinds_extend(hpcx, locked_site, user_dir):
    fake = user_dir / "base.sbatch.j2"
    fake.write_text("#!/bin/bash\n#SBATCH --partition=gpu\n{% block launch %}{% endblock %}\n")
    proc = _render(hpcx, locked_site, "serial")
    assert proc.returncode == 2, proc.stdout
    assert f"template {fake} takes the name 'base.sbatch.j2', which the site's template" in proc.stderr
    assert "serial.sbatch.j2 uses" in proc.stderr


def test_a_kind_that_only_fills_unlocked_blocks_renders_under_the_sites_header(hpcx, locked_site, user_dir):
    (user_dir / "mine.sbatch.j2").write_text(
        '{# my own kind #}\n{% extends "site-kind.sbatch.j2" %}\n\n'
        '{% block launch %}\n{% set greeting = "hello" %}\necho {{ greeting }}\n{% endblock %}\n'
    )
    script = _render(hpcx, locked_site, "mine")
    assert script.returncode == 0, script.stderr
    assert script.stdout.startswith("#!/bin/bash\n#SBATCH --job-name=")
    assert "echo hello\n" in script.stdout and "echo site kind" not in script.stdout


def test_the_sites_own_templates_are_trusted(hpcx, locked_site):
    script = _render(hpcx, locked_site, "site-kind")
    assert script.returncode == 0, script.stderr
    assert "echo site kind\n" in script.stdout


def test_a_user_template_cannot_stand_in_for_one_the_site_includes(hpcx, locked_site, user_dir):
    admin = locked_site.parent / "admin-templates"
    (admin / "with-header.sbatch.j2").write_text(
        '{% extends "base.sbatch.j2" %}\n{% block launch %}\n{% include "launch-line.j2" %}\n{% endblock %}\n'
    )
    (admin / "launch-line.j2").write_text("echo the site's line\n")
    assert "echo the site's line" in _render(hpcx, locked_site, "with-header").stdout
    (user_dir / "launch-line.j2").write_text("echo mine\n")
    proc = _render(hpcx, locked_site, "with-header")
    assert proc.returncode == 2, proc.stdout
    assert f"template {user_dir / 'launch-line.j2'} takes the name 'launch-line.j2'" in proc.stderr


@pytest.mark.parametrize(
    "statement",
    [
        '{% set job = dict(job, qos="high") %}',
        '{% import "site-kind.sbatch.j2" as job %}',
        "{% macro run() %}x{% endmacro %}",
    ],
)
def test_a_top_level_statement_cannot_rebind_what_the_locked_header_reads(
    hpcx, locked_site, user_dir, statement
):
    kind = user_dir / "rebind.sbatch.j2"
    kind.write_text(
        f'{{% extends "base.sbatch.j2" %}}\n{statement}\n{{% block launch %}}\necho hi\n{{% endblock %}}\n'
    )
    proc = _render(hpcx, locked_site, "rebind")
    assert proc.returncode == 2, proc.stdout
    assert (
        f"template {kind}:2: a top-level" in proc.stderr
        and "locked block(s) header, environment" in proc.stderr
    )
    assert "--qos" not in proc.stdout
