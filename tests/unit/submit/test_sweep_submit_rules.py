"""Submitting a sweep as the user sees it: the live limits it reads (MaxArraySize, MaxJobCount, the user's
MaxSubmitJobs and queue), the arrays it submits (their --array, throttle, chaining, task offset and directory),
the run directory it leaves, what a failure part-way leaves (nothing), and --retry-failed.

`hpcx sweep` runs in this process against the test cluster's site file; the Slurm commands are small stand-ins
on PATH that print what a cluster would and log how they were called (the real cluster is tested in
tests/slurm/)."""

import getpass
import hashlib
import json
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest

from hpcx.cli import main
from hpcx.submit.sweep_submit import check_queue, live_limits
from hpcx.submit.sweeps import SweepError
from tests.conftest import TESTBED_SITE

ME = getpass.getuser()

STUBS = {
    # Only the queries hpcx means to make answer; anything else fails as Slurm fails an unknown option.
    "scontrol": f"""case "$*" in
  "show config") cat "$D/config";;
  "show assoc_mgr users={ME} flags=assoc") cat "$D/assoc";;
  *) echo "scontrol: error: invalid input: $*" >&2; exit 1;;
esac""",
    "squeue": """case "$*" in
  "-h -r --states=all -o %u") cat "$D/users";;
  *" -O "*) cat "$D/squeue";;
  *) echo "squeue: error: unrecognized option: $*" >&2; exit 1;;
esac""",
    "sacct": 'cat "$D/sacct"',
    "sinfo": "exit 0",
    "sacctmgr": "exit 0",
    "scancel": 'echo "scancel $*" >> "$D/calls"',
    "sbatch": """[ "$1" = --parsable ] || { echo "slurm 23.02.7"; exit 0; }
exec 9> "$D/lock"; flock 9  # arrays are submitted concurrently: one job id each
n=$(cat "$D/next"); echo $((n + 1)) > "$D/next"
if [ "${HPCX_TASK_OFFSET:-}" = "$(cat "$D/fail_offset" 2>/dev/null)" ]; then
  echo "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2; exit 1
fi
echo "sbatch $* | offset=${HPCX_TASK_OFFSET:-} res=${SBATCH_RESERVATION:-} part=${SBATCH_PARTITION:-} run=${HPCX_RUN_ID:-} dir=${HPCX_RUN_DIR:-} id=$n cwd=$PWD" >> "$D/calls"; echo "$n\"""",
}


class Cluster:
    """Stand-in Slurm commands; ``d`` holds what they print and ``calls`` what was asked of them."""

    def __init__(self, d: Path) -> None:
        self.d = d

    def set(self, name: str, text: str) -> None:
        (self.d / name).write_text(text)

    def calls(self) -> list[str]:
        path = self.d / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def job_ids(self) -> dict[int, str]:
        """Task offset -> the job id sbatch gave that array (the last one, for retries)."""
        out = {}
        for line in self.calls():
            if line.startswith("sbatch "):
                env = dict(w.split("=", 1) for w in line.partition(" | ")[2].split())
                out[int(env["offset"])] = env["id"]
        return out

    def scripts(self) -> list[str]:
        """The script each sbatch call was given (its last word)."""
        return [line.partition(" | ")[0].split()[-1] for line in self.calls() if line.startswith("sbatch ")]

    def sbatch(self) -> list[str]:
        """Each sbatch call's options (without --parsable and the script) and its task offset."""
        out = []
        for line in self.calls():
            if line.startswith("sbatch "):
                args, _, env = line.partition(" | ")
                words = [w for w in args.split()[1:-1] if w != "--parsable"]
                out.append(" ".join(words) + " " + env.split()[0])
        return out


