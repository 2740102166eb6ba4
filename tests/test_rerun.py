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


def test_secrets_in_the_environment_never_reach_the_run_directory(hpcx, runs_root, tmp_path):
    secret = "sk-live-4f7c2a9e1b"
    leaky = type(hpcx)(
        dict(hpcx.env, MY_API_TOKEN=secret, DB_PASSWORD=secret + "pw", HARMLESS="visible-value")
    )
    # Submitted from outside this repository: its uncommitted test files (this one) would be in git.diff.
    doc = leaky.json("submit", "serial", "--", "true", cwd=tmp_path)
    leaky.wait_finished(doc["run_id"], timeout_s=60)
    leaky("report", doc["run_id"])
    files = [p for p in (runs_root / doc["run_id"]).rglob("*") if p.is_file()]
    contents = b"".join(p.read_bytes() for p in files)
    assert secret.encode() not in contents
    assert b"visible-value" in contents  # the environment was recorded, only the secrets were left out
    manifest = json.loads((runs_root / doc["run_id"] / "manifest.json").read_text())
    assert "MY_API_TOKEN" in manifest["environment"]["redacted"]


def test_inputs_are_fingerprinted_and_a_changed_input_is_reported_on_rerun(hpcx, runs_root, tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    doc = hpcx.json("submit", "serial", "--input", str(data), "--", "true")
    hpcx.wait_finished(doc["run_id"], timeout_s=60)
    manifest = json.loads((runs_root / doc["run_id"] / "manifest.json").read_text())
    (entry,) = manifest["inputs"]
    assert entry["path"] == str(data) and entry["size_bytes"] == 8 and len(entry["sha256"]) == 64
    data.write_text("a,b\n1,3\n")
    proc = hpcx("rerun", "--dry-run", doc["run_id"])
    assert f"input {data} changed since the run" in proc.stderr
    missing = hpcx("submit", "serial", "--input", str(tmp_path / "nope.csv"), "--", "true", check=False)
    assert missing.returncode == 2 and "nope.csv" in missing.stderr
