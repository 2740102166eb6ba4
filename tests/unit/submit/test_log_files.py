"""One locator for a run's logs: `hpcx logs` (--task) and the report's failure section find the same files, on
the local backend and for an own script's #SBATCH -o/-e, whose patterns are expanded for the run's own jobs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hpcx.runs import Run
from hpcx.runs.logs import log_files, stderr_file
from hpcx.submit.sbatch_script import expand_log_pattern


def _submit(hpcx, *args: str) -> str:
    run_id = hpcx.json("submit", "serial", *args)["run_id"]
    hpcx.wait_finished(run_id, timeout_s=60)
    return run_id


def test_report_shows_the_local_backends_stderr(hpcx):
    run_id = _submit(hpcx, "--", "bash", "-c", "echo 'ValueError: lr is empty' >&2; exit 3")
    failure = hpcx.json("report", run_id)["report"]["summary"]["failure"]
    assert failure["log"].startswith("logs/local-") and failure["log"].endswith(".err")
    assert failure["stderr_tail"] == ["ValueError: lr is empty"]


def test_report_shows_the_failed_array_tasks_stderr_on_the_local_backend(hpcx):
    run_id = _submit(
        hpcx,
        "--array=0-1",
        "--",
        "bash",
        "-c",
        "echo task$SLURM_ARRAY_TASK_ID >&2; exit $SLURM_ARRAY_TASK_ID",
    )
    failure = hpcx.json("report", run_id)["report"]["summary"]["failure"]
    assert failure["task"] == 1 and failure["log"].endswith("_1.err") and failure["stderr_tail"] == ["task1"]
    shown = hpcx("logs", run_id, "--task", "1").stdout
    assert f"{failure['log']} <==\ntask1" in shown and "task0" not in shown


def _own_run(
    tmp_path: Path, patterns: list[str], job: dict, *, array: str | None = None, unchecked: list[str] = ()
) -> Run:
    """A run of an own script as submit records it: the -o/-e patterns, the job name and the user."""
    run_dir = tmp_path / "runs" / "r1"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "job.json").write_text(json.dumps({"scheduler": "slurm", **job}))
    manifest = {
        "log_patterns": patterns,
        "resources": {"name": {"value": "train", "source": "script"}},
        "user": "ana",
        "unchecked_directives": list(unchecked),
        "sbatch_args": [f"--array={array}"] if array else [],
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return Run("r1", run_dir)


def _files(d: Path, *names: str) -> None:
    for name in names:
        (d / name).write_text(name + "\n")


def test_a_pattern_without_the_job_id_names_the_jobs_own_file_only(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    _files(d, "train.out", "other.out", "train-ana.log", "train-bob.log")
    run = _own_run(tmp_path, [f"{d}/%x.out", f"{d}/%x-%u.log"], {"job_id": "77"})
    assert log_files(run) == [d / "train-ana.log", d / "train.out"]


def test_an_unknown_node_field_matches_only_files_whose_other_fields_match(tmp_path):
    _files(tmp_path, "o-77-n1.log", "o-78-n1.log", "o-77-n2.log", "o-770-n1.log")
    run = _own_run(tmp_path, [f"{tmp_path}/o-%j-%N.log"], {"job_id": "77"})
    assert log_files(run) == [tmp_path / "o-77-n1.log", tmp_path / "o-77-n2.log"]


def test_array_task_patterns_name_each_task_and_task_picks_one(tmp_path):
    _files(tmp_path, "out_0.txt", "out_1.txt", "out_7.txt", "r-0050_0003.txt", "r-0050_0004.txt")
    run = _own_run(tmp_path, [f"{tmp_path}/out_%a.txt"], {"job_id": "50"}, array="0-1")
    assert log_files(run) == [tmp_path / "out_0.txt", tmp_path / "out_1.txt"]
    assert log_files(run, 1) == [tmp_path / "out_1.txt"]
    padded = _own_run(tmp_path / "p", [f"{tmp_path}/r-%4A_%4a.txt"], {"job_id": "50"}, array="3")
    assert log_files(padded) == [tmp_path / "r-0050_0003.txt"] and log_files(padded, 3) == log_files(padded)


def test_an_array_tasks_own_job_id_is_found_and_older_jobs_are_not(tmp_path):
    # %j of an array task is the task's own job id (50 and 51 here), not the array's; job 49 came before it.
    _files(tmp_path, "j-49.txt", "j-50.txt", "j-51.txt")
    run = _own_run(tmp_path, [f"{tmp_path}/j-%j.txt"], {"job_id": "50"}, array="0-1")
    assert log_files(run) == [tmp_path / "j-50.txt", tmp_path / "j-51.txt"]


def test_the_report_reads_the_scripts_own_stderr_file(tmp_path):
    _files(tmp_path, "train-77.out", "train-77.err")
    patterns = [f"{tmp_path}/%x-%j.err", f"{tmp_path}/%x-%j.out"]
    run = _own_run(tmp_path, patterns, {"job_id": "77"}, unchecked=["--output=%x-%j.out", "-e=%x-%j.err"])
    assert stderr_file(run) == tmp_path / "train-77.err"
    one = _own_run(tmp_path / "o", [f"{tmp_path}/%x-%j.out"], {"job_id": "77"}, unchecked=["-o=%x-%j.out"])
    assert stderr_file(one) == tmp_path / "train-77.out"  # -o alone: sbatch sends stderr there too


@pytest.mark.parametrize(
    "pattern, fields, expected",
    [
        ("/p/out-%j.txt", {"j": "12"}, ["", "p", "out-12.txt"]),
        ("/p/%x-%A_%4a.out", {"x": "train", "A": "12", "a": "3"}, ["", "p", "train-12_0003.out"]),
        ("/p/100%%-%5j[1].txt", {"j": "12"}, ["", "p", "100%-00012[1].txt"]),
        ("/p/lit\\%j.txt", {"j": "12"}, ["", "p", "lit%j.txt"]),
        ("/%u/o-%j-%N.log", {"j": "12", "u": "ana"}, ["", "ana", r"o\-12\-[^/]+\.log"]),
        ("/p/%J.out", {"j": "12"}, ["", "p", r"12(?:\.[^/]+)?\.out"]),  # jobid.stepid: the step is Slurm's
        ("/p/o-%j.txt", {"j": None}, ["", "p", r"o\-(?P<j>\d+)\.txt"]),  # an array task's own job id
    ],
)
def test_sbatchs_filename_patterns_expand_to_names(pattern, fields, expected):
    got = [p if isinstance(p, str) else p.pattern for p in expand_log_pattern(pattern, fields)]
    assert got == expected


def test_logs_follow_prints_the_local_jobs_output(hpcx):
    doc = hpcx.json("submit", "serial", "--", "bash", "-c", "sleep 1; echo done-1; echo oops >&2")
    run_id = doc["run_id"]
    started = time.monotonic()
    shown = hpcx("logs", run_id, "--follow", timeout_s=60).stdout
    assert "done-1" in shown and "oops" in shown and time.monotonic() - started < 60