@pytest.fixture
def cluster(tmp_path, monkeypatch) -> Cluster:
    d = tmp_path / "slurm"
    bindir = d / "bin"
    bindir.mkdir(parents=True)
    for name, body in STUBS.items():
        path = bindir / name
        path.write_text(f"#!/bin/bash\nD={d}\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    c = Cluster(d)
    for name in ("config", "assoc", "users", "squeue", "sacct"):
        c.set(name, "")
    c.set("next", "100")
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    for var in [v for v in os.environ if v.startswith(("HPCX_", "SBATCH_", "SLURM_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HPCX_RUNS", str(tmp_path / "runs"))
    (tmp_path / "runs").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return c


@pytest.fixture
def hpcx(capsys):
    def run(*args: str):
        code = main(["--site", str(TESTBED_SITE), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def write_spec(tasks: int = 10, extra: str = "") -> str:
    path = Path.cwd() / "sweep.yaml"
    path.write_text(
        f"name: scan\ncommand: [t, '{{i}}']\nparameters: {{grid: {{i: {{range: [0, {tasks}]}}}}}}\n{extra}"
    )
    return str(path)


def config(max_array=None, max_jobs=None) -> str:
    lines = ["AccountingStorageType   = accounting_storage/slurmdbd"]
    if max_array is not None:
        lines.append(f"MaxArraySize            = {max_array}")
    if max_jobs is not None:
        lines.append(f"MaxJobCount             = {max_jobs}")
    return "\n".join(lines) + "\n"


def assoc(*records: tuple[str, str]) -> str:
    """`scontrol show assoc_mgr flags=assoc` output: (user, MaxSubmitJobs) per association record."""
    text = "Current Association Manager state\n\nAssociation Records\n\n"
    text += "ClusterName=hpcxtest Account=root UserName= Partition= Priority=0 ID=1\n    MaxJobs= MaxSubmitJobs=3(0)\n"
    for i, (user, cap) in enumerate(records):
        text += (
            f"ClusterName=hpcxtest Account=a{i} UserName={user}(1000) Partition= Priority=0 ID={i + 2}\n"
            f"    GrpJobs=N(0) GrpJobsAccrue=N(0)\n    GrpSubmitJobs=N(0) GrpWall=N(0.00)\n"
            f"    MaxJobs= MaxJobsAccrue= MaxSubmitJobs={cap} MaxWallPJ=\n"
        )
    return text


# -- the live limits ---------------------------------------------------------------------------------------


def test_live_limits_are_read_from_the_cluster(cluster):
    cluster.set("config", config(max_array=4, max_jobs=50) + "MaxStepCount            = 40000\n")
    cluster.set("users", f"{ME}\n{ME}\nbob\n")
    cluster.set("assoc", assoc((ME, "30(2)"), ("bob", "5(0)"), (ME, "20(2)"), (ME, "")))
    assert live_limits("slurm") == {
        "MaxArraySize": 4,
        "MaxJobCount": 50,
        "queued_all": 3,
        "queued": 2,
        "MaxSubmitJobs": 20,
    }


def test_a_cluster_without_limits_reports_only_its_queue(cluster):
    cluster.set("users", "bob\n")
    assert live_limits("slurm") == {"queued_all": 1, "queued": 0}


def test_a_silent_cluster_leaves_the_checks_to_sbatch(cluster):
    cluster.set("config", config(max_array=4))
    (cluster.d / "bin" / "squeue").write_text(
        "#!/bin/bash\necho 'squeue: error: slurmctld down' >&2; exit 1\n"
    )
    assert live_limits("slurm") == {"MaxArraySize": 4}
    assert live_limits("local") == {}


def test_another_users_max_submit_jobs_is_not_mine(cluster):
    cluster.set("assoc", assoc(("bob", "5(0)"), (f"{ME}x", "6(0)")))
    assert "MaxSubmitJobs" not in live_limits("slurm")


@pytest.mark.parametrize(
    "tasks, limits, words",
    [
        (
            11,
            {"queued": 2, "MaxSubmitJobs": 12},
            "the sweep has 11 tasks and you have 2 jobs queued, but your MaxSubmitJobs is 12; submit at most 10 tasks now",
        ),
        (1, {"queued": 15, "MaxSubmitJobs": 12}, "submit at most 0 tasks now"),
        (
            11,
            {"queued_all": 40, "MaxJobCount": 50},
            "the sweep has 11 tasks, but slurmctld holds at most 50 job records (MaxJobCount; every array task counts) "
            "and holds 40 now; submit at most 10 tasks now, or wait for finished jobs to age out",
        ),
        (
            11,
            {"queued": 40, "MaxJobCount": 50},
            "holds 40 now",
        ),  # without the count of all jobs: the user's own
        (1, {"queued_all": 60, "MaxJobCount": 50}, "submit at most 0 tasks now"),
    ],
)
def test_a_sweep_the_queue_cannot_take_is_refused_naming_the_limit(tasks, limits, words):
    with pytest.raises(SweepError) as err:
        check_queue(tasks, 1, limits)
    assert words in str(err.value) and err.value.exit_code == 3


@pytest.mark.parametrize(
    "tasks, limits",
    [
        (10, {"queued": 2, "MaxSubmitJobs": 12}),  # exactly at the limit
        (10, {"queued_all": 40, "MaxJobCount": 50}),
        (10, {"queued": 2, "queued_all": 40, "MaxSubmitJobs": 12, "MaxJobCount": 50}),
        (10**6, {}),
    ],
)
def test_a_sweep_that_fits_the_queue_passes(tasks, limits):
    check_queue(tasks, 1, limits)


def test_the_queue_limits_stop_a_sweep_before_it_is_submitted(cluster, hpcx):
    cluster.set("config", config(max_jobs=50))
    cluster.set("users", "x\n" * 45)
    code, out, err = hpcx("sweep", write_spec(10))
    assert code == 3 and "slurmctld holds at most 50 job records" in err and "holds 45 now" in err
    assert cluster.sbatch() == [] and os.listdir(os.environ["HPCX_RUNS"]) == []


# -- the arrays submitted ----------------------------------------------------------------------------------


def test_a_sweep_is_split_by_the_live_max_array_size_and_recorded(cluster, hpcx):
    cluster.set("config", config(max_array=4))
    code, out, err = hpcx("--json", "sweep", write_spec(10))
    assert code == 0, err
    doc = json.loads(out)
    ids = cluster.job_ids()  # the arrays go to sbatch at once: any of them may get the first job id
    assert (doc["tasks"], doc["arrays"], doc["job_ids"], doc["job_id"]) == (
        10,
        3,
        [ids[0], ids[4], ids[8]],
        ids[0],
    )
    assert sorted(ids.values()) == ["100", "101", "102"]
    assert doc["partition"] == "debug" and doc["scheduler"] == "slurm"
    assert sorted(cluster.sbatch()) == [
        "--array=0-1 offset=8",
        "--array=0-3 offset=0",
        "--array=0-3 offset=4",
    ]
    assert all(f"cwd={Path.cwd()}" in line for line in cluster.calls())  # tasks start where the user was
    run = Path(doc["run_dir"])
    table = (run / "tasks.jsonl").read_text()
    assert [json.loads(line)["params"]["i"] for line in table.splitlines()] == list(range(10))
    sweep = json.loads((run / "manifest.json").read_text())["sweep"]
    assert sweep["chunks"] == [[0, 4], [4, 4], [8, 2]] and sweep["max_array_size"] == 4
    assert (sweep["tasks"], sweep["name"], sweep["max_parallel"]) == (10, "scan", None)
    assert sweep["tasks_sha256"] == hashlib.sha256(table.encode()).hexdigest()
    assert sweep["limits"]["MaxArraySize"] == 4
    job = json.loads((run / "job.json").read_text())
    assert job["kind"] == "sweep" and job["job_id"] == ids[0]
    chunks = [(c["offset"], c["count"], c["job_id"]) for c in job["chunks"]]
    assert chunks == [(0, 4, ids[0]), (4, 4, ids[4]), (8, 2, ids[8])]


def test_the_sites_smaller_array_limit_wins_and_without_one_slurms_default(cluster, hpcx):
    cluster.set("config", config(max_array=5000))  # the site file says 1001
    code, out, err = hpcx("--json", "sweep", write_spec(1002), "--dry-run")
    assert code == 0, err
    assert json.loads(out)["arrays"] == ["0-1000", "0"]


def test_max_parallel_throttles_each_array_and_chains_them(cluster, hpcx):
    cluster.set("config", config(max_array=4))
    code, out, err = hpcx("--json", "sweep", write_spec(10), "--max-parallel", "2")
    assert code == 0, err
    assert cluster.sbatch() == [
        "--array=0-3%2 offset=0",
        "--array=0-3%2 --dependency=afterany:100 offset=4",
        "--array=0-1%2 --dependency=afterany:101 offset=8",
    ]
    assert (
        json.loads((Path(json.loads(out)["run_dir"]) / "manifest.json").read_text())["sweep"]["max_parallel"]
        == 2
    )


def test_the_specs_max_parallel_applies_and_the_option_overrides_it(cluster, hpcx):
    cluster.set("config", config(max_array=4))
    code, _, err = hpcx("sweep", write_spec(6, "max_parallel: 3\n"))
    assert code == 0, err
    assert cluster.sbatch() == ["--array=0-3%3 offset=0", "--array=0-1%3 --dependency=afterany:100 offset=4"]
    code, out, _ = hpcx(
        "--json", "sweep", write_spec(6, "max_parallel: 3\n"), "--dry-run", "--max-parallel", "1"
    )
    assert json.loads(out)["arrays"] == ["0-3%1", "0-1%1"]


def test_one_array_is_one_sbatch(cluster, hpcx):
    code, out, err = hpcx("sweep", write_spec(2))
    assert code == 0, err
    assert cluster.sbatch() == ["--array=0-1 offset=0"]
    assert "submitted sweep " in out and ": 2 tasks as 1 array job(s) 100 (partition debug)" in out


def test_a_failed_array_cancels_those_submitted_and_leaves_nothing(cluster, hpcx):
    cluster.set("config", config(max_array=4))
    cluster.set("fail_offset", "8")
    code, out, err = hpcx("sweep", write_spec(10))
    assert code == 1 and "QOSMaxSubmitJobPerUserLimit" in err
    cancelled = [line for line in cluster.calls() if line.startswith("scancel")]
    ids = cluster.job_ids()
    assert cancelled == [f"scancel {' '.join(sorted([ids[0], ids[4]]))}"] and 8 not in ids
    assert os.listdir(os.environ["HPCX_RUNS"]) == []


def test_a_failed_chained_array_cancels_the_chain(cluster, hpcx):
    cluster.set("config", config(max_array=4))
    cluster.set("fail_offset", "4")
    code, _, err = hpcx("sweep", write_spec(10), "--max-parallel", "1")
    assert code == 1 and "QOSMaxSubmitJobPerUserLimit" in err
    assert [line for line in cluster.calls() if line.startswith("scancel")] == ["scancel 100"]
    assert len(cluster.sbatch()) == 1 and os.listdir(os.environ["HPCX_RUNS"]) == []


@pytest.mark.parametrize(
    "resources, words",
    [
        (
            "resources: {colour: red}\n",
            "unknown resource(s) colour in the sweep spec; resources are sbatch's job options",
        ),
        (
            "resources: {time: '{i}'}\n",
            "resources.time '{i}' uses {i}, but resources cannot vary within a sweep",
        ),
    ],
)
def test_resources_a_sweep_cannot_take_are_refused(cluster, hpcx, resources, words):
    code, _, err = hpcx("sweep", write_spec(2, resources))
    assert code == 3 and words in err and cluster.sbatch() == []


def test_the_sweeps_resources_and_name_reach_the_script(cluster, hpcx):
    code, out, err = hpcx(
        "--json", "sweep", write_spec(2, "resources: {time: 7, partition: batch}\n"), "--dry-run"
    )
    assert code == 0, err
    script = json.loads(out)["script"]
    assert "#SBATCH --time=00:07:00" in script and "#SBATCH --partition=batch" in script
    assert "#SBATCH --job-name=scan" in script
    code, out, _ = hpcx("--json", "sweep", write_spec(2, "resources: {name: other}\n"), "--dry-run")
    assert "#SBATCH --job-name=other" in json.loads(out)["script"]


# -- --retry-failed ----------------------------------------------------------------------------------------


def sacct(rows: dict[str, str]) -> str:
    return "".join(f"9{i}|{job}|{state}|0:0|1|n1|None\n" for i, (job, state) in enumerate(rows.items()))


def test_retry_failed_resubmits_the_tasks_that_did_not_complete_in_their_arrays(cluster, hpcx):
    cluster.set("config", config(max_array=4))
    code, out, err = hpcx("--json", "sweep", write_spec(10))
    assert code == 0, err
    run_id, first = json.loads(out)["run_id"], cluster.job_ids()
    done = {f"{first[o]}_{i}": "COMPLETED" for o, n in ((0, 4), (4, 4), (8, 2)) for i in range(n)}
    states = {
        **done,
        f"{first[0]}_1": "FAILED",
        f"{first[0]}_2": "TIMEOUT",
        f"{first[4]}_3": "CANCELLED",
        f"{first[8]}_0": "OUT_OF_MEMORY",
    }
    cluster.set("sacct", sacct(states))
    (cluster.d / "calls").write_text("")
    code, out, err = hpcx("sweep", "--retry-failed", run_id)
    assert code == 0, err
    again = cluster.job_ids()
    assert out.strip() == (
        f"resubmitted 4 task(s) of {run_id} (1 cancelled, 1 failed, 1 out_of_memory, 1 timeout) "
        f"as job(s) {again[0]}, {again[4]}, {again[8]}"
    )
    assert sorted(cluster.sbatch()) == ["--array=0 offset=8", "--array=1,2 offset=0", "--array=3 offset=4"]
    job = json.loads((Path(os.environ["HPCX_RUNS"]) / run_id / "job.json").read_text())
    retried = [(c["offset"], c["count"], c.get("indices")) for c in job["chunks"][3:]]
    assert retried == [(0, 2, [1, 2]), (4, 1, [3]), (8, 1, [0])]

    # The retried tasks completed: nothing is left to resubmit, and the states count every task once.
    cluster.set(
        "sacct",
        sacct(
            {
                **done,
                f"{again[0]}_1": "COMPLETED",
                f"{again[0]}_2": "COMPLETED",
                f"{again[4]}_3": "COMPLETED",
                f"{again[8]}_0": "COMPLETED",
            }
        ),
    )
    code, out, _ = hpcx("--json", "sweep", "--retry-failed", run_id)
    doc = json.loads(out)
    assert (doc["retried"], doc["job_ids"], doc["states"]) == ([], [], {"COMPLETED": 10})
    assert (doc["run_id"], doc["retried_states"]) == (run_id, {})


def test_retry_failed_with_a_throttle_chains_the_retries(cluster, hpcx):
    cluster.set("config", config(max_array=4))
    code, out, _ = hpcx("--json", "sweep", write_spec(8), "--max-parallel", "2")
    run_id = json.loads(out)["run_id"]
    cluster.set(
        "sacct", sacct({f"100_{i}": "FAILED" for i in range(4)} | {f"101_{i}": "NODE_FAIL" for i in range(4)})
    )
    (cluster.d / "calls").write_text("")
    code, out, err = hpcx("--json", "sweep", "--retry-failed", run_id)
    assert code == 0, err
    assert cluster.sbatch() == [
        "--array=0,1,2,3%2 offset=0",
        "--array=0,1,2,3%2 --dependency=afterany:102 offset=4",
    ]
    assert json.loads(out)["retried_states"] == {"FAILED": 4, "NODE_FAIL": 4}


def test_tasks_still_pending_or_running_are_not_retried(cluster, hpcx):
    code, out, _ = hpcx("--json", "sweep", write_spec(3))
    run_id = json.loads(out)["run_id"]
    cluster.set("squeue", "100_0|RUNNING|None|n1|0:0|0:05|\n100_[1-2]|PENDING|Priority|||0:00|\n")
    code, out, err = hpcx("--json", "sweep", "--retry-failed", run_id)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["retried"] == [] and doc["states"] == {"RUNNING": 1, "PENDING": 2}
    assert len(cluster.sbatch()) == 1  # only the sweep itself


def test_retry_failed_of_a_run_that_is_not_a_sweep_is_refused(cluster, hpcx, tmp_path):
    run = Path(os.environ["HPCX_RUNS"]) / "20260101-000000-aaaaaa"
    run.mkdir()
    (run / "job.json").write_text(json.dumps({"scheduler": "slurm", "job_id": "42"}))
    code, _, err = hpcx("sweep", "--retry-failed", "20260101")
    assert code == 2 and "run 20260101-000000-aaaaaa is not a sweep; --retry-failed takes the run id" in err


def test_doubled_braces_in_a_resource_are_text_not_a_placeholder(cluster, hpcx):
    # {{i}} is the text {i}: checked as a job name (which it cannot be), not refused as a placeholder.
    code, out, err = hpcx("sweep", write_spec(2, "resources: {name: 'run{{i}}'}\n"), "--dry-run")
    assert code == 2 and err.startswith("hpcx: error: --name 'run{{i}}' is not a plain name")


def test_the_specs_variables_reach_every_task_and_its_inputs_are_fingerprinted(cluster, hpcx):
    Path("data.txt").write_text("rows\n")
    spec = write_spec(2, "variables: {greeting: 5, Mode: fast}\ninputs: [data.txt]\n")
    code, out, err = hpcx("--json", "sweep", spec, "--dry-run")
    assert code == 0, err
    script = json.loads(out)["script"]
    assert "export HPCX_VAR_GREETING=5" in script and "export HPCX_VAR_MODE=fast" in script
    code, out, err = hpcx("--json", "sweep", spec)
    assert code == 0, err
    manifest = json.loads((Path(json.loads(out)["run_dir"]) / "manifest.json").read_text())
    assert [i["path"] for i in manifest["inputs"]] == ["data.txt"]
    assert manifest["inputs"][0]["resolved"] == str(Path.cwd() / "data.txt")


# -- the spec file, the task table, and what --retry-failed reads back ---------------------------------------


def test_a_spec_file_that_cannot_be_read_or_parsed_is_a_usage_error(cluster, hpcx):
    code, _, err = hpcx("sweep", "missing.yaml")
    assert (code, err) == (
        2,
        "hpcx: error: sweep spec 'missing.yaml' cannot be read: No such file or directory\n",
    )
    Path("tabs.yaml").write_text("name: s\ncommand: [t]\nparameters:\n\tgrid: {i: [1]}\n")
    code, _, err = hpcx("sweep", "tabs.yaml")
    assert code == 2 and err.startswith("hpcx: error: sweep spec 'tabs.yaml' is not valid YAML: ")
    assert err.endswith("; indent with spaces: YAML does not allow tabs\n")
    Path("broken.yaml").write_text("name: s\ncommand: [t\n")
    code, _, err = hpcx("sweep", "broken.yaml")
    assert code == 2 and err.startswith("hpcx: error: sweep spec 'broken.yaml' is not valid YAML: ")
    assert "tabs" not in err and len(err.splitlines()) == 1


def test_the_task_table_is_one_sorted_compact_line_per_task_and_the_spec_is_kept(cluster, hpcx):
    code, out, err = hpcx("--json", "sweep", write_spec(2, "seed: 3\n"))
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    first = (run / "tasks.jsonl").read_text().splitlines()[0]
    seed = json.loads(first)["seed"]
    assert first == '{"name":"i=0","params":{"i":0},"seed":' + str(seed) + ',"task":0}'
    assert json.loads((run / "manifest.json").read_text())["sweep"]["seed"] == 3
    import yaml

    assert yaml.safe_load((run / "sweep.yaml").read_text()) == yaml.safe_load(Path("sweep.yaml").read_text())
    assert os.access(run / "job.sbatch", os.X_OK)


def test_a_large_task_table_reports_its_progress_every_thousand_tasks():
    from hpcx.submit.sweep_submit import task_table
    from hpcx.submit.sweeps import Task

    done = []
    table = task_table([Task(i, f"i={i}", {"i": i}, 0) for i in range(3000)], done.append)
    assert done == [1000, 1000, 1000] and len(table.splitlines()) == 3000 and table.endswith("}\n")


def test_retry_keeps_the_sweeps_job_id_and_submission_time(cluster, hpcx):
    code, out, _ = hpcx("--json", "sweep", write_spec(2))
    run = Path(json.loads(out)["run_dir"])
    before = json.loads((run / "job.json").read_text())
    cluster.set("sacct", sacct({"100_0": "FAILED", "100_1": "COMPLETED"}))
    code, out, err = hpcx("--json", "sweep", "--retry-failed", run.name)
    assert code == 0, err
    after = json.loads((run / "job.json").read_text())
    assert after["job_id"] == before["job_id"] == "100" and after["submitted_at"] == before["submitted_at"]
    assert [c["job_id"] for c in after["chunks"]] == ["100", "101"]


def test_an_array_slurm_reports_as_a_whole_gives_its_state_to_every_task(cluster, hpcx):
    code, out, _ = hpcx("--json", "sweep", write_spec(3))
    run_id = json.loads(out)["run_id"]
    cluster.set("sacct", "9|100_[0-2]|CANCELLED by 0|0:0|0||None\n")  # cancelled while pending
    code, out, err = hpcx("--json", "sweep", "--retry-failed", run_id)
    assert code == 0, err
    assert json.loads(out)["retried"] == [0, 1, 2] and cluster.sbatch()[-1] == "--array=0,1,2 offset=0"


def test_tasks_an_ended_array_does_not_list_are_unknown_and_not_retried(cluster, hpcx):
    code, out, _ = hpcx("--json", "sweep", write_spec(3))
    run_id = json.loads(out)["run_id"]
    cluster.set("sacct", sacct({"100_0": "COMPLETED", "100_1": "FAILED"}))
    code, out, err = hpcx("--json", "sweep", "--retry-failed", run_id)
    doc = json.loads(out)
    assert doc["retried"] == [1] and doc["states"] == {"COMPLETED": 1, "FAILED": 1, "UNKNOWN": 1}


def test_retry_of_a_sweep_recorded_before_max_array_size_was_kept_groups_by_its_arrays(cluster, hpcx):
    cluster.set("config", config(max_array=4))
    code, out, _ = hpcx("--json", "sweep", write_spec(10))
    run, first = Path(json.loads(out)["run_dir"]), cluster.job_ids()
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["sweep"]["max_array_size"], manifest["sweep"]["limits"]["MaxArraySize"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    cluster.set(
        "sacct", sacct({f"{first[0]}_3": "FAILED", f"{first[4]}_0": "FAILED", f"{first[8]}_1": "FAILED"})
    )
    (cluster.d / "calls").write_text("")
    code, out, err = hpcx("--json", "sweep", "--retry-failed", run.name)
    assert code == 0, err
    assert sorted(cluster.sbatch()) == ["--array=0 offset=4", "--array=1 offset=8", "--array=3 offset=0"]


def test_retry_runs_where_the_sweep_was_submitted(cluster, hpcx):
    code, out, _ = hpcx("--json", "sweep", write_spec(2))
    run = Path(json.loads(out)["run_dir"])
    cluster.set("sacct", sacct({"100_0": "FAILED", "100_1": "FAILED"}))
    (cluster.d / "calls").write_text("")
    hpcx("sweep", "--retry-failed", run.name)
    assert cluster.calls()[-1].endswith(f"cwd={Path.cwd()}")


def test_every_resource_key_reaches_the_script_and_each_task_reads_its_row(cluster, hpcx):
    extra = "resources: {account: proj, qos: normal, time: null, nodes: 1, ntasks_per_node: 2, cpus_per_task: 2}\n"
    code, out, err = hpcx("--json", "sweep", write_spec(2, extra), "--dry-run")
    assert code == 0, err
    script = json.loads(out)["script"]
    for line in (
        "--account=proj",
        "--qos=normal",
        "--time=00:10:00",
        "--nodes=1",
        "--ntasks-per-node=2",
        "--cpus-per-task=2",
        "--job-name=scan",
    ):
        assert f"#SBATCH {line}\n" in script  # time: null is the partition's default time
    assert (
        '--task-id "$((SLURM_ARRAY_TASK_ID + ${HPCX_TASK_OFFSET:-0}))" --task-table "$HPCX_RUN_DIR/tasks.jsonl"'
        in script
    )


def test_unknown_and_varying_resources_are_refused_in_one_exact_line(cluster, hpcx):
    code, _, err = hpcx("sweep", write_spec(2, "resources: {colour: red, size: 2}\n"))
    assert (code, err) == (
        3,
        "hpcx: error: unknown resource(s) colour, size in the sweep spec; resources are sbatch's job options with "
        "_ for - (ntasks, mem_per_cpu, gpus_per_node, ...): docs/user.md lists them\n",
    )
    code, _, err = hpcx("sweep", write_spec(2, "resources: {mem: '{i}G'}\n"))
    assert (code, err) == (
        3,
        "hpcx: error: resources.mem '{i}G' uses {i}, but resources cannot vary within a sweep: "
        "all its tasks share one job array's resources; give mem one value, and run one sweep "
        "per mem (e.g. two spec files)\n",
    )


def test_tasks_slurm_does_not_report_yet_are_pending(cluster, hpcx):
    code, out, _ = hpcx("--json", "sweep", write_spec(3))
    run_id = json.loads(out)["run_id"]
    assert (
        json.loads((Path(os.environ["HPCX_RUNS"]) / run_id / "manifest.json").read_text())["sweep"]["id"]
        == run_id
    )
    code, out, err = hpcx("--json", "sweep", "--retry-failed", run_id)
    assert code == 0, err
    assert json.loads(out)["states"] == {"PENDING": 3} and len(cluster.sbatch()) == 1


def test_a_retry_stays_within_the_arrays_the_sweep_was_split_into(cluster, hpcx):
    # The site allows 1001 tasks per array, the live cluster 5000: the sweep went as 1001 + 1, and a retry of its
    # last task must go as index 0 of the second array's offset, not index 1001 (past the site's limit).
    cluster.set("config", config(max_array=5000))
    code, out, err = hpcx("--json", "sweep", write_spec(1002))
    assert code == 0, err
    run_id, first = json.loads(out)["run_id"], cluster.job_ids()
    cluster.set("sacct", sacct({f"{first[1001]}_0": "FAILED"}))
    (cluster.d / "calls").write_text("")
    code, out, err = hpcx("--json", "sweep", "--retry-failed", run_id)
    assert code == 0, err
    assert cluster.sbatch() == ["--array=0 offset=1001"]


@pytest.mark.parametrize("tasks, limits", [(10, {"MaxSubmitJobs": 10}), (10, {"MaxJobCount": 10})])
def test_a_queue_with_nothing_queued_takes_up_to_its_limit(tasks, limits):
    check_queue(tasks, 1, limits)


def test_a_sweep_on_the_local_backend_runs_and_retries_its_failed_task(cluster, capsys):
    """The builtin local site (no Slurm): the arrays run here, one after another, and --retry-failed asks the
    local backend, not Slurm, which tasks failed."""
    import time

    def local(*args):
        code = main(["--site", "local", "--json", *args])
        return code, json.loads(capsys.readouterr().out)

    Path("sweep.yaml").write_text("name: l\ncommand: [sh, -c, 'exit {i}']\nparameters: {grid: {i: [0, 1]}}\n")
    code, doc = local("sweep", "sweep.yaml")
    assert code == 0 and doc["scheduler"] == "local" and doc["arrays"] == 1
    run = Path(doc["run_dir"])
    job = json.loads((run / "job.json").read_text())
    assert job["scheduler"] == "local" and job["kind"] == "sweep"
    # an aware time, not local clock
    assert datetime.fromisoformat(job["submitted_at"]).utcoffset() is not None
    deadline = time.monotonic() + 60
    while not local("status", doc["run_id"])[1]["runs"][0]["finished"]:
        assert time.monotonic() < deadline, "the local sweep did not finish in 60 s"
        time.sleep(0.2)
    code, retry = local("sweep", "--retry-failed", doc["run_id"])
    assert code == 0 and retry["retried"] == [1] and retry["states"] == {"COMPLETED": 1, "FAILED": 1}
    assert json.loads((run / "job.json").read_text())["chunks"][1]["indices"] == [1]
    assert cluster.calls() == []  # no Slurm command was asked
    deadline = time.monotonic() + 60
    while not local("status", doc["run_id"])[1]["runs"][0]["finished"]:
        assert time.monotonic() < deadline, "the retried task did not finish in 60 s"
        time.sleep(0.2)


def test_retry_of_a_sweep_whose_submission_directory_is_gone_is_refused(cluster, hpcx, tmp_path):
    code, out, _ = hpcx("--json", "sweep", write_spec(2))
    run = Path(json.loads(out)["run_dir"])
    cluster.set("sacct", sacct({"100_0": "FAILED", "100_1": "COMPLETED"}))
    os.chdir(tmp_path)
    (tmp_path / "work" / "sweep.yaml").unlink()
    (tmp_path / "work").rmdir()
    code, _, err = hpcx("sweep", "--retry-failed", run.name)
    assert (code, err) == (
        2,
        f"hpcx: error: run {run.name} was submitted from {tmp_path / 'work'}, which no longer "
        "exists; recreate that directory (the job runs there), or submit anew\n",
    )
    assert len(cluster.sbatch()) == 1  # only the sweep itself


def test_every_array_runs_the_runs_own_script_rendered_for_it(cluster, hpcx):
    cluster.set("config", config(max_array=4))
    code, out, err = hpcx("--json", "sweep", write_spec(6))
    assert code == 0, err
    doc = json.loads(out)
    run = Path(doc["run_dir"])
    script = run / "job.sbatch"
    assert cluster.scripts() == [str(script), str(script)]
    # sbatch hands the job the run's id and directory (a site template need not export them itself)
    assert all(f" run={doc['run_id']} dir={run} " in line for line in cluster.calls())
    text = script.read_text()
    for line in (
        f"export HPCX_RUN_ID={doc['run_id']}\n",
        f"export HPCX_RUN_DIR={run}\n",
        f"#SBATCH --chdir={Path.cwd()}\n",
    ):
        assert line in text
    umask = os.umask(0)
    os.umask(umask)
    assert script.stat().st_mode & 0o777 == 0o755 & ~umask
    template = json.loads((run / "manifest.json").read_text())["template"]
    assert Path(template["path"]).name == "serial.sbatch.j2"
    assert template["sha256"] == hashlib.sha256(Path(template["path"]).read_bytes()).hexdigest()
    assert (run / "sweep.yaml").read_text().splitlines()[0] == "name: scan"  # the spec's own order
    cluster.set("sacct", sacct({f"{cluster.job_ids()[0]}_1": "FAILED"}))
    job = json.loads((run / "job.json").read_text())
    (run / "job.json").write_text(json.dumps({**job, "submitted_at": "2026-01-01T00:00:00+00:00"}))
    code, _, err = hpcx("sweep", "--retry-failed", doc["run_id"])
    assert code == 0, err
    assert cluster.scripts()[-1] == str(script)
    assert json.loads((run / "job.json").read_text())["submitted_at"] == "2026-01-01T00:00:00+00:00"


def test_the_sites_allowed_variables_reach_sbatch_and_no_others(cluster, hpcx, tmp_path, monkeypatch):
    site = tmp_path / "site.yaml"
    site.write_text(TESTBED_SITE.read_text() + "\nallow_env: [SBATCH_RESERVATION]\n")
    monkeypatch.setenv("SBATCH_RESERVATION", "maint")
    monkeypatch.setenv("SBATCH_PARTITION", "gpu")  # would move the job: scrubbed
    code, out, err = hpcx("--site", str(site), "--json", "sweep", write_spec(2))
    assert code == 0, err
    cluster.set("sacct", sacct({"100_0": "FAILED", "100_1": "COMPLETED"}))
    code, _, err = hpcx("--site", str(site), "sweep", "--retry-failed", json.loads(out)["run_id"])
    assert code == 0, err
    sent = [line.partition(" | ")[2] for line in cluster.calls() if line.startswith("sbatch ")]
    assert len(sent) == 2 and all(" res=maint part= " in line for line in sent)


def test_a_large_sweep_reports_its_progress_while_writing_the_task_table(cluster):
    from hpcx.site import load_site
    from hpcx.submit.sweep_submit import load_spec, prepare, submit_sweep

    spec, doc = load_spec(Path(write_spec(2500)))
    ps = prepare(spec, doc, load_site(str(TESTBED_SITE)), None)
    done = []
    result = submit_sweep(ps, Path.cwd(), Path(os.environ["HPCX_RUNS"]), done.append)
    assert done == [1000, 1000] and result["tasks"] == 2500 and result["arrays"] == 3


def test_the_users_defaults_and_the_specs_kind_shape_the_sweeps_job(cluster, hpcx, tmp_path, monkeypatch):
    config_file = tmp_path / "config.yaml"
    config_file.write_text("defaults: {account: useracct}\n")
    monkeypatch.setenv("HPCX_CONFIG", str(config_file))
    code, out, err = hpcx("--json", "sweep", write_spec(2, "kind: mpi\n"))
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    assert "#SBATCH --account=useracct\n" in (run / "job.sbatch").read_text()
    assert Path(json.loads((run / "manifest.json").read_text())["template"]["path"]).name == "mpi.sbatch.j2"
