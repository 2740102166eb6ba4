"""`hpcx stop` on the login side without a running job: what it refuses and why, the acknowledgement the lead's
STOPPED state reads, and which early signal a job expects."""

from __future__ import annotations

import json
import os

import pytest

from hpcx.errors import UsageError
from hpcx.fsutil import atomic_write_json
from hpcx.rundir.layout import SCRIPT_FILE, stopped_file
from hpcx.runs import create_run, record_job
from hpcx.runs.stop import early_signal, stop_record, stop_run


def _local_run(root, code: int | None = 0, array: str | None = None):
    """A run of the local backend whose job ended with ``code`` (None: never submitted); ``array``: its tasks."""
    run = create_run(root)
    if code is None:
        return run
    job_id = "local-999999999"  # no such process: the exit files say how it ended
    record_job(run, {"scheduler": "local", "job_id": job_id})
    logs = run.dir / "logs"
    (logs / f"{job_id}.exit").write_text(f"{code}\n")
    if array:
        atomic_write_json(run.dir / "manifest.json", {"sbatch_args": [f"--array={array}"]})
        indices = array.split("-")
        (logs / f"{job_id}.array").write_text(
            " ".join(map(str, range(int(indices[0]), int(indices[-1]) + 1)))
        )
        for i in range(int(indices[0]), int(indices[-1]) + 1):
            (logs / f"{job_id}_{i}.exit").write_text(f"{code}\n")
    return type(run)(run.id, run.dir)  # fresh: job.json is read once


def test_stop_record_is_the_parsed_acknowledgement_or_none(tmp_path):
    assert stop_record(tmp_path, None) is None
    path = stopped_file(tmp_path, 3)
    path.parent.mkdir(parents=True)
    path.write_text('{"request_id": "r1", "step"')  # torn
    assert stop_record(tmp_path, 3) is None
    atomic_write_json(path, {"request_id": "r1", "requested_by": "alice", "step": 27})
    assert stop_record(tmp_path, 3) == {"request_id": "r1", "requested_by": "alice", "step": 27}
    assert stop_record(tmp_path, None) is None  # the whole run's is another file


def test_a_run_never_submitted_is_refused(tmp_path):
    run = _local_run(tmp_path, code=None)
    with pytest.raises(UsageError, match=rf"run {run.id} was never submitted: there is nothing to stop"):
        stop_run(run)


def test_a_finished_run_is_refused_naming_its_state_and_where_to_look(tmp_path):
    run = _local_run(tmp_path, code=0)
    with pytest.raises(UsageError) as err:
        stop_run(run)
    assert str(err.value) == (
        f"run {run.id} has already finished (COMPLETED): there is nothing to stop; "
        f"`hpcx status {run.id}` shows how it ended"
    )
    assert err.value.exit_code == 2
    assert not (run.dir / "control").exists()


def test_a_run_that_stopped_says_so_when_stopped_again(tmp_path):
    run = _local_run(tmp_path, code=0)
    path = stopped_file(run.dir)
    path.parent.mkdir(parents=True)
    atomic_write_json(path, {"request_id": "r1", "requested_by": "alice", "step": 27})
    with pytest.raises(
        UsageError, match=r"already finished \(STOPPED\), stopped at step 27 on request of alice"
    ):
        stop_run(run)


def test_a_finished_task_and_an_unknown_task_are_refused(tmp_path):
    run = _local_run(tmp_path, code=1, array="0-2")
    with pytest.raises(UsageError, match=rf"task 1 of run {run.id} has already finished \(FAILED\)"):
        stop_run(run, [1])
    with pytest.raises(UsageError, match=rf"run {run.id} has no task 7: its tasks are 0-2"):
        stop_run(run, [7])


def test_the_early_signal_is_the_one_the_job_script_asks_for(tmp_path):
    run = create_run(tmp_path)
    assert early_signal(run) == ("USR2", True)  # hpcx's own, to the batch shell
    (run.dir / SCRIPT_FILE).write_text("#!/bin/bash\n#SBATCH --signal=B:USR2@180\n#SBATCH --requeue\n")
    assert early_signal(run) == ("USR2", True)
    (run.dir / SCRIPT_FILE).write_text(
        "#!/bin/bash\n#SBATCH --signal=B:USR2@180\n#SBATCH --signal=SIGUSR1@90\n"
    )
    assert early_signal(run) == ("USR1", False)  # the user's own, to the job steps, as sbatch reads the last


def test_the_request_is_written_atomically_with_who_when_and_grace(tmp_path, monkeypatch):
    """A running job (this test's own process stands for the local wrapper): one request, whole run."""
    run = create_run(tmp_path)
    record_job(run, {"scheduler": "local", "job_id": f"local-{os.getpid()}"})
    run = type(run)(run.id, run.dir)
    doc = stop_run(run, by="carol")
    request = json.loads((run.dir / "control" / "stop.json").read_text())
    assert request["by"] == "carol" and request["id"] == doc["request_id"] and request["grace_s"] is None
    assert request["task"] is None and request["at"] == doc["requested_at"]
    assert [t["outcome"] for t in doc["tasks"]] == ["requested"]
    assert [p.name for p in (run.dir / "control").iterdir()] == ["stop.json"]  # no temp file left
