"""`--profile` and the site's `defaults.profile`: what the job's ranks get, and what the manifest says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcx.errors import ConfigError
from hpcx.site import load_site
from hpcx.submit.submission import Request, render_script, resolve, with_profile

REPO = Path(__file__).resolve().parents[3]
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
    spec.write_text(
        "name: s\nkind: serial\ncommand: [python, t.py, '{lr}']\nparameters: {grid: {lr: [1, 2]}}\n"
    )
    on = hpcx.json("sweep", "--dry-run", "--profile", str(spec))["script"]
    off = hpcx.json("sweep", "--dry-run", str(spec))["script"]
    assert all(line in on and line not in off for line in EXPORTS)


def test_help_names_the_switch(hpcx):
    assert "--profile / --no-profile" in hpcx("submit", "--help").stdout
    assert "--profile / --no-profile" in hpcx("sweep", "--help").stdout


@pytest.mark.parametrize(
    ("site_default", "cli", "line"),
    [
        (None, True, "export HPCX_PROFILE=1\n"),
        (None, False, "export HPCX_PROFILE=0\n"),
        (False, None, None),
        (True, False, "export HPCX_PROFILE=0\n"),
        (None, None, None),
    ],
)
def test_the_command_line_s_no_profile_is_said_to_the_ranks_and_nothing_else_is(
    tmp_path, site_default, cli, line
):
    text, _ = _script(tmp_path, site_default, cli)
    said = [x + "\n" for x in text.splitlines() if x.startswith("export HPCX_PROFILE=")]
    assert said == ([line] if line else [])


def _hpcx_run(tmp_path: Path, profile: str | None) -> list[str]:
    """What `python -m hpcx.run -- CMD` leaves in the run's profile/ when the job says HPCX_PROFILE=..."""
    import os
    import subprocess
    import sys

    run_dir = tmp_path / f"run-{profile}"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "OMPI_", "PMI", "SLURM_", "RANK"))
    }
    env["HPCX_RUN_DIR"] = str(run_dir)
    if profile is not None:
        env["HPCX_PROFILE"] = profile
    job = "import hpcx\nwith hpcx.region('step'):\n    pass\n"  # an in-process record too
    subprocess.run(
        [sys.executable, "-m", "hpcx.run", "--interval", "0.1", "--", sys.executable, "-c", job],
        env=env,
        timeout=60,
        check=True,
    )
    return sorted(p.name.split("-p")[0].split(".")[0] for p in (run_dir / "profile").glob("*"))


def test_hpcx_run_records_nothing_in_a_no_profile_job(tmp_path):
    assert _hpcx_run(tmp_path, "0") == []
    assert _hpcx_run(tmp_path, "1") == ["node-" + _node(), "rank-00000", "regions-rank-00000"]
    assert _hpcx_run(tmp_path, None) == ["node-" + _node(), "rank-00000", "regions-rank-00000"]


def _node() -> str:
    import socket

    return socket.gethostname()
