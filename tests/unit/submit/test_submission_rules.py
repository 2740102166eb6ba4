"""How a request becomes a job, as the user sees it in the script, the sbatch arguments and the errors: the
pairs of --set and --resource, the admin's named resources, --after, the early-warning signal, GPUs as gres,
the launcher line, the run's log paths, and an own script's options beside it."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from hpcx.errors import RejectedError, UsageError
from hpcx.site import load_site
from hpcx.submit.submission import (
    Request,
    log_patterns,
    parse_pairs,
    render_preview,
    render_script,
    resolve,
    script_args,
)

REPO = Path(__file__).resolve().parents[3]
TESTBED = str(REPO / "examples" / "sites" / "testbed.yaml")
RUN_DIR = Path("/runs/R")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith(("HPCX_", "SLURM_", "SBATCH_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _site(tmp_path: Path, extra: str = "", base: str = TESTBED) -> str:
    path = tmp_path / "site.yaml"
    path.write_text(Path(base).read_text() + textwrap.dedent(extra))
    return str(path)


def _prep(site: str = TESTBED, kind: str | None = "serial", command=("true",), **kw):
    options = kw.pop("options", {})
    return resolve(Request(kind, options=options, command=command, **kw), load_site(site))


def _script(prep, tmp_path: Path) -> str:
    return render_script(prep, run_id="R", run_dir=RUN_DIR, workdir=tmp_path).text


def _own(tmp_path: Path, directives: str, options: dict | None = None, site: str = TESTBED, **kw):
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n{directives}\npython task.py\n")
    return resolve(Request(None, options=options or {}, script=script, **kw), load_site(site))


# --- --set and --resource pairs ------------------------------------------------------------------------------


def test_pairs_split_at_the_first_equals_sign_and_keep_the_rest():
    assert parse_pairs("--set", ("lr=0.1", "expr=a=b", "empty=")) == {"lr": "0.1", "expr": "a=b", "empty": ""}


@pytest.mark.parametrize("pair", ["lr", "=1", "1x=2", "a-b=1", "a b=1"])
def test_a_pair_that_is_not_name_equals_value_is_refused_naming_it(pair):
    with pytest.raises(UsageError) as err:
        parse_pairs("--resource", (pair,))
    assert str(err.value) == (
        f"--resource {pair!r} is not NAME=VALUE; NAME: letters, digits, _; e.g. --resource lr=0.1"
    )
    assert err.value.exit_code == 2


# --- the admin's named resources ----------------------------------------------------------------------------

NAMED = """
resources:
  constraint: {flag: --constraint, choices: [a100, v100]}
  licenses: {flag: --licenses}
