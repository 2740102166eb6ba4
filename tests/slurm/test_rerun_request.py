"""hpcx rerun on the real cluster: the same request (array, named resources, profile, dependency), and the
drift it cannot undo (Slurm's version) said as a warning."""

import json
import subprocess

import pytest

from tests.conftest import TESTBED_SITE

pytestmark = pytest.mark.slurm


def _manifest(runs_root, run_id):
    return json.loads((runs_root / run_id / "manifest.json").read_text())


def test_rerun_keeps_array_named_resource_profile_and_after(slurm_hpcx, runs_root, tmp_path):
    site = tmp_path / "site.yaml"  # the test bed's site, with a resource the admin named
    site.write_text(TESTBED_SITE.read_text() + "resources:\n  comment: {flag: --comment}\n")
    hpcx = type(slurm_hpcx)(dict(slurm_hpcx.env, HPCX_SITE=str(site)))
    upstream = hpcx.json("submit", "serial", "--", "sleep", "15")
    first = hpcx.json(
        "submit",
        "array",
        "--array",
        "0-2",
        "-r",
        "comment=rerun-me",
        "--profile",
        "--after",
        upstream["run_id"],
        "--",
        "bash",
        "-c",
        "echo task=$HPCX_TASK_ID",
    )
    again = hpcx.json("rerun", first["run_id"])  # while the upstream still runs: the dependency is kept
    old, new = _manifest(runs_root, first["run_id"]), _manifest(runs_root, again["run_id"])
    assert (
        new["directives"]
        == old["directives"]
        == [
            ["--comment", "rerun-me"],
            ["--dependency", f"afterok:{upstream['job_id']}"],
            ["--kill-on-invalid-dep", "yes"],
        ]
    )
    assert new["sbatch_args"] == old["sbatch_args"] == ["--array=0-2"]
    assert new["profile"]["value"] is old["profile"]["value"] is True
    shown = subprocess.run(
        ["scontrol", "show", "job", again["job_id"]], capture_output=True, text=True, timeout=30
    ).stdout
    assert "Comment=rerun-me" in shown
    row = hpcx.wait_finished(again["run_id"], timeout_s=180)
    assert row["state"] == "COMPLETED" and row["tasks"] == {"COMPLETED": 3}, row
    assert all(f"task={i}" in hpcx("logs", again["run_id"]).stdout for i in range(3))


def test_rerun_warns_when_slurm_changed_since_the_run(slurm_hpcx, runs_root):
    run = slurm_hpcx.json("submit", "serial", "--", "true")
    slurm_hpcx.wait_finished(run["run_id"], timeout_s=120)
    path = runs_root / run["run_id"] / "manifest.json"
    manifest = json.loads(path.read_text())
    now = manifest["slurm"]["version"]
    assert now and "Slurm is" not in slurm_hpcx("rerun", "--dry-run", run["run_id"]).stderr
    manifest["slurm"]["version"] = "20.11.9"  # as a run from before the cluster's upgrade recorded it
    path.write_text(json.dumps(manifest))
    proc = slurm_hpcx("rerun", "--dry-run", run["run_id"])
    assert f"hpcx: warning: Slurm is {now}, the run used 20.11.9" in proc.stderr
