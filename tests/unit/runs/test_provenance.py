"""Provenance at submission: git state and diff, packages, modules, a redacted environment, input fingerprints."""

import dataclasses
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from hpcx.errors import UsageError
from hpcx.fsutil import atomic_write_json
from hpcx.runs import Run, provenance
from hpcx.runs.provenance import (
    ACCOUNTING_FIELDS,
    all_finished,
    collect,
    config_values,
    loaded_modules,
    record_accounting,
    strip_url_credentials,
)
from hpcx.schedulers.slurm import parse_sacct_rows, parse_scontrol_config
from hpcx.site import load_site

REPO = Path(__file__).resolve().parents[3]
LOCAL = load_site(None)


def git(repo: Path, *args: str) -> str:
    argv = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(argv, cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    """A repository with one commit on branch trunk; tmp_path itself is outside any repository."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "trunk")
    (path / "train.py").write_text("lr = 0.1\n")
    (path / "latin1.txt").write_bytes(b"caf\xe9\n")  # not UTF-8: the diff must be handled as bytes
    (path / "weights.bin").write_bytes(bytes(range(256)))
    (path / "sub").mkdir()
    (path / "sub" / "keep.txt").write_text("x\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


def test_git_records_commit_branch_diff_and_untracked_files(repo, run_dir, tmp_path):
    (repo / "train.py").write_text("lr = 0.2\n")
    (repo / "latin1.txt").write_bytes(b"na\xefve\n")
    (repo / "weights.bin").write_bytes(bytes(range(255, -1, -1)))
    (repo / "notes.txt").write_text("untracked\n")
    git(repo, "remote", "add", "origin", "https://bob:remote-pw-321@git.example.org/lab/repo.git")

    doc = collect(repo / "sub", run_dir, LOCAL)["git"]  # from a subdirectory: the whole repository counts

    assert doc["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert (doc["branch"], doc["dirty"], doc["toplevel"]) == ("trunk", True, str(repo))
    assert doc["remote_url"] == "https://***@git.example.org/lab/repo.git"
    assert doc["untracked"] == {"file": "git-untracked.txt", "count": 1, "truncated": False}
    assert (run_dir / "git-untracked.txt").read_text() == "notes.txt\n"
    diff = (run_dir / "git.diff").read_bytes()
    assert doc["diff"] == {"file": "git.diff", "size_bytes": len(diff), "truncated": False}
    assert b"+lr = 0.2" in diff and b"+na\xefve" in diff and b"GIT binary patch" in diff
    # The commit plus git.diff give back the exact working tree, binary and non-UTF-8 files included.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    git(clone, "apply", str(run_dir / "git.diff"))
    for name in ("train.py", "latin1.txt", "weights.bin"):
        assert (clone / name).read_bytes() == (repo / name).read_bytes(), name


def test_clean_checkout_is_not_dirty_and_outside_git_there_is_no_commit(repo, run_dir, tmp_path):
    doc = collect(repo, run_dir, LOCAL)["git"]
    assert doc["dirty"] is False and doc["diff"]["size_bytes"] == 0 and doc["untracked"]["count"] == 0
    assert doc["remote_url"] is None
    git(repo, "checkout", "-q", "--detach")
    assert collect(repo, run_dir, LOCAL)["git"]["branch"] is None
    plain = tmp_path / "plain"
    plain.mkdir()
    assert collect(plain, run_dir, LOCAL)["git"] == {"commit": None}


def test_a_huge_diff_is_cut_to_whole_lines_under_the_cap(repo, run_dir):
    (repo / "big.txt").write_text("".join(f"line {i:07d} before\n" for i in range(80_000)))
    git(repo, "add", "big.txt")
    git(repo, "commit", "-q", "-m", "big")
    (repo / "big.txt").write_text("".join(f"line {i:07d} after\n" for i in range(80_000)))
    full = subprocess.run(
        ["git", "diff", "HEAD", "--binary"], cwd=repo, capture_output=True, check=True
    ).stdout

    doc = collect(repo, run_dir, LOCAL)["git"]["diff"]

    kept = (run_dir / "git.diff").read_bytes()
    assert doc == {"file": "git.diff", "size_bytes": len(full), "truncated": True}
    assert len(full) > provenance.DIFF_CAP_BYTES >= len(kept) > provenance.DIFF_CAP_BYTES - 100
    assert full.startswith(kept) and kept.endswith(b"\n")


def test_the_untracked_list_is_capped_but_counted(repo, run_dir, monkeypatch):
    monkeypatch.setattr(provenance, "UNTRACKED_CAP_LINES", 3)
    for i in range(5):
        (repo / f"out-{i}.log").write_text("x")
    doc = collect(repo, run_dir, LOCAL)["git"]["untracked"]
    assert doc == {"file": "git-untracked.txt", "count": 5, "truncated": True}
    assert (run_dir / "git-untracked.txt").read_text() == "out-0.log\nout-1.log\nout-2.log\n"


SECRETS = {
    "MY_API_TOKEN": "supersecret-123",
    "DB_PASSWORD": "hunter2-pw-456",
    "aws_secret_access_key": "lowercase-secret-789",
    "PRIVATE_THING": "site-private-value-000",  # only the site's redact_env pattern names this one
}


def _site_with_redaction(tmp_path: Path):
    text = (REPO / "examples" / "sites" / "testbed.yaml").read_text()
    site_file = tmp_path / "site.yaml"
    site_file.write_text(text + 'redact_env: ["^PRIVATE_"]\n')
    site = load_site(str(site_file))
    assert site.redact_env == ("^PRIVATE_",)
    return dataclasses.replace(site, scheduler="local")  # the environment part needs no Slurm


def test_secret_values_never_reach_any_file_of_the_run(repo, run_dir, tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PIP_INDEX_URL", "https://alice:url-pw-654@pypi.example.org/simple")
    monkeypatch.setenv("HPCX_TEST_PLAIN", "visible-value")
    git(repo, "remote", "add", "origin", "https://bob:remote-pw-321@git.example.org/lab/repo.git")

    doc = collect(repo, run_dir, _site_with_redaction(tmp_path))
    atomic_write_json(run_dir / "manifest.json", doc)  # as submit() records it

    env = doc["environment"]
    assert env["variables"]["HPCX_TEST_PLAIN"] == "visible-value"  # the environment is recorded...
    assert env["variables"]["PIP_INDEX_URL"] == "https://***@pypi.example.org/simple"
    # ...the secret names are listed, and their values are nowhere
    assert set(SECRETS) <= set(env["redacted"])
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} == {"manifest.json", "git.diff", "git-untracked.txt", "requirements.txt"}
    for value in [*SECRETS.values(), "url-pw-654", "remote-pw-321"]:
        for path in files:
            assert value.encode() not in path.read_bytes(), f"{value!r} leaked into {path.name}"


def test_an_invalid_site_pattern_records_no_environment_at_all(run_dir, monkeypatch):
    monkeypatch.setenv("PRIVATE_THING", "site-private-value-000")
    site = dataclasses.replace(LOCAL, redact_env=("^PRIVATE_", "(unclosed"))
    env = collect(REPO, run_dir, site)["environment"]
    assert env.keys() == {"error"} and "'(unclosed' is not a regular expression" in env["error"]


def test_url_credentials_are_stripped_wherever_they_appear():
    assert strip_url_credentials("https://user:p@ss@host/x?q=a@b") == "https://***@host/x?q=a@b"
    assert strip_url_credentials("https://ghp_tok@github.com/o/r.git") == "https://***@github.com/o/r.git"
    assert strip_url_credentials("https://a:1@h1/s https://b:2@h2/s") == "https://***@h1/s https://***@h2/s"
    for plain in ("git@github.com:o/r.git", "https://host/path/user@example.org", "/usr/bin:/bin"):
        assert strip_url_credentials(plain) == plain


def test_python_packages_are_listed_sorted_with_a_hash(run_dir):
    doc = collect(REPO, run_dir, LOCAL)["python"]
    text = (run_dir / "requirements.txt").read_text()
    lines = text.splitlines()
    assert doc["requirements"] == {
        "file": "requirements.txt",
        "count": len(lines),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    assert any(line.startswith("pytest==") for line in lines) and any(
        line.startswith("hpcx") for line in lines
    )
    names = [line.split("=")[0].split(" ")[0].lower().replace("_", "-") for line in lines]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert doc["hpcx"] and doc["version"].count(".") == 2 and doc["executable"]


def test_loaded_modules_come_from_loadedmodules():
    lmod = loaded_modules({"LMOD_CMD": "/opt/lmod/libexec/lmod", "LOADEDMODULES": "gcc/12.2:openmpi/4.1.5"})
    assert lmod == {"system": "lmod", "loaded": ["gcc/12.2", "openmpi/4.1.5"]}
    assert loaded_modules({"MODULESHOME": "/usr/share/modules"}) == {
        "system": "environment-modules",
        "loaded": [],
    }
    assert loaded_modules({}) == {"system": None, "loaded": []}


def test_inputs_are_fingerprinted_relative_to_the_workdir(tmp_path, run_dir):
    data = tmp_path / "data"
    (data / "shards").mkdir(parents=True)
    (data / "labels.csv").write_text("a,b\n1,2\n")
    (data / "shards" / "0.bin").write_bytes(b"\0" * 1000)

    first = collect(tmp_path, run_dir, LOCAL, inputs=["data/labels.csv", "data"])["inputs"]

    csv = first[0]
    assert csv["path"] == "data/labels.csv" and csv["resolved"] == str(data / "labels.csv")
    assert (csv["type"], csv["size_bytes"], csv["partial"]) == ("file", 8, False)
    assert csv["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert csv["mtime_s"] == (data / "labels.csv").stat().st_mtime
    folder = first[1]
    assert (folder["type"], folder["files"], folder["size_bytes"]) == ("directory", 2, 1008)
    again = collect(tmp_path, run_dir, LOCAL, inputs=["data"])["inputs"][0]
    assert again["listing_sha256"] == folder["listing_sha256"]
    os.utime(data / "shards" / "0.bin", ns=(0, 10**9))
    touched = collect(tmp_path, run_dir, LOCAL, inputs=["data"])["inputs"][0]
    assert touched["listing_sha256"] != folder["listing_sha256"]


def test_a_file_above_the_cap_is_hashed_at_both_ends(tmp_path, run_dir, monkeypatch):
    monkeypatch.setattr(provenance, "FULL_HASH_CAP_BYTES", 1000)
    monkeypatch.setattr(provenance, "EDGE_BYTES", 100)
    payload = os.urandom(5000)
    (tmp_path / "big.h5").write_bytes(payload)
    doc = collect(tmp_path, run_dir, LOCAL, inputs=["big.h5"])["inputs"][0]
    expected = hashlib.sha256(payload[:100] + payload[-100:] + b"5000").hexdigest()
    assert (doc["partial"], doc["size_bytes"], doc["sha256"]) == (True, 5000, expected)


def test_a_missing_input_fails_the_submission_before_anything_is_written(tmp_path, run_dir):
    with pytest.raises(UsageError) as err:
        collect(tmp_path, run_dir, LOCAL, inputs=["data/missing.h5"])
    assert err.value.exit_code == 2 and "data/missing.h5" in str(err.value)
    assert list(run_dir.iterdir()) == []


def test_collect_on_this_repository_is_fast(run_dir):
    start = time.perf_counter()
    collect(REPO, run_dir, LOCAL, inputs=["README.md"])
    elapsed_s = time.perf_counter() - start
    print(f"collect() on {REPO}: {elapsed_s * 1000:.0f} ms")
    assert elapsed_s < 3.0  # a guard against a regression by an order of magnitude; typically ~0.05 s


def test_scontrol_config_lines_are_parsed_into_values():
    text = (
        "Configuration data as of 2026-11-26T09:59:06\n"
        "AuthInfo                = cred_expire=5\n"
        "ClusterName             = hpcxtest\n"
        "MaxArraySize            = 1001\n"
        "PreemptMode             = OFF\n"
        "SelectTypeParameters    = (null)\n"
    )
    assert config_values(parse_scontrol_config(text)) == {
        "ClusterName": "hpcxtest",
        "MaxArraySize": 1001,
        "PreemptMode": "OFF",
        "SelectTypeParameters": None,
    }


def test_sacct_rows_keep_a_job_name_with_a_bar_whole():
    text = (
        "42|COMPLETED|0:0|00:00:01|00:00.010||billing=1,cpu=1|n1|2026-11-26T09:00:00|2026-11-26T09:00:01|None|a|b\n"
        "42.batch|COMPLETED|0:0|00:00:01|00:00.010|1234K|cpu=1|n1|2026-11-26T09:00:00|2026-11-26T09:00:01|None|batch\n"
    )
    rows = parse_sacct_rows(text, ACCOUNTING_FIELDS)
    assert [r["JobName"] for r in rows] == ["a|b", "batch"] and rows[1]["MaxRSS"] == "1234K"
    assert all_finished(rows)
    assert not all_finished([*rows, {"JobID": "43_[1-3]", "State": "PENDING"}])
    assert not all_finished([{"JobID": "44", "State": "REQUEUED"}])
    assert all_finished([{"JobID": "45", "State": "CANCELLED by 0"}])


def test_accounting_is_none_for_a_run_without_a_slurm_job(tmp_path):
    run = Run("r1", tmp_path)
    assert record_accounting(run) is None
    (tmp_path / "job.json").write_text(json.dumps({"scheduler": "local", "job_id": "123"}))
    assert record_accounting(run) is None and not (tmp_path / "accounting.json").exists()


# Slurm commands that misbehave, or that answer for jobs the test cluster never ran, are small stand-in
# scripts on PATH; the parsing, the timeouts and the file handling are the real code.
def _stub(bindir: Path, name: str, body: str) -> None:
    bindir.mkdir(exist_ok=True)
    (bindir / name).write_text(f"#!/bin/bash\n{body}\n")
    (bindir / name).chmod(0o755)


def test_a_hanging_slurm_is_recorded_as_an_error_within_the_timeout(tmp_path, run_dir, monkeypatch):
    _stub(tmp_path / "bin", "sbatch", "echo slurm 23.02.1")
    _stub(tmp_path / "bin", "scontrol", "sleep 30")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setattr(provenance, "SLURM_TIMEOUT_S", 1.0)
    start = time.perf_counter()
    doc = collect(tmp_path, run_dir, load_site(str(REPO / "examples" / "sites" / "testbed.yaml")))["slurm"]
    assert time.perf_counter() - start < 5
    assert doc["version"] == "23.02.1" and doc["config"] == {}
    assert "`scontrol show config` timed out after 1 s" in doc["error"]


def test_the_slurm_version_and_configuration_are_recorded(tmp_path, run_dir, monkeypatch):
    _stub(tmp_path / "bin", "sbatch", '[ "$*" = --version ] && echo "slurm 23.02.1"')
    config = "ClusterName = hpcxtest\nMaxArraySize = 1001\nSchedulerType = sched/backfill\nUsePAM = 0\n"
    _stub(tmp_path / "bin", "scontrol", f'[ "$*" = "show config" ] && printf "{config}"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    doc = collect(tmp_path, run_dir, load_site(str(REPO / "examples" / "sites" / "testbed.yaml")))["slurm"]
    assert doc == {
        "version": "23.02.1",
        "config": {"ClusterName": "hpcxtest", "MaxArraySize": 1001, "SchedulerType": "sched/backfill"},
    }


SACCT_ROWS = (
    "42_0|COMPLETED|0:0|00:00:01|00:00.010||cpu=1|n1|2026-11-26T09:00:00|2026-11-26T09:00:01|None|sweep\n"
    "42_0.batch|COMPLETED|0:0|00:00:01|00:00.010|1234K|cpu=1|n1|2026-11-26T09:00:00|2026-11-26T09:00:01|None|batch\n"
    "43_0|FAILED|3:0|00:00:01|00:00.010||cpu=1|n2|2026-11-26T09:00:00|2026-11-26T09:00:01|None|sweep\n"
)


def test_accounting_covers_every_chunk_and_is_written_once_finished(tmp_path, monkeypatch):
    calls = tmp_path / "sacct-calls"
    _stub(tmp_path / "bin", "sacct", f'echo "$*" >> {calls}\nprintf %s "$ROWS"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("ROWS", SACCT_ROWS)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    job = {
        "scheduler": "slurm",
        "job_id": "42",
        "chunks": [{"job_id": "42", "offset": 0, "count": 1}, {"job_id": "43", "offset": 1, "count": 1}],
    }
    (run_dir / "job.json").write_text(json.dumps(job))
    run = Run("r", run_dir)

    doc = record_accounting(run)

    assert "-j 42,43 " in calls.read_text()
    assert doc["job_ids"] == ["42", "43"] and doc["finished"] is True
    assert [(r["JobID"], r["ExitCode"]) for r in doc["rows"]] == [
        ("42_0", "0:0"),
        ("42_0.batch", "0:0"),
        ("43_0", "3:0"),
    ]
    assert json.loads((run_dir / "accounting.json").read_text()) == doc
    # finished: not asked again
    assert record_accounting(run) == doc and len(calls.read_text().splitlines()) == 1
    # a retry adds a chunk: the record is no longer complete
    job["chunks"].append({"job_id": "44", "offset": 1, "count": 1, "indices": [0]})
    (run_dir / "job.json").write_text(json.dumps(job))
    assert record_accounting(Run("r", run_dir))["job_ids"] == ["42", "43", "44"]  # a Run reads job.json once
    assert len(calls.read_text().splitlines()) == 2


def test_accounting_is_none_when_sacct_has_nothing_or_fails(tmp_path, monkeypatch):
    _stub(tmp_path / "bin", "sacct", 'echo "Slurm accounting storage is disabled" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    (tmp_path / "job.json").write_text(json.dumps({"scheduler": "slurm", "job_id": "42"}))
    assert record_accounting(Run("r", tmp_path)) is None
    _stub(tmp_path / "bin", "sacct", "true")  # not yet in the accounting database
    assert record_accounting(Run("r", tmp_path)) is None
    assert not (tmp_path / "accounting.json").exists()


def test_sacct_s_one_row_for_tasks_that_never_started_counts_as_listing_each_of_them():
    """An array cancelled while pending is one sacct row, ``ID_[0-999]``: its accounting is final once that row
    is there (else every `hpcx status` asked sacct again)."""
    from hpcx.runs.provenance import _every_task_listed, listed_tasks

    assert listed_tasks("81_[0-3,7]") == ["81_0", "81_1", "81_2", "81_3", "81_7"]
    assert listed_tasks("81_[5-6%2]") == ["81_5", "81_6"]
    assert listed_tasks("81_4") == ["81_4"] and listed_tasks("81") == ["81"]
    job = {"chunks": [{"job_id": "81", "offset": 0, "count": 8}, {"job_id": "90", "offset": 8, "count": 2}]}
    rows = [{"JobID": "81_[0-7]"}, {"JobID": "90_0"}, {"JobID": "90_1"}]
    assert _every_task_listed(job, rows)
    assert not _every_task_listed(job, [{"JobID": "81_[0-6]"}, {"JobID": "90_0"}, {"JobID": "90_1"}])
    assert not _every_task_listed(job, [{"JobID": "81_[0-7]"}, {"JobID": "90_0"}])