"""


def test_named_resources_become_sbatch_lines_in_the_order_given(tmp_path):
    site = _site(tmp_path, NAMED)
    prep = _prep(site, named={"licenses": "matlab:2", "constraint": "v100"})
    text = _script(prep, tmp_path)
    assert "#SBATCH --licenses=matlab:2\n#SBATCH --constraint=v100\n" in text


def test_a_named_resource_value_must_be_offered_and_one_line(tmp_path):
    site = _site(tmp_path, NAMED)
    with pytest.raises(RejectedError) as err:
        _prep(site, named={"constraint": "h100"})
    assert (
        str(err.value)
        == "--resource constraint=h100 is not offered by site testbed; choose one of a100, v100"
    )
    for value in ("", "a\nb", "a\rb", "a\0b"):
        with pytest.raises(UsageError, match=r"^--resource licenses=.* needs a one-line value$"):
            _prep(site, named={"licenses": value})
    with pytest.raises(UsageError) as err:
        _prep(site, named={"gpu": "1"})
    assert str(err.value) == "--resource gpu is not a resource of site testbed; known: constraint, licenses"


# --- --after, --array and the job kinds ----------------------------------------------------------------------


def test_after_makes_one_afterok_dependency_on_every_job(tmp_path):
    text = _script(_prep(after=("11", "12")), tmp_path)
    assert "#SBATCH --dependency=afterok:11:12\n#SBATCH --kill-on-invalid-dep=yes\n" in text
    assert "--dependency" not in _script(_prep(), tmp_path)


def test_a_command_is_needed_and_an_array_kind_needs_an_array():
    with pytest.raises(UsageError) as err:
        _prep(command=())
    assert str(err.value) == (
        "no command given; put it after the kind and its options, e.g. hpcx submit serial python train.py"
    )
    with pytest.raises(UsageError) as err:
        _prep(kind="array")
    assert (
        str(err.value) == "job kind 'array' needs --array; e.g. --array 0-9 (indices) or 0-99%10 (throttled)"
    )


def test_an_array_job_gets_its_array_line_per_task_logs_and_its_task_id(tmp_path):
    text = _script(_prep(kind="array", array="0-9%2"), tmp_path)
    assert "#SBATCH --array=0-9%2\n" in text
    assert "#SBATCH --output=/runs/R/logs/slurm-%A_%a.out\n" in text
    assert '-m hpcx.run --task-id "$((SLURM_ARRAY_TASK_ID + ${HPCX_TASK_OFFSET:-0}))" -- true' in text
    plain = _script(_prep(), tmp_path)
    assert "--task-id" not in plain and "#SBATCH --output=/runs/R/logs/slurm-%j.out\n" in plain


# --- the early warning before the time limit -----------------------------------------------------------------


@pytest.mark.parametrize(
    "time, lead, expected",
    [("30", None, 180), ("2", None, 60), ("30", "30", 30), ("2", "600", 60), ("2-00:00:00", "65535", 65535)],
)
def test_the_warning_comes_lead_seconds_early_at_most_half_the_time_limit(tmp_path, time, lead, expected):
    variables = {"signal_lead_s": lead} if lead else {}
    prep = _prep(options={"time": time, "partition": "batch"}, variables=variables)
    assert f"#SBATCH --signal=B:USR2@{expected}\n" in _script(prep, tmp_path)


# --- GPUs, launchers, the command ---------------------------------------------------------------------------


def test_gpus_are_asked_as_the_user_asked_them(tmp_path):
    """--gpus-per-node 2 stays --gpus-per-node (Slurm's TRES then read gres/gpu=2, as sbatch's own would), and a
    typed --gres stays as typed: never a translation the user did not write."""
    script = _script(_prep(options={"partition": "gpu", "gpus_per_node": "2"}), tmp_path)
    assert "#SBATCH --gpus-per-node=2\n" in script and "--gres" not in script
    script = _script(_prep(options={"partition": "gpu", "gres": "gpu:tesla:1"}), tmp_path)
    assert "#SBATCH --gres=gpu:tesla:1\n" in script and "--gpus-per-node" not in script
    assert "--gres" not in _script(_prep(options={"partition": "gpu"}), tmp_path)


def test_torchrun_gets_the_script_without_its_interpreter(tmp_path):
    def torchrun_line(command, options=None):
        prep = _prep(kind="torch-ddp", command=command, variables={"mode": "torchrun"}, options=options or {})
        return next(
            line for line in _script(prep, tmp_path).splitlines() if "hpcx.runtime.torchrun --nproc" in line
        )

    assert torchrun_line(("python3", "train.py", "--lr", "0.1")).endswith(
        "--nproc-per-node=1 train.py --lr 0.1"
    )
    assert torchrun_line(("/usr/bin/python", "-u", "t.py")).endswith("--nproc-per-node=1 -u t.py")
    assert torchrun_line(("./train.sh", "x")).endswith("--nproc-per-node=1 ./train.sh x")


def test_torchrun_mode_runs_one_agent_per_node_with_the_tasks_per_node_as_workers(tmp_path):
    def torchrun_line(options):
        prep = _prep(
            kind="torch-ddp", command=("python", "t.py"), variables={"mode": "torchrun"}, options=options
        )
        return next(
            line for line in _script(prep, tmp_path).splitlines() if "hpcx.runtime.torchrun --nproc" in line
        )

    line = torchrun_line({"nodes": "2", "ntasks_per_node": "2"})
    assert line.startswith("srun --kill-on-bad-exit=1 ")
    assert '--nodes="$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 ' in line
    assert '--cpus-per-task="$step_cpus"' in line  # the agent task gets the node's CPUs, not one task's
    assert line.endswith("--nproc-per-node=2 t.py")
    assert torchrun_line({"nodes": "2", "ntasks": "6"}).endswith("--nproc-per-node=3 t.py")
    assert torchrun_line({"partition": "gpu", "gpus_per_node": "2"}).endswith("--nproc-per-node=2 t.py")


def test_mpi_jobs_start_ranks_with_the_partitions_launcher(tmp_path):
    text = _script(
        _prep(kind="mpi", command=("./a.out",), options={"nodes": "2", "partition": "batch"}), tmp_path
    )
    launch = next(line for line in text.splitlines() if "-m hpcx.run" in line)
    assert launch.startswith("srun ") and "--mpi=pmix" in launch and launch.endswith("-m hpcx.run -- ./a.out")


# --- an own script -------------------------------------------------------------------------------------------


def test_an_own_script_is_shown_as_written(tmp_path):
    prep = _own(tmp_path, "#SBATCH -p debug -t 5")
    assert (
        render_preview(prep, tmp_path, tmp_path / "runs")
        == "#!/bin/bash\n#SBATCH -p debug -t 5\npython task.py\n"
    )


def test_options_the_user_set_beside_an_own_script_are_passed_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv("HPCX_ACCOUNT", "proj1")
    monkeypatch.setenv("HPCX_TIME", "7")  # the script's own -t wins over a default
    prep = _own(tmp_path, "#SBATCH -p debug -t 5", {"qos": "normal", "ntasks_per_node": "2"})
    args = script_args(prep, RUN_DIR, tmp_path)
    assert set(args[:4]) == {"--ntasks-per-node=2", "--qos=normal", "--account=proj1", "--job-name=job.sh"}
    assert not any(a.startswith(("--time", "--partition")) for a in args)
    assert prep.spec.resources.time_min == 5 and prep.sources["account"] == "env"


def test_an_own_scripts_array_and_dependencies_are_added_after_its_options(tmp_path):
    prep = _own(tmp_path, "#SBATCH -p debug -t 5 -J mine", array="0-3", after=("77",))
    assert (
        script_args(prep, RUN_DIR, tmp_path)
        == [
            "--array=0-3",
            "--output=/runs/R/logs/slurm-%A_%a.out",
            "--error=/runs/R/logs/slurm-%A_%a.err",
            "--dependency=afterok:77",
            "--kill-on-invalid-dep=yes",  # an upstream that fails later ends this job instead of leaving it pending
        ]
    )


@pytest.mark.parametrize(
    "directives, output, error",
    [
        ("#SBATCH -t 5", "/runs/R/logs/slurm-%j.out", "/runs/R/logs/slurm-%j.err"),
        ("#SBATCH -t 5 --array=1-2", "/runs/R/logs/slurm-%A_%a.out", "/runs/R/logs/slurm-%A_%a.err"),
        ("#SBATCH -t 5 -a 1-2", "/runs/R/logs/slurm-%A_%a.out", "/runs/R/logs/slurm-%A_%a.err"),
        ("#SBATCH -t 5 -o out-%j.txt", "{w}/out-%j.txt", "{w}/out-%j.txt"),
        ("#SBATCH -t 5 --output=o.txt --error=e.txt", "{w}/o.txt", "{w}/e.txt"),
        ("#SBATCH -t 5 -e e.txt", "/runs/R/logs/slurm-%j.out", "{w}/e.txt"),
        ("#SBATCH -t 5 -D sub -o o.txt", "{w}/sub/o.txt", "{w}/sub/o.txt"),
        ("#SBATCH -t 5 --chdir=/abs --error=e.txt", "/runs/R/logs/slurm-%j.out", "/abs/e.txt"),
        ("#SBATCH -t 5 -o first.txt\n#SBATCH -o second.txt", "{w}/second.txt", "{w}/second.txt"),
        ("#SBATCH -t 5 -o lr=0.1.txt", "{w}/lr=0.1.txt", "{w}/lr=0.1.txt"),
    ],
)
def test_an_own_scripts_logs_are_found_where_slurm_writes_them(tmp_path, directives, output, error):
    prep = _own(tmp_path, directives)
    got = log_patterns(prep, RUN_DIR, tmp_path)
    assert got == (output.format(w=tmp_path), error.format(w=tmp_path))


# --- submitting: the run directory, what sbatch gets, nothing left behind on failure ------------------------


class FakeSlurm:
    """Stands where sbatch, squeue and sacct answer: records each submission, reports the states it is given."""

    def __init__(self, states=None, fail=None):
        self.submitted: list[dict] = []
        self.states = states or {}
        self.fail = fail

    def submit(self, script, run_dir, *, env=None, args=(), cwd=None):
        if self.fail:
            raise self.fail
        self.submitted.append(
            {
                "script": script.read_text(),
                "mode": script.stat().st_mode & 0o777,
                "run_dir": run_dir,
                "env": dict(env or {}),
                "args": list(args),
                "cwd": cwd,
            }
        )
        return "4242"

    def status(self, refs):
        return {r.job_id: self.states[r.job_id] for r in refs if r.job_id in self.states}


@pytest.fixture
def slurm(monkeypatch):
    from hpcx.schedulers import get_scheduler

    fake = FakeSlurm()
    answer = lambda name: fake if name == "slurm" else get_scheduler(name)  # noqa: E731
    monkeypatch.setattr("hpcx.submit.submission.get_scheduler", answer)
    monkeypatch.setattr("hpcx.submit.after.get_scheduler", answer)
    monkeypatch.setattr("hpcx.submit.sweep_submit.get_scheduler", answer)
    monkeypatch.setattr("hpcx.runs.state.get_scheduler", answer)  # task_states lives there
    return fake


def _read(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def test_submit_writes_the_script_and_manifest_then_hands_sbatch_the_run(tmp_path, slurm, monkeypatch):
    import hashlib

    from hpcx.submit.submission import submit

    monkeypatch.setenv("SBATCH_PARTITION", "other")  # inherited sbatch settings must not reach it
    root = tmp_path / "runs"
    prep = _prep(
        options={"time": "20"}, kind="array", array="0-3", variables={"seed": "1"}, command=("echo", "hi")
    )
    result = submit(prep, tmp_path, root)
    run_dir = Path(result["run_dir"])
    assert result == {
        "run_id": run_dir.name,
        "run_dir": str(run_dir),
        "job_id": "4242",
        "scheduler": "slurm",
        "partition": "debug",
    }
    (sent,) = slurm.submitted
    assert sent["script"] == (run_dir / "job.sbatch").read_text() and sent["mode"] == 0o755
    assert f"#SBATCH --output={run_dir}/logs/slurm-%A_%a.out\n" in sent["script"]
    assert sent["args"] == ["--array=0-3"] and sent["cwd"] == tmp_path and sent["run_dir"] == run_dir
    assert sent["env"]["HPCX_RUN_ID"] == run_dir.name and sent["env"]["HPCX_RUN_DIR"] == str(run_dir)
    assert "SBATCH_PARTITION" not in sent["env"]
    manifest = _read(run_dir / "manifest.json")
    assert manifest["schema"] == "hpcx.manifest/1" and manifest["run_id"] == run_dir.name
    assert manifest["kind"] == {"value": "array", "source": "cli"}
    assert manifest["profile"] == {"value": False, "source": "default"}
    assert manifest["resources"]["time_min"] == {"value": 20, "source": "cli"}
    assert manifest["resources"]["partition"] == {"value": "debug", "source": "auto"}
    assert manifest["resources"]["cpus_per_task"] == {"value": 1, "source": "default"}
    assert manifest["command"] == ["echo", "hi"] and manifest["variables"] == {"seed": "1"}
    assert manifest["workdir"] == str(tmp_path) and manifest["sbatch_args"] == ["--array=0-3"]
    assert manifest["site"]["name"] == "testbed" and manifest["site"]["cluster"] == "hpcxtest"
    assert manifest["site"]["scheduler"] == "slurm" and manifest["site"]["source"] == prep.site.source
    template = Path(manifest["template"]["path"])
    assert template.name == "array.sbatch.j2"
    assert manifest["template"]["sha256"] == hashlib.sha256(template.read_bytes()).hexdigest()
    assert manifest["choice"]["chosen"] == "debug" and manifest["directives"] == []
    assert manifest["versions"]["hpcx"] and manifest["user"]
    job = _read(run_dir / "job.json")
    assert (job["job_id"], job["scheduler"], job["kind"]) == ("4242", "slurm", "array")


def test_submit_of_an_own_script_sends_its_bytes_and_records_where_its_logs_go(tmp_path, slurm):
    import hashlib

    from hpcx.submit.submission import submit

    prep = _own(tmp_path, "#SBATCH -p debug -t 5 -o out-%j.txt", {"qos": "normal"}, named={})
    result = submit(prep, tmp_path, tmp_path / "runs")
    run_dir = Path(result["run_dir"])
    (sent,) = slurm.submitted
    text = (tmp_path / "job.sh").read_text()
    assert sent["script"] == text and (run_dir / "job.sbatch").read_text() == text
    assert sent["args"] == ["--qos=normal", "--job-name=job.sh"]
    manifest = _read(run_dir / "manifest.json")
    assert manifest["template"] == {"path": None, "sha256": hashlib.sha256(text.encode()).hexdigest()}
    assert manifest["kind"] == {"value": "script", "source": "script"}
    assert manifest["log_patterns"] == [f"{tmp_path}/out-%j.txt"]
    assert manifest["unchecked_directives"] == ["-o=out-%j.txt"]
    assert manifest["sbatch_args"] == ["--qos=normal", "--job-name=job.sh"]


def test_a_failed_submission_leaves_no_run_behind(tmp_path, slurm):
    from hpcx.errors import SchedulerError
    from hpcx.submit.submission import submit

    slurm.fail = SchedulerError("sbatch: error: Batch job submission failed")
    root = tmp_path / "runs"
    with pytest.raises(SchedulerError):
        submit(_prep(), tmp_path, root)
    assert not [p for p in root.iterdir() if not p.name.startswith(".")]


def test_submit_refuses_a_missing_working_directory_and_after_without_slurm(tmp_path, slurm):
    from hpcx.submit.submission import submit

    with pytest.raises(UsageError) as err:
        submit(_prep(), tmp_path / "gone", tmp_path / "runs")
    assert str(err.value) == (
        f"working directory {str(tmp_path / 'gone')!r} does not exist; jobs run where they were submitted from: "
        "create it or submit from elsewhere"
    )
    local = resolve(Request("serial", command=("true",), after=("1",)), load_site(None))
    with pytest.raises(UsageError) as err:
        submit(local, tmp_path, tmp_path / "runs")
    assert str(err.value) == (
        "--after a run that has not finished needs a Slurm site; "
        "the local backend runs jobs at once, in order: submit when it has finished"
    )
    assert not slurm.submitted


# --- --after RUN: decided from how the run ended ---------------------------------------------------------------


def _run(root: Path, job: dict | None):
    from hpcx.runs import create_run, record_job

    run = create_run(root)
    if job is not None:
        record_job(run, job)
    return run


def _state(job_id: str, state: str, exit_code=None, **kw):
    from hpcx.schedulers.base import JobState

    return JobState(job_id, state, exit_code=exit_code, **kw)


def test_after_a_run_still_active_waits_for_its_job_and_after_a_success_for_nothing(tmp_path, slurm):
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    running = _run(root, {"scheduler": "slurm", "job_id": "101"})
    done = _run(root, {"scheduler": "slurm", "job_id": "102"})
    slurm.states = {"101": _state("101", "RUNNING"), "102": _state("102", "COMPLETED", 0)}
    assert after_job_ids(root, (running.id, done.id, running.id)) == ("101",)
    assert after_job_ids(root, ("101",)) == ("101",)  # a job id of a run: that run
    assert after_job_ids(root, ("102",)) == ()


@pytest.mark.parametrize(
    "state, code, said",
    [("FAILED", 2, "FAILED, exit code 2"), ("TIMEOUT", 0, "TIMEOUT"), ("CANCELLED", None, "CANCELLED")],
)
def test_after_a_run_that_ended_badly_is_refused_naming_how(tmp_path, slurm, state, code, said):
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    run = _run(root, {"scheduler": "slurm", "job_id": "103"})
    slurm.states = {"103": _state("103", state, code)}
    with pytest.raises(RejectedError) as err:
        after_job_ids(root, (run.id,))
    assert str(err.value) == (
        f"--after: run {run.id} already ended {said}, so a job after it would never start; "
        "run it again (`hpcx rerun`) and wait for the new run, or submit without --after"
    )
    assert err.value.exit_code == 3


def test_after_a_run_never_submitted_or_of_unknown_outcome_is_refused(tmp_path, slurm):
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    unsent = _run(root, None)
    with pytest.raises(RejectedError) as err:
        after_job_ids(root, (unsent.id,))
    assert str(err.value) == f"--after {unsent.id}: run {unsent.id} was never submitted; submit it first"
    forgotten = _run(root, {"scheduler": "slurm", "job_id": "104"})
    with pytest.raises(RejectedError) as err:
        after_job_ids(root, (forgotten.id,))
    assert str(err.value) == (
        f"--after {forgotten.id}: hpcx cannot tell how run {forgotten.id} (job 104) ended: the scheduler no longer "
        "knows the job and the run has no accounting record; check the run's logs, then submit without --after if "
        "it succeeded"
    )


def test_after_a_run_slurm_forgot_is_decided_by_its_accounting_record(tmp_path, slurm):
    import json

    from hpcx.runs.provenance import ACCOUNTING
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    run = _run(root, {"scheduler": "slurm", "job_id": "105"})
    row = {
        "JobID": "105",
        "State": "FAILED",
        "ExitCode": "3:0",
        "AllocTRES": "cpu=1",
        "Elapsed": "00:00:05",
        "TotalCPU": "00:00:01",
        "MaxRSS": "",
        "NodeList": "n1",
        "Start": "2026-01-01T00:00:00",
        "End": "2026-01-01T00:00:05",
    }
    (run.dir / ACCOUNTING).write_text(json.dumps({"rows": [row], "finished": True}))
    with pytest.raises(RejectedError, match=rf"^--after: run {run.id} already ended FAILED, exit code 3, "):
        after_job_ids(root, (run.id,))
    (run.dir / ACCOUNTING).write_text(
        json.dumps({"rows": [{**row, "State": "COMPLETED", "ExitCode": "0:0"}], "finished": True})
    )
    assert after_job_ids(root, (run.id,)) == ()


def test_after_a_job_id_no_run_knows_asks_slurm(tmp_path, slurm):
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    root.mkdir()
    slurm.states = {"900": _state("900", "PENDING"), "901": _state("901", "OUT_OF_MEMORY", 0)}
    assert after_job_ids(root, ("900",)) == ("900",)
    with pytest.raises(RejectedError) as err:
        after_job_ids(root, ("901",))
    assert str(err.value).startswith(
        "--after: job 901 already ended OUT_OF_MEMORY, so a job after it would never"
    )
    with pytest.raises(RejectedError) as err:
        after_job_ids(root, ("902",))
    assert str(err.value) == (
        "--after 902: Slurm knows no job 902 and no run under the runs root submitted it; give a run id "
        "(`hpcx runs`), or the id of a job Slurm still lists (squeue, sacct)"
    )
    from hpcx.errors import RunNotFoundError

    with pytest.raises(RunNotFoundError):
        after_job_ids(root, ("no-such-run",))


def _sweep(root: Path, chunks: list[tuple[str, int]]):
    """A sweep run whose chunks are arrays (job id, task count), tasks numbered on from chunk to chunk."""
    offset, out = 0, []
    for job_id, count in chunks:
        out.append({"job_id": job_id, "offset": offset, "count": count, "array": f"0-{count - 1}"})
        offset += count
    return _run(root, {"scheduler": "slurm", "job_id": chunks[0][0], "chunks": out})


def test_after_a_sweep_waits_for_its_arrays_still_active(tmp_path, slurm):
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    sweep = _sweep(root, [("201", 2), ("202", 2)])
    slurm.states = {
        "201": _state("201", "COMPLETED", 0, task_states={0: "COMPLETED", 1: "COMPLETED"}),
        "202": _state("202", "RUNNING", task_states={0: "RUNNING", 1: "COMPLETED"}),
    }
    assert after_job_ids(root, (sweep.id,)) == ("202",)
    slurm.states["202"] = _state("202", "COMPLETED", 0, task_states={0: "COMPLETED", 1: "COMPLETED"})
    assert after_job_ids(root, (sweep.id,)) == ()


def test_after_a_sweep_with_failed_tasks_is_refused_counting_them(tmp_path, slurm):
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    sweep = _sweep(root, [("301", 3)])
    slurm.states = {"301": _state("301", "RUNNING", task_states={0: "FAILED", 1: "TIMEOUT", 2: "FAILED"})}
    with pytest.raises(RejectedError) as err:
        after_job_ids(root, (sweep.id,))
    assert str(err.value) == (
        f"--after {sweep.id}: sweep {sweep.id} has tasks that already ended without success (2 FAILED, 1 TIMEOUT), "
        f"so a job after it would never start; hpcx sweep --retry-failed {sweep.id}, then --after {sweep.id} waits "
        "for the retries too"
    )


def test_after_a_sweep_that_ended_without_every_task_known_to_complete_is_refused(tmp_path, slurm):
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    sweep = _sweep(root, [("401", 2)])
    slurm.states = {"401": _state("401", "COMPLETED", 0, task_states={0: "COMPLETED"})}
    with pytest.raises(RejectedError) as err:
        after_job_ids(root, (sweep.id,))
    assert str(err.value) == (
        f"--after {sweep.id}: sweep {sweep.id} has ended, but hpcx cannot tell that all its tasks completed "
        f"(UNKNOWN); check `hpcx status {sweep.id}`, then submit without --after if they did"
    )


# --- an own script: what sbatch gets beside it, and scripts hpcx cannot take ---------------------------------


def test_every_option_typed_beside_an_own_script_reaches_sbatch_in_sbatchs_spelling(tmp_path):
    typed = {
        "partition": "gpu",
        "nodes": "1",
        "ntasks_per_node": "2",
        "cpus_per_task": "2",
        "gpus_per_node": "1",
        "mem": "2G",
        "time": "1:00:00",
        "account": "a1",
        "qos": "q1",
        "name": "n1",
    }
    prep = _own(tmp_path, "#SBATCH -t 5", typed)
    assert sorted(script_args(prep, RUN_DIR, tmp_path)[:10]) == [
        "--account=a1",
        "--cpus-per-task=2",
        "--gpus-per-node=1",
        "--job-name=n1",
        "--mem=2G",
        "--nodes=1",
        "--ntasks-per-node=2",
        "--partition=gpu",
        "--qos=q1",
        "--time=1:00:00",
    ]


def test_defaults_of_the_users_own_reach_sbatch_beside_an_own_script_the_scripts_do_not(tmp_path):
    from hpcx.site.config import UserConfig

    site = _site(tmp_path, "defaults:\n  qos: normal\n")
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH -p debug -t 5 -J mine -N 1\npython task.py\n")
    user = UserConfig(None, defaults={"account": "u1", "nodes": 2})
    prep = resolve(Request(None, script=script), load_site(site), user)
    args = script_args(prep, RUN_DIR, tmp_path)
    assert args[:2] == ["--account=u1", "--qos=normal"]
    assert not any(a.startswith(("--nodes", "--partition", "--time", "--job-name")) for a in args)


def test_an_own_script_named_as_no_sbatch_line_could_be_is_passed_its_name_as_sbatch_would(tmp_path):
    script = tmp_path / "my job.sh"
    script.write_text("#!/bin/bash\n#SBATCH -p debug -t 5\ntrue\n")
    prep = resolve(Request(None, script=script), load_site(TESTBED))
    assert script_args(prep, RUN_DIR, tmp_path)[0] == "--job-name=my job.sh"
    assert prep.spec.resources.name == "hpcx"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"echo no shebang\n", "has no #! line; start it with #!/bin/bash"),
        (b"#!/bin/bash\n\xff\xfe\n", "cannot be read: 'utf-8' codec can't decode byte 0xff"),
    ],
)
def test_a_script_hpcx_cannot_take_is_refused_naming_it(tmp_path, content, message):
    script = tmp_path / "job.sh"
    script.write_bytes(content)
    with pytest.raises(UsageError) as err:
        resolve(Request(None, script=script), load_site(TESTBED))
    assert str(err.value).startswith(f"batch script {str(script)!r} {message}")
    with pytest.raises(UsageError, match="cannot be read: "):
        resolve(Request(None, script=tmp_path / "missing.sh"), load_site(TESTBED))


# --- what the job's shell gets from the site -----------------------------------------------------------------


def test_the_sites_python_modules_and_environment_reach_the_script(tmp_path):
    site = _site(tmp_path, "", base=TESTBED)
    text = (
        Path(site)
        .read_text()
        .replace(
            "environment:\n  module_system: none\n",
            "environment:\n  module_system: lmod\n  modules: [gcc/12, openmpi]\n  python: /opt/py 3/bin/python3\n",
        )
    )
    Path(site).write_text(text)
    script = _script(_prep(site), tmp_path)
    assert "module load gcc/12 openmpi\n" in script and "export GLOO_SOCKET_IFNAME=lo\n" in script
    launch = next(line for line in script.splitlines() if "-m hpcx.run" in line)
    assert launch.startswith("'/opt/py 3/bin/python3' -m hpcx.run -- true")


def test_a_sweeps_tasks_read_their_parameters_from_the_task_table(tmp_path):
    prep = _prep()
    prep.task_table = True  # what a sweep's chunks are rendered with
    text = _script(prep, tmp_path)
    assert '-m hpcx.run --task-id "$((SLURM_ARRAY_TASK_ID + ${HPCX_TASK_OFFSET:-0}))" --task-table ' in text
    assert '--task-table "$HPCX_RUN_DIR/tasks.jsonl" -- true' in text
    assert "#SBATCH --output=/runs/R/logs/slurm-%A_%a.out\n" in text and "#SBATCH --array" not in text


def test_after_a_sweep_whose_failed_task_was_retried_waits_for_the_retry_and_each_other_task(tmp_path, slurm):
    from hpcx.runs import create_run, record_job
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    sweep = create_run(root)
    record_job(
        sweep,
        {
            "scheduler": "slurm",
            "job_id": "501",
            "chunks": [
                {"job_id": "501", "offset": 0, "count": 4, "array": "0-3"},
                {
                    "job_id": "502",
                    "offset": 0,
                    "count": 1,
                    "indices": [0],
                    "array": "0",
                },  # the retry of task 0
            ],
        },
    )
    slurm.states = {
        "501": _state("501", "RUNNING", task_states={0: "FAILED", 1: "COMPLETED", 2: "RUNNING"}),
        "502": _state("502", "PENDING", task_states={0: "PENDING"}),
    }
    # afterok on 501 would never hold (its task 0 failed): its tasks 2 and 3 are waited for one by one
    assert after_job_ids(root, (sweep.id,)) == ("501_2", "501_3", "502")


@pytest.mark.parametrize(
    "directives, added",
    [
        ("", ["--output=/runs/R/logs/slurm-%j.out", "--error=/runs/R/logs/slurm-%j.err"]),
        ("--output=o.txt", []),  # sbatch sends stderr to -o's file too
        ("-o o.txt", []),
        ("--error=e.txt", ["--output=/runs/R/logs/slurm-%j.out"]),
        ("-e e.txt", ["--output=/runs/R/logs/slurm-%j.out"]),
        ("-o o.txt -e e.txt", []),
    ],
)
def test_hpcx_adds_only_the_log_options_an_own_script_leaves_open(tmp_path, directives, added):
    prep = _own(tmp_path, f"#SBATCH -p debug -t 5 -J j {directives}")
    assert script_args(prep, RUN_DIR, tmp_path) == added


def test_tasks_of_an_own_script_are_placed_as_slurm_places_them(tmp_path):
    """-n without -N: Slurm spreads the tasks over as many nodes as they need (the request stays as written);
    with -N, they must fit on that many nodes."""
    spread = _own(tmp_path, "#SBATCH -p batch -n 6")
    assert (spread.spec.resources.ntasks, spread.spec.resources.nodes_max, spread.sources["nodes"]) == (
        6,
        None,
        "default",
    )
    with pytest.raises(
        RejectedError, match=r"^-n 6 does not fit on 1 node\(s\) of partition batch \(4 tasks"
    ):
        _own(tmp_path, "#SBATCH -p batch -n 6 -N 1")  # the node count given: not spread
    with pytest.raises(
        RejectedError,
        match=r"^no node of partition batch can hold one of this job's tasks: .*-c 8 exceeds its 4 CPUs",
    ):
        _own(tmp_path, "#SBATCH -p batch -n 2 -c 8")  # a task bigger than a node
    with pytest.raises(RejectedError) as err:
        _own(tmp_path, "#SBATCH -p debug -n 9")
    assert str(err.value) == (
        "-n 9 needs 3 nodes of 4 tasks, over partition debug's 2 usable nodes (MaxNodes 2); "
        "no partition fits this request: ask for less"
    )
    with pytest.raises(UsageError) as err:
        _own(tmp_path, "#SBATCH -p batch -n 4 -c abc")
    assert str(err.value) == "-c 'abc' is not a whole number; e.g. -c 2"


def test_tasks_are_placed_on_the_named_partitions_nodes(tmp_path):
    site = _site(tmp_path, "", base=TESTBED)
    text = (
        Path(site)
        .read_text()
        .replace(
            "    partitions:\n",
            "    partitions:\n      fat: {max_time: '60', max_nodes: 2, cpus_per_node: 8}\n",
        )
    )
    Path(site).write_text(text)
    assert _own(tmp_path, "#SBATCH -p fat -n 8 -N 1", site=site).partition.name == "fat"  # 8 CPUs: one node
    with pytest.raises(RejectedError, match="partition debug"):
        _own(tmp_path, "#SBATCH -p debug -n 8 -N 1", site=site)


def test_a_node_range_counts_at_most_one_node_per_task(tmp_path):
    prep = _own(tmp_path, "#SBATCH -p debug --nodes=1-5 -n 2")
    assert prep.partition.name == "debug"


def test_a_gpu_type_is_checked_only_where_the_site_names_types(tmp_path):
    site = _site(tmp_path, "", base=TESTBED)
    text = (
        Path(site)
        .read_text()
        .replace(
            "    partitions:\n",
            "    partitions:\n"
            "      any: {max_time: '60', max_nodes: 1, cpus_per_node: 4, gpus_per_node: 2}\n"
            "      mix:\n        max_time: '60'\n        max_nodes: 2\n        cpus_per_node: 4\n"
            "        node_types: [{count: 1, cpus: 4, gpus: 2, gpu_type: v100}, {count: 1, cpus: 4, gpus: 2, gpu_type: a100}]\n",
        )
    )
    Path(site).write_text(text)
    assert _own(tmp_path, "#SBATCH -p any --gres=gpu:h100:1", site=site).partition.name == "any"
    with pytest.raises(RejectedError) as err:
        _own(tmp_path, "#SBATCH -p mix --gres=gpu:h100:1", site=site)
    assert str(err.value).startswith(
        "no node of partition mix can hold one of this job's tasks: 1 node(s) of 4 CPUs and 2 v100 GPUs: v100 GPUs, "
        "not h100; 1 node(s) of 4 CPUs and 2 a100 GPUs: a100 GPUs, not h100; use --partition any"
    )


def test_the_manifest_says_when_where_and_by_whom(tmp_path, slurm, monkeypatch):
    import datetime as dt
    import hashlib
    import platform

    from hpcx.submit.submission import submit

    monkeypatch.setenv("USER", "alice")
    (tmp_path / "data.txt").write_text("x\n")
    site = _site(tmp_path, NAMED)
    prep = _prep(site, named={"constraint": "a100"}, after=("7",))
    prep.inputs = ("data.txt",)
    run_dir = Path(submit(prep, tmp_path, tmp_path / "runs")["run_dir"])
    manifest = _read(run_dir / "manifest.json")
    created = dt.datetime.fromisoformat(manifest["created"])
    assert created.utcoffset() == dt.timedelta(0)
    assert manifest["site"]["sha256"] == hashlib.sha256(Path(site).read_bytes()).hexdigest()
    assert manifest["directives"] == [
        ["--constraint", "a100"],
        ["--dependency", "afterok:7"],
        ["--kill-on-invalid-dep", "yes"],
    ]
    assert manifest["inputs"][0]["path"] == "data.txt"
    assert manifest["inputs"][0]["resolved"] == str(tmp_path / "data.txt")
    assert (run_dir / "requirements.txt").is_file() and "error" not in manifest["python"]["requirements"]
    assert manifest["versions"]["python"] == platform.python_version() and manifest["host"] == platform.node()
    assert manifest["user"] == "alice"
    monkeypatch.delenv("USER")
    run_dir = Path(submit(_prep(), tmp_path, tmp_path / "runs")["run_dir"])
    assert _read(run_dir / "manifest.json")["user"] == str(os.getuid())
    job = _read(run_dir / "job.json")
    assert dt.datetime.fromisoformat(job["submitted_at"]).utcoffset() == dt.timedelta(0)


def test_the_submitted_script_names_its_run_and_working_directory(tmp_path, slurm):
    from hpcx.submit.submission import submit

    run_dir = Path(submit(_prep(), tmp_path, tmp_path / "runs")["run_dir"])
    sent = slurm.submitted[0]["script"]
    assert f", run {run_dir.name}.\n" in sent and f"#SBATCH --chdir={tmp_path}\n" in sent


def test_an_own_script_submitted_gets_its_logs_in_the_run_directory(tmp_path, slurm):
    from hpcx.submit.submission import submit

    prep = _own(tmp_path, "#SBATCH -p debug -t 5")
    run_dir = Path(submit(prep, tmp_path, tmp_path / "runs")["run_dir"])
    logs = [f"{run_dir}/logs/slurm-%j.err", f"{run_dir}/logs/slurm-%j.out"]
    assert slurm.submitted[0]["args"] == ["--job-name=job.sh", f"--output={logs[1]}", f"--error={logs[0]}"]
    manifest = _read(run_dir / "manifest.json")
    assert manifest["log_patterns"] == logs
    assert manifest["resources"]["name"] == {"value": "job.sh", "source": "default"}


def test_a_local_site_runs_jobs_and_takes_after_only_on_slurm(tmp_path, slurm, monkeypatch):
    from hpcx.submit.submission import submit

    local = FakeSlurm()  # stands where the local backend would start the job
    monkeypatch.setattr(
        "hpcx.submit.submission.get_scheduler", lambda name: {"slurm": slurm, "local": local}[name]
    )
    site = _site(tmp_path, NAMED)
    Path(site).write_text(Path(site).read_text().replace("scheduler: slurm", "scheduler: local"))
    result = submit(_prep(site, named={"constraint": "a100"}), tmp_path, tmp_path / "runs")
    assert result["scheduler"] == "local" and len(local.submitted) == 1 and not slurm.submitted
    assert submit(_prep(after=("7",)), tmp_path, tmp_path / "runs")["job_id"] == "4242"  # Slurm takes it
    assert len(slurm.submitted) == 1


def test_after_a_run_of_the_local_backend_asks_that_backend(tmp_path, slurm):
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    run = _run(root, {"scheduler": "local", "job_id": "local-1"})
    (run.dir / "logs" / "local-1.exit").write_text("3\n")
    with pytest.raises(RejectedError, match=rf"^--after: run {run.id} already ended FAILED, exit code 3"):
        after_job_ids(root, (run.id,))
    (run.dir / "logs" / "local-1.exit").write_text("0\n")
    assert after_job_ids(root, (run.id,)) == ()


def test_after_several_runs_waits_for_each_active_one_and_a_job_id_finds_its_run(tmp_path, slurm):
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    first = _run(root, {"scheduler": "slurm", "job_id": "111"})
    second = _run(root, {"scheduler": "slurm", "job_id": "112"})
    failed = _run(root, {"scheduler": "slurm", "job_id": "113"})
    slurm.states = {
        "111": _state("111", "RUNNING"),
        "112": _state("112", "PENDING"),
        "113": _state("113", "FAILED", 1),
    }
    assert after_job_ids(root, (first.id, second.id)) == ("111", "112")
    with pytest.raises(RejectedError) as err:
        after_job_ids(root, ("113",))  # the run's job id: the message names both
    assert str(err.value).startswith(
        f"--after 113: run {failed.id} already ended FAILED, exit code 1, so a job"
    )


def test_after_a_job_id_of_a_run_slurm_forgot_is_decided_by_the_run(tmp_path, slurm):
    import json

    from hpcx.runs.provenance import ACCOUNTING
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    run = _run(root, {"scheduler": "slurm", "job_id": "120"})
    row = {
        "JobID": "120",
        "State": "COMPLETED",
        "ExitCode": "0:0",
        "AllocTRES": "cpu=1",
        "Elapsed": "00:00:05",
        "TotalCPU": "00:00:01",
        "MaxRSS": "",
        "NodeList": "n1",
        "Start": "2026-01-01T00:00:00",
        "End": "2026-01-01T00:00:05",
    }
    (run.dir / ACCOUNTING).write_text(json.dumps({"rows": [row], "finished": True}))
    assert after_job_ids(root, ("120",)) == ()  # not "Slurm knows no job 120"


def test_a_run_recorded_without_a_scheduler_is_slurms(tmp_path, slurm):
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    run = _run(root, {"job_id": "130"})
    sweep = _run(
        root, {"job_id": "131", "chunks": [{"job_id": "131", "offset": 0, "count": 2, "array": "0-1"}]}
    )
    slurm.states = {
        "130": _state("130", "RUNNING"),
        "131": _state("131", "RUNNING", task_states={0: "RUNNING"}),
    }
    assert after_job_ids(root, (run.id, sweep.id)) == ("130", "131")


def test_after_a_sweep_of_the_local_backend_asks_that_backend(tmp_path, slurm):
    from hpcx.runs import create_run, record_job
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    job_id = f"local-{os.getpid()}"  # a live process: the local backend takes the array as running
    sweep = create_run(root)
    record_job(
        sweep,
        {
            "scheduler": "local",
            "job_id": job_id,
            "chunks": [{"job_id": job_id, "offset": 0, "count": 2, "array": "0-1"}],
        },
    )
    (sweep.dir / "logs" / f"{job_id}.array").write_text("0 1\n")
    (sweep.dir / "logs" / f"{job_id}_0.exit").write_text("0\n")
    assert after_job_ids(root, (sweep.id,)) == (job_id,)


def test_after_a_sweep_whose_tasks_are_unaccounted_for_names_their_states(tmp_path, slurm):
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    sweep = _sweep(root, [("601", 2), ("602", 1)])
    slurm.states = {"601": _state("601", "COMPLETED", 0, task_states={0: "COMPLETED"})}  # 602: forgotten
    with pytest.raises(
        RejectedError, match=r"cannot tell that all its tasks completed \(PENDING, UNKNOWN\); "
    ):
        after_job_ids(root, (sweep.id,))


def test_an_accounting_record_of_a_job_not_yet_finished_decides_nothing(tmp_path, slurm):
    import json

    from hpcx.runs.provenance import ACCOUNTING
    from hpcx.submit.submission import after_job_ids

    root = tmp_path / "runs"
    run = _run(root, {"scheduler": "slurm", "job_id": "140"})
    row = {
        "JobID": "140",
        "State": "RUNNING",
        "ExitCode": "0:0",
        "AllocTRES": "cpu=1",
        "Elapsed": "00:00:05",
        "TotalCPU": "00:00:01",
        "MaxRSS": "",
        "NodeList": "n1",
        "Start": "2026-01-01T00:00:00",
        "End": "Unknown",
    }
    (run.dir / ACCOUNTING).write_text(json.dumps({"rows": [row], "finished": False}))
    with pytest.raises(
        RejectedError, match=rf"^--after {run.id}: hpcx cannot tell how run {run.id} \(job 140\) ended"
    ):
        after_job_ids(root, (run.id,))
