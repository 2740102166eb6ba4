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
    assert _keys(hpcx, "render", "serial", "--", "true") == {
        "kind",
        "script",
        "partition",
        "sources",
        "explain",
        "choice",
        "passed_on",
    }
    assert _keys(hpcx, "submit", "--dry-run", "serial", "--", "true") == {
        "kind",
        "dry_run",
        "script",
        "partition",
        "sources",
        "explain",
        "choice",
        "passed_on",
    }
    sub = hpcx.json("submit", "serial", "--", "true")
    assert set(sub) == {"hpcx", "kind", "run_id", "run_dir", "job_id", "scheduler", "partition"}
    row = hpcx.wait_finished(sub["run_id"], timeout_s=60)
    assert set(row) == {
        "run_id",
        "job_id",
        "kind",
        "state",
        "exit_code",
        "reason",
        "nodes",
        "finished",
        "elapsed_s",
        "source",
        "tasks",
        "live",
    }
    assert _keys(hpcx, "status") == {"kind", "runs"}
    assert _keys(hpcx, "logs", sub["run_id"]) == {"kind", "run_id", "files"}
    assert _keys(hpcx, "runs") == {"kind", "root", "root_source", "runs"}
    assert _keys(hpcx, "report", sub["run_id"]) == {
        "kind",
        "report_path",
        "html_path",
        "html_skipped",
        "report",
    }
    assert _keys(hpcx, "cancel", sub["run_id"]) == {"kind", "cancelled"}
    assert _keys(hpcx, "config", "show") == {"kind", "values"}
    assert _keys(hpcx, "--site", SITE, "site", "validate") == {"kind", "valid", "source", "sha256"}
    assert _keys(hpcx, "--site", SITE, "site", "show") == {
        "kind",
        "name",
        "source",
        "origin",
        "cluster",
        "scheduler",
        "partitions",
    }


def test_completion_offers_kinds_partitions_and_runs(hpcx):
    def complete(words: str) -> list[str]:
        env = dict(
            hpcx.env,
            _HPCX_COMPLETE="bash_complete",
            COMP_WORDS=words,
            COMP_CWORD=str(len(words.split())),
            HPCX_SITE=SITE,
        )
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
    assert set(row) == {
        "run_id",
        "job_id",
        "kind",
        "state",
        "exit_code",
        "reason",
        "nodes",
        "finished",
        "elapsed_s",
        "source",
        "tasks",
        "live",
    }


SUBMIT_KEYS = {"kind", "run_id", "run_dir", "job_id", "scheduler", "partition"}
SWEEP_KEYS = SUBMIT_KEYS | {"job_ids", "tasks", "arrays"}


def test_pinned_keys_of_sweep_rerun_and_compare(hpcx, runs_root, tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "name: keys\nkind: serial\n"
        "command: [python, -c, 'import hpcx.runtime as r; r.log(1, loss={lr} * ({seed} % 7 + 1)); assert {lr} < 0.3']\n"
        "parameters:\n  grid: {lr: [0.1, 0.2, 0.3]}\n  repeats: 2\n"
    )
    assert _keys(hpcx, "sweep", "--dry-run", str(spec)) == {"kind", "dry_run", "tasks", "arrays", "script"}
    sweep = hpcx.json("sweep", str(spec))
    assert set(sweep) - {"hpcx"} == SWEEP_KEYS
    hpcx.wait_finished(sweep["run_id"], timeout_s=120)
    assert _keys(hpcx, "sweep", "--retry-failed", sweep["run_id"]) == {
        "kind",
        "run_id",
        "retried",
        "job_ids",
        "states",
        "retried_states",
    }

    assert _keys(hpcx, "rerun", "--dry-run", sweep["run_id"]) == {
        "kind",
        "dry_run",
        "like",
        "warnings",
        "tasks",
        "arrays",
        "script",
    }
    assert _keys(hpcx, "rerun", "--failed", sweep["run_id"]) == SWEEP_KEYS | {"like", "warnings"}
    single = hpcx.json("submit", "serial", "--", "true")
    hpcx.wait_finished(single["run_id"], timeout_s=60)
    assert _keys(hpcx, "rerun", "--dry-run", single["run_id"]) == {
        "kind",
        "dry_run",
        "like",
        "warnings",
        "script",
        "partition",
        "sources",
        "explain",
        "choice",
        "passed_on",
    }
    assert _keys(hpcx, "rerun", single["run_id"]) == SUBMIT_KEYS | {"like", "warnings"}

    assert _keys(hpcx, "compare", "--sweep", sweep["run_id"], "--metric", "loss", "--resamples", "200") == {
        "kind",
        "schema",
        "metric",
        "settings",
        "runs",
        "groups",
        "comparisons",
        "left_out",
        "notes",
    }
