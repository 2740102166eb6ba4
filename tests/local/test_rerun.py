"""hpcx rerun: the same request again, and a warning for each difference that cannot be restored."""

import json
import subprocess

import pytest

pytestmark = pytest.mark.mpi  # runs jobs on the local backend


def test_rerun_submits_the_same_request(hpcx, runs_root):
    first = hpcx.json(
        "submit", "serial", "-t", "7", "--set", "x=a b", "--", "bash", "-c", 'echo "x=$HPCX_VAR_X"'
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


def _git(repo, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "project"
    path.mkdir()
    _git(path, "init", "-q")
    (path / "train.py").write_text("print('v1')\n")
    _git(path, "add", "train.py")
    _git(path, "commit", "-q", "-m", "v1")
    return path


def test_rerun_sees_an_edited_tracked_file_at_the_runs_commit(hpcx, repo):
    run = hpcx.json("submit", "serial", "--", "python", "train.py", cwd=repo)
    hpcx.wait_finished(run["run_id"], timeout_s=60)
    assert hpcx("rerun", "--dry-run", run["run_id"], cwd=repo).stderr == ""  # the same tree: nothing to say

    (repo / "train.py").write_text("print('v2')\n")  # the run's commit is still checked out
    proc = hpcx("rerun", "--dry-run", run["run_id"], cwd=repo)
    assert (
        "the working tree has uncommitted changes to tracked files that the run did not have" in proc.stderr
    )


def test_rerun_does_not_call_untracked_files_uncommitted_changes(hpcx, repo, runs_root):
    (repo / "notes.txt").write_text("scratch\n")  # untracked: the run's git.diff is empty
    run = hpcx.json("submit", "serial", "--", "python", "train.py", cwd=repo)
    hpcx.wait_finished(run["run_id"], timeout_s=60)
    manifest = json.loads((runs_root / run["run_id"] / "manifest.json").read_text())
    assert manifest["git"]["dirty"] is True and manifest["git"]["diff"]["size_bytes"] == 0
    proc = hpcx("rerun", "--dry-run", run["run_id"], cwd=repo)
    assert "uncommitted" not in proc.stderr and proc.stderr == ""

    (repo / "notes.txt").unlink()
    proc = hpcx("rerun", "--dry-run", run["run_id"], cwd=repo)
    assert "the untracked files differ from the run's (1 then, 0 now" in proc.stderr


def test_rerun_warns_when_the_loaded_modules_differ(hpcx, runs_root):
    with_modules = type(hpcx)(
        dict(hpcx.env, LOADEDMODULES="gcc/12:openmpi/4.1", MODULESHOME="/usr/share/modules")
    )
    run = with_modules.json("submit", "serial", "--", "true")
    hpcx.wait_finished(run["run_id"], timeout_s=60)
    assert with_modules("rerun", "--dry-run", run["run_id"]).stderr.count("loaded modules differ") == 0
    proc = hpcx("rerun", "--dry-run", run["run_id"])  # no modules loaded now
    assert "loaded modules differ: the run had gcc/12, openmpi/4.1, now none" in proc.stderr


def test_rerun_of_a_sweep_is_the_same_sweep_and_failed_reruns_only_the_failed_tasks(
    hpcx, runs_root, tmp_path
):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "name: scan\nkind: serial\ncommand: [bash, -c, 'echo x={x}; [ {x} != 2 ]']\n"
        "parameters:\n  grid: {x: [1, 2, 3]}\n"
    )
    first = hpcx.json("sweep", str(spec))
    assert hpcx.wait_finished(first["run_id"], timeout_s=60)["tasks"] == {"COMPLETED": 2, "FAILED": 1}
    table = (runs_root / first["run_id"] / "tasks.jsonl").read_text()

    again = hpcx.json("rerun", first["run_id"])
    assert again["like"] == first["run_id"] and (again["tasks"], again["arrays"]) == (3, 1)
    assert (runs_root / again["run_id"] / "tasks.jsonl").read_text() == table
    assert hpcx.wait_finished(again["run_id"], timeout_s=60)["tasks"] == {"COMPLETED": 2, "FAILED": 1}
    out = hpcx("logs", again["run_id"]).stdout
    assert all(f"x={x}" in out for x in (1, 2, 3)) and "{x}" not in out

    only_failed = hpcx.json("rerun", "--failed", first["run_id"])
    assert only_failed["tasks"] == 1
    (row,) = [
        json.loads(line)
        for line in (runs_root / only_failed["run_id"] / "tasks.jsonl").read_text().splitlines()
    ]
    original = json.loads(table.splitlines()[1])
    assert row == {
        **original,
        "task": 0,
    }  # the same name, parameters and seed, numbered from 0 in the new run
    hpcx.wait_finished(only_failed["run_id"], timeout_s=60)
    assert "x=2" in hpcx("logs", only_failed["run_id"]).stdout


def test_rerun_of_a_run_whose_directory_is_gone_says_so(hpcx, tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    run = hpcx.json("submit", "serial", "--", "true", cwd=gone)
    hpcx.wait_finished(run["run_id"], timeout_s=60)
    gone.rmdir()
    proc = hpcx("rerun", run["run_id"], check=False)
    assert proc.returncode == 2 and f"submitted from {gone}, which no longer exists" in proc.stderr
