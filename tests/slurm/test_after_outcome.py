"""--after RUN on the real cluster is decided from RUN's outcome as hpcx knows it, not left to Slurm (which drops
a dependency on a job it has forgotten after MinJobAge, and leaves one on a failed job pending forever)."""

import json
import subprocess
import time

import pytest

pytestmark = pytest.mark.slurm


def _directives(runs_root, run_id):
    return json.loads((runs_root / run_id / "manifest.json").read_text())["directives"]


def test_after_a_failed_run_is_refused_naming_its_state(slurm_hpcx, runs_root):
    failed = slurm_hpcx.json("submit", "serial", "--", "bash", "-c", "exit 7")
    assert slurm_hpcx.wait_finished(failed["run_id"], timeout_s=120)["state"] == "FAILED"

    proc = slurm_hpcx("submit", "serial", "--after", failed["run_id"], "--", "true", check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"run {failed['run_id']} already ended FAILED, exit code 7" in proc.stderr
    assert sorted(p.name for p in runs_root.iterdir() if not p.name.startswith(".")) == [failed["run_id"]]

    by_job_id = slurm_hpcx(
        "--json", "submit", "serial", "--after", failed["job_id"], "--", "true", check=False
    )
    assert by_job_id.returncode == 3
    assert "FAILED" in json.loads(by_job_id.stdout)["error"]["message"]


def test_after_a_run_that_already_succeeded_needs_no_slurm_dependency(slurm_hpcx, runs_root):
    done = slurm_hpcx.json("submit", "serial", "--", "true")
    assert slurm_hpcx.wait_finished(done["run_id"], timeout_s=120)["state"] == "COMPLETED"

    later = slurm_hpcx.json("submit", "serial", "--after", done["run_id"], "--", "true")
    assert _directives(runs_root, later["run_id"]) == []  # nothing for Slurm to forget
    assert slurm_hpcx.wait_finished(later["run_id"], timeout_s=120)["state"] == "COMPLETED"


def test_after_a_sweep_waits_for_its_retry_array(slurm_hpcx, runs_root, tmp_path):
    marker = tmp_path / "retried"
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "name: after-retry\nkind: serial\nresources: {time: '00:05:00'}\n"
        f"command: [bash, -c, '[ {{x}} = 0 ] || [ -e {marker} ] || exit 3; [ {{x}} = 0 ] || sleep 8']\n"
        "parameters:\n  grid: {x: [0, 1]}\n"
    )
    sweep = slurm_hpcx.json("sweep", str(spec))
    assert slurm_hpcx.wait_finished(sweep["run_id"], timeout_s=120)["tasks"] == {"COMPLETED": 1, "FAILED": 1}

    refused = slurm_hpcx("submit", "serial", "--after", sweep["run_id"], "--", "true", check=False)
    assert refused.returncode == 3 and "1 FAILED" in refused.stderr and "--retry-failed" in refused.stderr

    marker.touch()
    retry = slurm_hpcx.json("sweep", "--retry-failed", sweep["run_id"])
    (retry_job,) = retry["job_ids"]
    after = slurm_hpcx.json("submit", "serial", "--after", sweep["run_id"], "--", "true")
    # The retry array, not the first one: that one has a failed task and would never satisfy afterok.
    assert _directives(runs_root, after["run_id"]) == [
        ["--dependency", f"afterok:{retry_job}"],
        ["--kill-on-invalid-dep", "yes"],
    ]
    shown = subprocess.run(
        ["squeue", "-h", "-j", after["job_id"], "-o", "%E"], capture_output=True, text=True, timeout=30
    ).stdout
    assert retry_job in shown or not shown.strip()  # listed as a dependency, or already satisfied
    assert slurm_hpcx.wait_finished(after["run_id"], timeout_s=120)["state"] == "COMPLETED"
    tasks = slurm_hpcx.json("status", sweep["run_id"])["runs"][0]["tasks"]
    assert tasks == {"COMPLETED": 2}


def test_after_a_run_that_fails_later_ends_the_waiting_job_instead_of_leaving_it_pending(
    slurm_hpcx, runs_root
):
    upstream = slurm_hpcx.json("submit", "serial", "--", "bash", "-c", "sleep 4; exit 5")
    waiting = slurm_hpcx.json("submit", "serial", "--after", upstream["run_id"], "--", "true")
    # Without --kill-on-invalid-dep Slurm keeps it PENDING (DependencyNeverSatisfied) for good.
    row = slurm_hpcx.wait_finished(waiting["run_id"], timeout_s=120)
    assert row["state"] == "CANCELLED", row


def test_after_an_all_digit_key_is_a_job_id_never_a_run_id_prefix(slurm_hpcx, runs_root):
    failed = slurm_hpcx.json("submit", "serial", "--", "bash", "-c", "exit 7")
    assert slurm_hpcx.wait_finished(failed["run_id"], timeout_s=120)["state"] == "FAILED"
    prefix = failed["run_id"][:7]  # all digits, and a prefix of the run id (a date)
    assert prefix.isdigit()
    proc = slurm_hpcx("submit", "serial", "--after", prefix, "--", "true", check=False)
    assert proc.returncode == 3
    assert f"Slurm knows no job {prefix}" in proc.stderr and failed["run_id"] not in proc.stderr


def test_after_a_sweep_whose_running_array_has_a_retried_failure_waits_for_its_other_tasks(
    slurm_hpcx, runs_root, tmp_path
):
    marker = tmp_path / "retried"
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "name: mixed\nkind: serial\nresources: {time: '00:05:00'}\n"
        f"command: [bash, -c, 'if [ {{x}} = 1 ]; then [ -e {marker} ] || exit 3; else sleep 30; fi']\n"
        "parameters:\n  grid: {x: [0, 1, 2]}\n"
    )
    sweep = slurm_hpcx.json("sweep", str(spec))
    deadline = time.monotonic() + 90
    while slurm_hpcx.json("status", sweep["run_id"])["runs"][0]["tasks"].get("FAILED") != 1:
        assert time.monotonic() < deadline, "task 1 never failed"
        time.sleep(1)
    marker.touch()
    (retry_job,) = slurm_hpcx.json("sweep", "--retry-failed", sweep["run_id"])["job_ids"]
    after = slurm_hpcx.json("submit", "serial", "--after", sweep["run_id"], "--", "true")
    (dependency,) = [v for f, v in _directives(runs_root, after["run_id"]) if f == "--dependency"]
    waits = set(dependency.removeprefix("afterok:").split(":"))
    # Tasks 0 and 2 still run in the first array, whose task 1 failed: afterok on that array would never hold.
    # (The retry array is in it while it has not ended; its one task may already have completed.)
    assert waits - {retry_job} == {f"{sweep['job_id']}_0", f"{sweep['job_id']}_2"}, waits
    assert slurm_hpcx.wait_finished(after["run_id"], timeout_s=150)["state"] == "COMPLETED"
