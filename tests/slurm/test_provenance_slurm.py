"""Provenance against the real cluster: Slurm's version and configuration, and sacct's record of a finished job."""

import json
import time

import pytest

from hpcx.runs import Run
from hpcx.runs.provenance import collect, record_accounting
from hpcx.site import load_site
from tests.conftest import REPO

pytestmark = pytest.mark.slurm


def _accounting_when_finished(run: Run, timeout_s: float = 60) -> dict:
    """sacct learns of a job from slurmdbd a little after squeue forgets it: ask until it says finished."""
    deadline = time.monotonic() + timeout_s
    while True:
        doc = record_accounting(run)
        if doc is not None and doc["finished"]:
            return doc
        assert time.monotonic() < deadline, (
            f"sacct has no finished record of {run.id} after {timeout_s} s: {doc}"
        )
        time.sleep(1)


def test_accounting_of_finished_jobs_keeps_the_real_exit_codes(slurm_hpcx, runs_root):
    ok = slurm_hpcx.json("submit", "serial", "--", "true")
    failed = slurm_hpcx.json("submit", "serial", "--", "bash", "-c", "exit 3")
    slurm_hpcx.wait_finished(ok["run_id"])
    slurm_hpcx.wait_finished(failed["run_id"])

    run = Run(ok["run_id"], runs_root / ok["run_id"])
    doc = _accounting_when_finished(run)
    row = next(r for r in doc["rows"] if r["JobID"] == ok["job_id"])
    assert (row["State"], row["ExitCode"]) == ("COMPLETED", "0:0")
    assert row["NodeList"] in ("n1", "n2") and row["Start"] <= row["End"] and "cpu=" in row["AllocTRES"]
    assert any(r["JobID"] == f"{ok['job_id']}.batch" for r in doc["rows"])  # steps are kept too
    assert json.loads((run.dir / "accounting.json").read_text()) == doc

    # Finished is final: a second call returns the record without rewriting it.
    before = (run.dir / "accounting.json").stat().st_mtime_ns
    assert record_accounting(run) == doc
    assert (run.dir / "accounting.json").stat().st_mtime_ns == before

    # Slurm 22.05's sacct --json would say 0 here; the text form keeps the job's own exit code.
    bad = _accounting_when_finished(Run(failed["run_id"], runs_root / failed["run_id"]))
    row = next(r for r in bad["rows"] if r["JobID"] == failed["job_id"])
    assert (row["State"], row["ExitCode"]) == ("FAILED", "3:0")


def test_collect_records_the_clusters_slurm(testbed, tmp_path):
    doc = collect(REPO, tmp_path, load_site(str(testbed)))["slurm"]
    assert doc["version"] == "22.05.8" and "error" not in doc
    assert doc["config"]["MaxArraySize"] == 1001
    assert doc["config"]["ClusterName"] == "hpcxtest"
    assert doc["config"]["SelectType"].startswith("select/")
