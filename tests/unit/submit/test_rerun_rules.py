"""`hpcx rerun` without a cluster: the request it rebuilds from a run's manifest (the script it would submit,
what it says it cannot restore), the refusals, and the differences it warns about. Manifests are written as
hpcx.runs.provenance writes them (tests/local/test_rerun.py runs the whole command on the local backend)."""

from __future__ import annotations

import json
import os
import platform
import stat
from pathlib import Path

import pytest

from hpcx import __version__
from hpcx.errors import RejectedError, UsageError
from hpcx.fsutil import atomic_write, atomic_write_json
from hpcx.runs import Run, create_run
from hpcx.site import load_site
from hpcx.submit.rerun import differences, like_request, plan
from hpcx.submit.submission import render_script

# The local backend's site, with a resource an admin named: a rerun needs no cluster.
SITE = """version: 1
name: here
clusters:
  here:
    scheduler: local
    partitions:
      local: {max_time: UNLIMITED, max_nodes: 1, cpus_per_node: 64, launcher: mpirun}
    launchers: {mpirun: {type: mpirun}}
resources:
  constraint: {flag: --constraint, choices: [a100, v100]}
"""


@pytest.fixture
def site(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    return load_site(str(path))


def _manifest(workdir: Path, **changes) -> dict:
    """A job's manifest as `hpcx submit serial -p local -t 7 --mem 2G --set x='a b' -- python train.py` records
    it."""
    doc = {
        "kind": {"source": "cli", "value": "serial"},
        "command": ["python", "train.py"],
        "variables": {"x": "a b"},
        "workdir": str(workdir),
        "resources": {
            "partition": {"source": "cli", "value": "local"},
            "time_min": {"source": "cli", "value": 7},
            "mem_mb": {"source": "cli", "value": 2048},
            "nodes": {"source": "default", "value": 1},
            "account": {"source": "default", "value": None},
            "name": {"source": "default", "value": "python"},
        },
        "directives": [],
        "sbatch_args": [],
        "inputs": [],
        "profile": {"source": "default", "value": False},
    }
    doc.update(changes)
    return doc


def _run(root: Path, manifest: dict) -> Run:
    run = create_run(root)
    atomic_write_json(run.dir / "manifest.json", manifest)
    return Run(run.id, run.dir)  # read afresh, as a later command does


def _script(p, tmp_path) -> str:
    return render_script(p.prep, run_id="r", run_dir=tmp_path / "r", workdir=p.workdir).text


# --- the request, rebuilt ----------------------------------------------------------------------------------


def test_a_job_is_rerun_with_its_resources_variables_command_and_directory(runs_root, tmp_path, site):
    run = _run(runs_root, _manifest(tmp_path))
    p = plan(run, site, None, runs_root)
    assert p.sweep is None and p.lost == [] and p.workdir == tmp_path
    spec = p.prep.spec
    assert (spec.kind, spec.command, spec.variables) == ("serial", ("python", "train.py"), {"x": "a b"})
    assert (spec.resources.partition, spec.resources.time_min, spec.resources.mem_mb) == ("local", 7, 2048)
    script = _script(p, tmp_path)
    assert "#SBATCH --time=00:07:00\n" in script and "#SBATCH --mem=2048M\n" in script
    assert "#SBATCH --partition=local\n" in script and "#SBATCH --job-name=python\n" in script


def test_named_resources_array_inputs_and_profile_come_back(runs_root, tmp_path, site):
    data = tmp_path / "train.csv"
    data.write_text("a\n")
    run = _run(
        runs_root,
        _manifest(
            tmp_path,
            directives=[["--constraint", "v100"]],
            sbatch_args=["--parsable", "--array=0-3%2"],
            inputs=[{"path": str(data), "size_bytes": 2}, "not an entry", {"size_bytes": 1}],
            profile={"source": "cli", "value": True},
        ),
    )
    p = plan(run, site, None, runs_root)
    assert p.lost == [] and p.prep.profile is True and p.prep.inputs == (str(data),)
    assert p.prep.array is not None and p.prep.array.text == "0-3%2"
    script = _script(p, tmp_path)
    assert "#SBATCH --constraint=v100\n" in script and "#SBATCH --array=0-3%2\n" in script


def test_without_an_array_or_a_profile_choice_none_is_added(runs_root, tmp_path, site):
    manifest = _manifest(tmp_path, sbatch_args=["--parsable"])
    del manifest["profile"]
    p = plan(_run(runs_root, manifest), site, None, runs_root)
    assert p.prep.array is None and "--array" not in _script(p, tmp_path)
    assert p.prep.profile is False and p.prep.sources.get("profile") != "cli"
    request, _ = like_request(_run(runs_root, _manifest(tmp_path, profile={"value": False})), site, runs_root)
    assert request.array is None


def test_a_recorded_no_profile_is_given_again(runs_root, tmp_path, site):
    run = _run(runs_root, _manifest(tmp_path, profile={"source": "cli", "value": False}))
    p = plan(run, site, None, runs_root)
    assert p.prep.profile is False and p.prep.sources["profile"] == "cli"


def test_what_cannot_be_given_again_is_named(runs_root, tmp_path, site):
    run = _run(
        runs_root,
        _manifest(
            tmp_path,
            directives=[
                ["--dependency", "afterany:123"],
                ["--reservation", "maint"],
                ["--constraint", "a100"],
                ["--burst", "x"],
                ["lonely"],
            ],
        ),
    )
    p = plan(run, site, None, runs_root)
    assert p.lost == [f"--burst=x is not restored: site {site.name} names no resource with that flag now"]
    script = _script(p, tmp_path)
    # sbatch's own options come again as they were passed on: the user's -d, --reservation, -C
    for line in ("--dependency=afterany:123", "--reservation=maint", "--constraint=a100"):
        assert f"#SBATCH {line}\n" in script


def _finished(runs_root: Path, tmp_path: Path, job_id: str, exit_code: int) -> Run:
    """A run whose job the local backend ran to ``exit_code``."""
    run = _run(runs_root, _manifest(tmp_path))
    atomic_write_json(run.dir / "job.json", {"job_id": job_id, "scheduler": "local"})
    atomic_write(run.dir / "logs" / f"{job_id}.exit", f"{exit_code}\n")
    return run


def test_an_afterok_dependency_on_a_run_that_succeeded_needs_no_wait(runs_root, tmp_path, site):
    _finished(runs_root, tmp_path, "4242", 0)
    run = _run(runs_root, _manifest(tmp_path, directives=[["--dependency", "afterok:4242:"]]))
    request, lost = like_request(run, site, runs_root)
    assert lost == [] and request.after == ()


def test_an_afterok_dependency_on_a_run_that_failed_since_is_refused_naming_both(runs_root, tmp_path, site):
    _finished(runs_root, tmp_path, "4343", 1)
    _finished(runs_root, tmp_path, "4444", 0)
    run = _run(runs_root, _manifest(tmp_path, directives=[["--dependency", "afterok:4444:4343"]]))
    with pytest.raises(RejectedError) as err:
        plan(run, site, None, runs_root)
    assert err.value.message.startswith(f"run {run.id} was submitted to wait for job(s) 4444, 4343; --after ")
    assert "already ended FAILED, exit code 1, so a job after it would never start" in err.value.message
    assert err.value.hint == "run it again (`hpcx rerun`) and wait for the new run, or submit without --after"


def test_afterok_dependencies_on_runs_still_running_are_waited_for_again(runs_root, tmp_path, site):
    ids = []
    for pid in (os.getpid(), os.getppid()):  # the local backend's job: alive while its process is
        running = _run(runs_root, _manifest(tmp_path))
        ids.append(f"local-{pid}")
        atomic_write_json(running.dir / "job.json", {"job_id": ids[-1], "scheduler": "local"})
    directives = [["--dependency", f"afterok:{ids[0]}"], ["--dependency", f"afterok:{ids[1]}"]]
    request, lost = like_request(_run(runs_root, _manifest(tmp_path, directives=directives)), site, runs_root)
    assert lost == [] and request.after == tuple(ids)


def test_an_own_script_is_given_again_with_only_what_was_given_beside_it(runs_root, tmp_path, site):
    resources = {
        "time_min": {"source": "script", "value": 5},  # from the script's #SBATCH lines: they come again
        "mem_mb": {"source": "cli", "value": 1024},  # given beside the script: given again
        "account": {"source": "env", "value": "envacct"},  # HPCX_ACCOUNT
        "qos": {"source": "user", "value": "userqos"},  # the user's config
        "partition": {"source": "site", "value": "local"},  # the site's default
        "cpus_per_task": {"source": "auto", "value": 2},  # decided by hpcx
        "nodes": {"source": "default", "value": 1},
        "name": {"source": "script", "value": "mine"},
    }
    run = _run(runs_root, _manifest(tmp_path, kind={"source": "cli", "value": "script"}, resources=resources))
    atomic_write(run.dir / "job.sbatch", "#!/bin/bash\n#SBATCH --time=5\n#SBATCH --job-name=mine\necho hi\n")
    request, lost = like_request(run, site, runs_root)
    assert (request.kind, request.script, lost) == (None, run.dir / "job.sbatch", [])
    assert request.options == {
        "mem": "1024",
        "account": "envacct",
        "qos": "userqos",
        "partition": "local",
        "cpus_per_task": "2",
        "name": "mine",
    }


def test_a_template_job_gives_every_recorded_option_again(runs_root, tmp_path, site):
    request, _ = like_request(_run(runs_root, _manifest(tmp_path)), site, runs_root)
    assert request.kind == "serial" and request.script is None
    assert request.options == {
        "partition": "local",
        "time": "7",
        "mem": "2048",
        "name": "python",
    }  # the builtin defaults (1 node, no account) are decided again, not typed again
    assert request.workdir == tmp_path and request.command == ("python", "train.py")


def test_a_manifest_of_an_older_hpcx_without_these_parts_gives_them_empty(runs_root, tmp_path, site):
    request, lost = like_request(_run(runs_root, {"workdir": str(tmp_path)}), site, runs_root)
    assert (request.kind, request.options, request.variables, request.command) == (None, {}, {}, ())
    assert (request.named, request.after, request.array, request.inputs, lost) == ({}, (), None, (), [])


# --- refusals ----------------------------------------------------------------------------------------------


def test_a_run_without_a_manifest_cannot_be_rerun(runs_root, site):
    run = create_run(runs_root)
    with pytest.raises(UsageError) as err:
        plan(run, site, None, runs_root)
    assert err.value.message == f"run {run.id} has no manifest.json"
    assert err.value.hint == "only runs submitted by hpcx can be rerun"


def test_a_run_whose_directory_is_gone_is_refused_naming_it(runs_root, tmp_path, site):
    gone = tmp_path / "gone"
    run = _run(runs_root, _manifest(gone))
    with pytest.raises(UsageError) as err:
        plan(run, site, None, runs_root)
    assert err.value.message == f"run {run.id} was submitted from {gone}, which no longer exists"
    assert err.value.hint == "recreate that directory (the job runs there), or submit anew"


def test_failed_is_only_for_sweeps(runs_root, tmp_path, site):
    run = _run(runs_root, _manifest(tmp_path))
    with pytest.raises(UsageError) as err:
        plan(run, site, None, runs_root, failed=True)
    assert err.value.message == f"run {run.id} is not a sweep: --failed reruns a sweep's failed tasks"
    assert err.value.hint == f"hpcx rerun {run.id}"


def test_a_sweep_without_its_spec_cannot_be_rerun(runs_root, tmp_path, site):
    run = _run(runs_root, _manifest(tmp_path, sweep={"max_parallel": None}))
    with pytest.raises(UsageError) as err:
        plan(run, site, None, runs_root)
    assert err.value.message == f"sweep {run.id} has no sweep.yaml"
    assert err.value.hint == "only sweeps submitted by hpcx can be rerun"


# --- a sweep -----------------------------------------------------------------------------------------------

SPEC = "name: scan\nkind: serial\ncommand: [echo, '{x}']\nparameters:\n  grid: {x: [1, 2, 3]}\n"


def _sweep(runs_root: Path, tmp_path: Path, exit_codes: list[int], max_parallel=None) -> Run:
    """A sweep of x = 1, 2, 3 that the local backend ran as one array, each task ending with its exit code."""
    run = _run(runs_root, _manifest(tmp_path, sweep={"max_parallel": max_parallel}))
    atomic_write(run.dir / "sweep.yaml", SPEC)
    rows = [{"task": i, "name": f"x={i + 1}", "params": {"x": i + 1}, "seed": 100 + i} for i in range(3)]
    atomic_write(run.dir / "tasks.jsonl", "".join(json.dumps(r) + "\n" for r in rows) + "\n")
    atomic_write_json(
        run.dir / "job.json",
        {"scheduler": "local", "job_id": "77", "chunks": [{"job_id": "77", "offset": 0, "count": 3}]},
    )
    atomic_write(run.dir / "logs" / "77.array", "0 1 2\n")
    for i, code in enumerate(exit_codes):
        atomic_write(run.dir / "logs" / f"77_{i}.exit", f"{code}\n")
    atomic_write(run.dir / "logs" / "77.exit", "0\n")
    return Run(run.id, run.dir)


def test_a_sweep_is_rerun_as_the_same_tasks(runs_root, tmp_path, site):
    p = plan(_sweep(runs_root, tmp_path, [0, 0, 0]), site, None, runs_root)
    assert p.prep is None and p.workdir == tmp_path
    assert [(t.id, t.name, t.params, t.seed) for t in p.sweep.tasks] == [
        (0, "x=1", {"x": 1}, 100),
        (1, "x=2", {"x": 2}, 101),
        (2, "x=3", {"x": 3}, 102),
    ]
    assert [(c.offset, c.count) for c in p.sweep.chunks] == [(0, 3)]


def test_failed_reruns_only_the_failed_tasks_numbered_from_0(runs_root, tmp_path, site):
    p = plan(_sweep(runs_root, tmp_path, [0, 1, 137]), site, None, runs_root, failed=True)
    assert [(t.id, t.name, t.params, t.seed) for t in p.sweep.tasks] == [
        (0, "x=2", {"x": 2}, 101),
        (1, "x=3", {"x": 3}, 102),
    ]
    assert [(c.offset, c.count) for c in p.sweep.chunks] == [(0, 2)]


def test_failed_on_a_sweep_that_all_succeeded_says_so(runs_root, tmp_path, site):
    run = _sweep(runs_root, tmp_path, [0, 0, 0])
    with pytest.raises(UsageError) as err:
        plan(run, site, None, runs_root, failed=True)
    assert err.value.message == f"sweep {run.id} has no failed tasks"
    assert err.value.hint == f"hpcx rerun {run.id} reruns all of it"


def test_a_sweep_is_resolved_again_with_the_users_defaults_and_its_profile_choice(runs_root, tmp_path, site):
    from hpcx.site.config import UserConfig

    run = _sweep(runs_root, tmp_path, [0, 0, 0])
    manifest = {**run.manifest, "profile": {"source": "cli", "value": True}}
    atomic_write_json(run.dir / "manifest.json", manifest)
    user = UserConfig(None, defaults={"account": "useracct"})
    p = plan(Run(run.id, run.dir), site, user, runs_root)
    assert p.sweep.prep.spec.resources.account == "useracct" and p.sweep.prep.profile is True
    assert p.sweep.doc["parameters"] == {"grid": {"x": [1, 2, 3]}}  # the spec the new run keeps a copy of
    assert p.sweep.prep.spec.command == ("echo", "{x}")


def test_a_sweep_keeps_its_max_parallel(runs_root, tmp_path, site):
    p = plan(_sweep(runs_root, tmp_path, [0, 0, 0], max_parallel=2), site, None, runs_root)
    assert p.sweep.max_parallel == 2


# --- what differs now ----------------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "project"
    path.mkdir()
    _git(path, "init", "-q")
    (path / "train.py").write_text("print('v1')\n")
    _git(path, "add", "train.py")
    _git(path, "commit", "-q", "-m", "v1")
    return path


def _differences(runs_root, workdir, site, *, diff: bytes = b"", untracked=None, **manifest) -> list[str]:
    """What `hpcx rerun` warns about for a run submitted from ``workdir`` at its HEAD, whose git.diff held
    ``diff`` and whose untracked files were ``untracked`` (a list of names)."""
    git = manifest.pop("git", None)
    if git is None:
        git = {"commit": _git(workdir, "rev-parse", "HEAD"), "diff": {"truncated": False}}
    m = _manifest(
        workdir,
        git=git,
        site={"sha256": site.sha256, "source": site.source},
        versions={"hpcx": __version__, "python": platform.python_version()},
        **manifest,
    )
    run = _run(runs_root, m)
    atomic_write(run.dir / "git.diff", diff)
    if untracked is not None:
        git["untracked"] = {"count": len(untracked), "truncated": False}
        atomic_write_json(run.dir / "manifest.json", m)
        atomic_write(run.dir / "git-untracked.txt", "".join(f"{n}\n" for n in untracked))
    return differences(Run(run.id, run.dir), site)


@pytest.fixture
def no_slurm_no_modules(monkeypatch):
    for name in ("LOADEDMODULES", "MODULESHOME", "MODULES_CMD", "LMOD_CMD", "LMOD_VERSION"):
        monkeypatch.delenv(name, raising=False)


def test_the_same_tree_site_and_versions_have_nothing_to_say(runs_root, repo, site, no_slurm_no_modules):
    assert _differences(runs_root, repo, site) == []


def test_a_changed_site_file_and_other_versions_are_named(runs_root, repo, site, no_slurm_no_modules):
    run = _run(
        runs_root,
        _manifest(
            repo,
            site={"sha256": "0" * 64, "source": "/etc/hpcx/old.yaml"},
            versions={"hpcx": "0.0.1", "python": "2.7.18"},
        ),
    )
    assert differences(run, site) == [
        f"the site file changed since the run (/etc/hpcx/old.yaml -> {site.source})",
        f"hpcx is {__version__}, the run used 0.0.1",
        f"Python is {platform.python_version()}, the run used 2.7.18",
    ]


def test_an_edited_tracked_file_is_an_uncommitted_change_the_run_did_not_have(
    runs_root, repo, site, no_slurm_no_modules
):
    (repo / "train.py").write_text("print('v2')\n")
    assert _differences(runs_root, repo, site) == [
        "the working tree has uncommitted changes to tracked files that the run did not have (see `git diff HEAD`)"
    ]


def test_changes_the_run_had_are_told_apart_from_other_changes(runs_root, repo, site, no_slurm_no_modules):
    (repo / "train.py").write_text("print('v2')\n")
    now = _git(repo, "diff", "HEAD").encode() + b"\n"
    assert _differences(runs_root, repo, site, diff=now) == []  # the same uncommitted change as the run's
    (repo / "train.py").write_text("print('v3')\n")
    (warning,) = _differences(runs_root, repo, site, diff=now)
    assert warning.startswith("the working tree's uncommitted changes differ from the run's (")
    assert warning.endswith("/git.diff; compare with `git diff HEAD`)")
    (repo / "train.py").write_text("print('v1')\n")
    (warning,) = _differences(runs_root, repo, site, diff=now)
    assert warning.startswith("the run had uncommitted changes the working tree lacks: `git apply ")
    assert warning.endswith("/git.diff` restores them")


def test_another_commit_is_named_with_the_runs(runs_root, repo, site, no_slurm_no_modules):
    old = _git(repo, "rev-parse", "HEAD")
    (repo / "train.py").write_text("print('v2')\n")
    _git(repo, "commit", "-q", "-am", "v2")
    new = _git(repo, "rev-parse", "HEAD")
    git = {"commit": old, "diff": {"truncated": False}}
    assert _differences(runs_root, repo, site, git=dict(git)) == [
        f"the code is at commit {new[:12]}, the run used {old[:12]}: check it out to reproduce exactly"
    ]
    with_diff = _differences(runs_root, repo, site, git=dict(git), diff=b"diff --git a/x b/x\n")
    assert len(with_diff) == 2 and with_diff[1].startswith("the run had uncommitted changes (")
    assert with_diff[1].endswith("git.diff); they are not re-applied")


def test_a_diff_too_large_to_keep_cannot_be_compared(runs_root, repo, site, no_slurm_no_modules):
    git = {"commit": _git(repo, "rev-parse", "HEAD"), "diff": {"truncated": True}}
    (warning,) = _differences(runs_root, repo, site, git=git, diff=b"cut")
    assert warning.startswith("the run's uncommitted changes were too large to keep whole (")
    assert warning.endswith("hpcx cannot tell whether the working tree matches them")


def test_no_git_then_no_word_about_it_and_no_repository_now_is_said(
    runs_root, tmp_path, repo, site, no_slurm_no_modules
):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert _differences(runs_root, plain, site, git={}) == []
    commit = _git(repo, "rev-parse", "HEAD")
    assert _differences(runs_root, plain, site, git={"commit": commit}) == [
        f"{plain} is no longer a git repository hpcx can read: the run used commit {commit[:12]}"
    ]


def test_untracked_files_are_compared_by_name(runs_root, repo, site, no_slurm_no_modules):
    (repo / "notes.txt").write_text("x\n")
    assert _differences(runs_root, repo, site, untracked=["notes.txt"]) == []
    (warning,) = _differences(runs_root, repo, site, untracked=[])
    assert warning.startswith(
        "the untracked files differ from the run's (0 then, 1 now; the run's are listed in "
    )
    assert warning.endswith("git-untracked.txt, their contents were not kept)")


def test_untracked_files_are_not_compared_without_a_whole_listing(runs_root, repo, site, no_slurm_no_modules):
    """Cut at its cap, not counted (an older hpcx), or its listing file gone: nothing to compare with."""
    (repo / "notes.txt").write_text("x\n")
    commit = _git(repo, "rev-parse", "HEAD")
    for untracked, listing in (
        ({"count": 0, "truncated": True}, ""),
        ({"truncated": False}, ""),
        ({"count": 0, "truncated": False}, None),
    ):
        run = _run(
            runs_root,
            _manifest(repo, git={"commit": commit, "diff": {"truncated": False}, "untracked": untracked}),
        )
        atomic_write(run.dir / "git.diff", b"")
        if listing is not None:
            atomic_write(run.dir / "git-untracked.txt", listing)
        assert differences(run, site) == []


def test_an_untracked_listing_that_is_not_utf8_is_still_compared(runs_root, repo, site, no_slurm_no_modules):
    (repo / "notes.txt").write_text("x\n")
    commit = _git(repo, "rev-parse", "HEAD")
    run = _run(
        runs_root,
        _manifest(
            repo,
            git={
                "commit": commit,
                "diff": {"truncated": False},
                "untracked": {"count": 1, "truncated": False},
            },
        ),
    )
    atomic_write(run.dir / "git.diff", b"")
    atomic_write(run.dir / "git-untracked.txt", b"caf\xe9.txt\n")
    (warning,) = differences(run, site)
    assert warning.startswith("the untracked files differ from the run's (1 then, 1 now;")


def test_a_run_without_a_kept_diff_had_no_uncommitted_changes(runs_root, repo, site, no_slurm_no_modules):
    run = _run(runs_root, _manifest(repo, git={"commit": _git(repo, "rev-parse", "HEAD")}))
    assert differences(run, site) == []  # no git.diff in the run directory: a clean tree then, as now


def test_a_manifest_without_a_workdir_is_compared_with_the_current_directory(
    runs_root, repo, site, monkeypatch, no_slurm_no_modules
):
    from hpcx.runs.provenance import fingerprint

    (repo / "data.csv").write_text("1\n")
    manifest = _manifest(
        repo,
        git={"commit": _git(repo, "rev-parse", "HEAD")},
        inputs=[{"path": "data.csv", **fingerprint(repo / "data.csv")}],
    )
    del manifest["workdir"]
    run = _run(runs_root, manifest)
    monkeypatch.chdir(repo)
    assert differences(run, site) == []  # the repository and the input, found from where hpcx runs
    (repo / "data.csv").write_text("2\n")
    assert differences(run, site) == ["input data.csv changed since the run (its fingerprint differs)"]


def test_a_relative_input_is_found_in_the_runs_directory(
    runs_root, tmp_path, site, monkeypatch, no_slurm_no_modules
):
    from hpcx.runs.provenance import fingerprint

    (tmp_path / "data.csv").write_text("1\n")
    inputs = [{"path": "data.csv", **fingerprint(tmp_path / "data.csv")}]
    run = _run(runs_root, _manifest(tmp_path, inputs=inputs))
    monkeypatch.chdir(runs_root)
    assert differences(run, site) == []


def test_changed_and_missing_inputs_are_named(runs_root, tmp_path, site, no_slurm_no_modules):
    from hpcx.runs.provenance import fingerprint

    same, changed, gone = (tmp_path / n for n in ("same.csv", "changed.csv", "gone.csv"))
    for path in (same, changed, gone):
        path.write_text("a,b\n1,2\n")
    inputs = ["junk", {"size": 1}] + [{"path": str(p), **fingerprint(p)} for p in (same, gone, changed)]
    changed.write_text("a,b\n1,3\n")
    gone.unlink()
    run = _run(runs_root, _manifest(tmp_path, inputs=inputs))
    assert differences(run, site) == [
        f"input {gone} is gone",
        f"input {changed} changed since the run (its fingerprint differs)",
    ]


@pytest.mark.parametrize("then, now", [("file", "fifo"), ("fifo", "file"), ("file", "directory")])
def test_an_input_that_became_another_kind_of_file_changed(
    runs_root, tmp_path, site, then, now, no_slurm_no_modules
):
    from hpcx.runs.provenance import fingerprint

    path = tmp_path / "input"

    def make(kind):
        if kind == "file":
            path.write_text("ab")
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.mkdir()
            (path / "part").write_text("ab")  # the same size in all

    make(then)
    run = _run(runs_root, _manifest(tmp_path, inputs=[{"path": str(path), **fingerprint(path)}]))
    path.unlink()
    make(now)
    assert differences(run, site) == [f"input {path} changed since the run (its fingerprint differs)"]


def test_a_directory_input_with_a_new_file_changed(runs_root, tmp_path, site, no_slurm_no_modules):
    from hpcx.runs.provenance import fingerprint

    data = tmp_path / "data"
    data.mkdir()
    (data / "a").write_text("1")
    run = _run(runs_root, _manifest(tmp_path, inputs=[{"path": str(data), **fingerprint(data)}]))
    assert differences(run, site) == []
    (data / "b").write_text("")  # the same total size, another listing
    assert differences(run, site) == [f"input {data} changed since the run (its fingerprint differs)"]


def test_a_manifest_without_inputs_modules_or_slurm_has_nothing_to_compare(
    runs_root, tmp_path, site, no_slurm_no_modules
):
    run = _run(runs_root, {"workdir": str(tmp_path)})
    assert differences(run, site) == []


def test_loaded_modules_that_differ_are_named(runs_root, tmp_path, site, monkeypatch, no_slurm_no_modules):
    run = _run(runs_root, _manifest(tmp_path, modules={"loaded": ["gcc/12", "openmpi/4.1"]}))
    assert differences(run, site) == ["loaded modules differ: the run had gcc/12, openmpi/4.1, now none"]
    monkeypatch.setenv("LOADEDMODULES", "openmpi/4.1:gcc/12")
    assert differences(run, site) == []  # the same modules, in another order
    monkeypatch.setenv("LOADEDMODULES", "gcc/13:cuda/12")
    run = _run(runs_root, _manifest(tmp_path, modules={"loaded": []}))
    assert differences(run, site) == ["loaded modules differ: the run had none, now gcc/13, cuda/12"]


def _fake_sbatch(tmp_path: Path, monkeypatch, version: str | None) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    sbatch = bin_dir / "sbatch"
    script = f'[ "$*" = --version ] && echo "slurm {version}"' if version else "exit 1"
    sbatch.write_text(f"#!/bin/sh\n{script}\n")
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_another_slurm_version_is_named(runs_root, tmp_path, site, monkeypatch, no_slurm_no_modules):
    run = _run(runs_root, _manifest(tmp_path, slurm={"version": "23.02.1"}))
    _fake_sbatch(tmp_path, monkeypatch, "23.02.1")
    assert differences(run, site) == []
    _fake_sbatch(tmp_path, monkeypatch, "24.05.0")
    assert differences(run, site) == ["Slurm is 24.05.0, the run used 23.02.1"]
    _fake_sbatch(tmp_path, monkeypatch, None)
    assert differences(run, site) == ["Slurm is not reachable, the run used 23.02.1"]


def test_a_job_is_resolved_again_with_the_users_defaults_for_what_it_did_not_record(
    runs_root, tmp_path, site
):
    from hpcx.site.config import UserConfig

    run = _run(runs_root, _manifest(tmp_path))  # no qos recorded
    p = plan(run, site, UserConfig(None, defaults={"qos": "userqos"}), runs_root)
    assert p.prep.spec.resources.qos == "userqos" and "#SBATCH --qos=userqos\n" in _script(p, tmp_path)


def test_sbatch_forms_of_a_request_come_back_as_they_were_typed(runs_root, tmp_path, site):
    """Issue 29's request model in a manifest: -N MIN-MAX, typed GPUs, per-CPU memory, -n, -C, --exclusive come
    back as options (never as the node count and tasks per node hpcx would otherwise decide); the options passed on
    unchecked come back too, a -d of the user's among them."""
    resources = {
        "partition": {"source": "cli", "value": "local"},
        "time_min": {"source": "cli", "value": 7},
        "nodes": {"source": "cli", "value": 1},
        "nodes_max": {"source": "default", "value": 2},
        "ntasks": {"source": "cli", "value": 4},
        "ntasks_per_node": {"source": "default", "value": 1},
        "gpus": {"source": "cli", "value": 2},
        "gpu_type": {"source": "default", "value": "tesla"},
        "mem_per_cpu_mb": {"source": "env", "value": 1024},
        "constraint": {"source": "cli", "value": "avx2"},
        "exclusive": {"source": "cli", "value": ""},
        "name": {"source": "default", "value": "python"},
    }
    directives = [
        ["--hold", None],
        ["--mail-type", "END"],
        ["--dependency", "singleton"],
        ["--lonely-flag", "x"],
    ]
    request, lost = like_request(
        _run(runs_root, _manifest(tmp_path, resources=resources, directives=directives)), site, runs_root
    )
    assert request.options == {
        "partition": "local",
        "time": "7",
        "nodes": "1-2",
        "ntasks": "4",
        "gpus": "tesla:2",
        "mem_per_cpu": "1024",
        "constraint": "avx2",
        "exclusive": "",
        "name": "python",
        "hold": "True",
        "mail_type": "END",
        "dependency": "singleton",
    }
    assert lost == [f"--lonely-flag=x is not restored: site {site.name} names no resource with that flag now"]


def test_an_own_scripts_rerun_gives_again_only_what_was_given_beside_it(runs_root, tmp_path, site):
    resources = {
        "partition": {"source": "script", "value": "local"},
        "ntasks": {"source": "script", "value": 4},
        "gpus_per_node": {"source": "cli", "value": 1},
        "gpu_type": {"source": "default", "value": "tesla"},
        "nodes": {"source": "script", "value": 1},
        "nodes_max": {"source": "default", "value": 3},
        "name": {"source": "default", "value": "job.sh"},
    }
    manifest = _manifest(tmp_path, resources=resources, kind={"source": "script", "value": "script"})
    request, _ = like_request(_run(runs_root, manifest), site, runs_root)
    assert request.options == {"gpus_per_node": "tesla:1", "name": "job.sh"}


def test_a_dependency_beside_after_comes_back_as_the_users_own(runs_root, tmp_path, site):
    from hpcx.submit.rerun import _passed_on

    assert _passed_on([["--dependency", "afterok:5:6,afterany:7"], ["--hold", None]]) == {
        "dependency": "afterany:7",
        "hold": True,
    }
    assert (
        _passed_on([["--dependency", "afterok:5"], ["--constraint", "a100"]]) == {}
    )  # --after's, -C checked
