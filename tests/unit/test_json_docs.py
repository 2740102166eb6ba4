"""Every command's --json document: versioned, and its keys pinned (scripts rely on them)."""

import os
import subprocess
import sys

from tests.conftest import REPO

SITE = str(REPO / "examples" / "sites" / "testbed.yaml")


def _keys(hpcx, *args):
    doc = hpcx.json(*args)
    assert doc["hpcx"] == 1
    return set(doc) - {"hpcx"}


def test_pinned_keys_of_each_document(hpcx, runs_root):
    assert _keys(hpcx, "render", "serial", "--", "true") == {"kind", "script", "partition", "sources", "explain",
                                                             "choice"}  # fmt: skip
    assert _keys(hpcx, "submit", "--dry-run", "serial", "--", "true") == {"kind", "dry_run", "script", "partition",
                                                                          "sources", "explain", "choice"}  # fmt: skip
    sub = hpcx.json("submit", "serial", "--", "true")
    assert set(sub) == {"hpcx", "kind", "run_id", "run_dir", "job_id", "scheduler", "partition"}
    row = hpcx.wait_finished(sub["run_id"], timeout_s=60)
    assert set(row) == {"run_id", "job_id", "kind", "state", "exit_code", "reason", "nodes", "finished",
                        "elapsed_s", "source", "tasks"}  # fmt: skip
    assert _keys(hpcx, "status") == {"kind", "runs"}
    assert _keys(hpcx, "logs", sub["run_id"]) == {"kind", "run_id", "files"}
    assert _keys(hpcx, "runs") == {"kind", "root", "root_source", "runs"}
    assert _keys(hpcx, "report", sub["run_id"]) == {"kind", "report_path", "html_path", "html_skipped", "report"}
    assert _keys(hpcx, "cancel", sub["run_id"]) == {"kind", "cancelled"}
    assert _keys(hpcx, "config", "show") == {"kind", "values"}
    assert _keys(hpcx, "--site", SITE, "site", "validate") == {"kind", "valid", "source", "sha256"}
    assert _keys(hpcx, "--site", SITE, "site", "show") == {"kind", "name", "source", "origin", "cluster",
                                                            "scheduler", "partitions"}  # fmt: skip


def test_completion_offers_kinds_partitions_and_runs(hpcx):
    def complete(words: str) -> list[str]:
        env = dict(hpcx.env, _HPCX_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(len(words.split())),
                   HPCX_SITE=SITE)  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-m", "hpcx"], env=env, capture_output=True, text=True, timeout=30
        )
        return [line.split(",", 1)[1] for line in out.stdout.splitlines() if "," in line]

    assert {"serial", "mpi", "torch-ddp", "array"} <= set(complete("hpcx submit "))
    assert set(complete("hpcx submit serial --partition ")) == {"debug", "batch", "gpu"}
    assert "status" in complete("hpcx sta")
    for shell in ("bash", "zsh", "fish"):
        assert "_HPCX_COMPLETE" in hpcx("completion", shell).stdout
    assert os.environ.get("_HPCX_COMPLETE") is None


def test_status_rows_keep_their_keys_for_a_lost_job(hpcx, runs_root):
    import json as _json

    run = runs_root / "20260101-000000-bbbbbb"
    run.mkdir()
    (run / "job.json").write_text(_json.dumps({"scheduler": "local", "job_id": "nojob", "kind": "serial"}))
    (row,) = hpcx.json("status", "20260101-000000-bbbbbb")["runs"]
    assert set(row) == {"run_id", "job_id", "kind", "state", "exit_code", "reason", "nodes", "finished",
                        "elapsed_s", "source", "tasks"}  # fmt: skip
