"""`--profile` and the site's `defaults.profile`: what the job's ranks get, and what the manifest says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcx.errors import ConfigError
from hpcx.site import load_site
from hpcx.submission import Request, render_script, resolve, with_profile

REPO = Path(__file__).resolve().parents[2]
TESTBED = REPO / "examples" / "sites" / "testbed.yaml"
EXPORTS = ("export HPCX_PROFILE=1\n", "export HPCX_PROFILE_COMM=1\n")


def _site(tmp_path: Path, profile: object | None) -> str:
    text = TESTBED.read_text()
    if profile is not None:
        text += f"\ndefaults: {{profile: {json.dumps(profile)}}}\n"
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return str(path)


def _script(tmp_path: Path, site_default: bool | None, cli: bool | None) -> tuple[str, tuple[bool, str]]:
    request = Request("mpi", {"time": "10"}, command=("python", "x.py"))
    prep = with_profile(resolve(request, load_site(_site(tmp_path, site_default))), cli)
    run_dir = tmp_path / "run"
    text = render_script(prep, run_id="r", run_dir=run_dir, workdir=tmp_path).text
    return text, (prep.profile, prep.sources["profile"])


@pytest.mark.parametrize(
    ("site_default", "cli", "resolved"),
    [
        (None, None, (False, "default")),
        (None, True, (True, "cli")),
        (True, None, (True, "site")),
        (True, False, (False, "cli")),
        (False, None, (False, "site")),
        (False, True, (True, "cli")),
    ],
)
def test_the_command_line_wins_over_the_site_default(tmp_path, site_default, cli, resolved):
    text, got = _script(tmp_path, site_default, cli)
    assert got == resolved
    setup = text[text.index("export HPCX_KIND") : text.index("hpcx_launch()")]
    assert all((line in setup) == resolved[0] for line in EXPORTS), setup


def test_a_site_default_that_is_not_a_boolean_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"defaults\.profile: expected boolean"):
        load_site(_site(tmp_path, "yes"))


def test_submit_records_the_choice_in_the_manifest_and_exports_it(hpcx, runs_root):
    doc = hpcx.json("submit", "--profile", "serial", "--", "python", "-c", "print(1)")
    manifest = json.loads((Path(doc["run_dir"]) / "manifest.json").read_text())
    assert manifest["profile"] == {"value": True, "source": "cli"}
    assert all(line in (Path(doc["run_dir"]) / "job.sbatch").read_text() for line in EXPORTS)
    assert hpcx.wait_finished(doc["run_id"])["exit_code"] == 0
    doc = hpcx.json("submit", "serial", "--", "python", "-c", "print(1)")
    manifest = json.loads((Path(doc["run_dir"]) / "manifest.json").read_text())
    assert manifest["profile"] == {"value": False, "source": "default"}
    hpcx.wait_finished(doc["run_id"])


def test_sweep_takes_the_switch_too(hpcx, tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("name: s\nkind: serial\ncommand: [python, t.py, '{lr}']\n"
                    "parameters: {grid: {lr: [1, 2]}}\n")  # fmt: skip
    on = hpcx.json("sweep", "--dry-run", "--profile", str(spec))["script"]
    off = hpcx.json("sweep", "--dry-run", str(spec))["script"]
    assert all(line in on and line not in off for line in EXPORTS)


def test_help_names_the_switch(hpcx):
    assert "--profile / --no-profile" in hpcx("submit", "--help").stdout
    assert "--profile / --no-profile" in hpcx("sweep", "--help").stdout
