"""hpcx rerun: the same request again, and a warning for each difference that cannot be restored."""

import json

import pytest

pytestmark = pytest.mark.mpi  # runs jobs on the local backend


def test_rerun_submits_the_same_request(hpcx, runs_root):
    first = hpcx.json(
        "submit", "serial", "-t", "7", "--set", "x=a b", "--", "bash", "-c", 'echo "x=$HPCX_VAR_x"'
    )
    hpcx.wait_finished(first["run_id"], timeout_s=60)
    again = hpcx.json("rerun", first["run_id"])
    assert again["like"] == first["run_id"] and again["run_id"] != first["run_id"]
    hpcx.wait_finished(again["run_id"], timeout_s=60)
    old, new = (
        json.loads((runs_root / r / "manifest.json").read_text()) for r in (first["run_id"], again["run_id"])
    )
    assert new["command"] == old["command"] and new["variables"] == old["variables"] == {"x": "a b"}
    assert {k: v["value"] for k, v in new["resources"].items()} == {
        k: v["value"] for k, v in old["resources"].items()
    }
    assert "x=a b" in hpcx("logs", again["run_id"]).stdout


def test_rerun_warns_about_a_changed_site_file(hpcx, tmp_path):
    # A run on the builtin local site, rerun under another site file.
    run = hpcx.json("submit", "serial", "--", "true")
    hpcx.wait_finished(run["run_id"], timeout_s=60)
    local_copy = tmp_path / "local.yaml"
    local_copy.write_text(
        "version: 1\nclusters:\n  here:\n    scheduler: local\n    partitions:\n"
        "      local: {max_time: UNLIMITED, max_nodes: 1, cpus_per_node: 64, launcher: mpirun}\n"
        "    launchers: {mpirun: {type: mpirun}}\n"
    )
    proc = hpcx("--site", str(local_copy), "rerun", "--dry-run", run["run_id"])
    assert "hpcx: warning: the site file changed since the run" in proc.stderr
