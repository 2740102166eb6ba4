"""Reproduce a run from its manifest, and say what cannot be restored."""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcx import __version__
from hpcx.errors import CommandError, RejectedError, UsageError
from hpcx.rundir.layout import GIT_DIFF_FILE, GIT_UNTRACKED_FILE, SCRIPT_FILE, SWEEP_SPEC_FILE, TASK_TABLE
from hpcx.rundir.tasks import read_tasks
from hpcx.runs import Run
from hpcx.site import Site
from hpcx.site.config import UserConfig
from hpcx.submit.after import after_job_ids
from hpcx.submit.request import Prepared, Request, resolve, with_profile
from hpcx.submit.vocabulary import BY_NAME, request_key

if TYPE_CHECKING:
    from hpcx.submit.sweep_submit import PreparedSweep

_OPTION = {
    "time_min": "time",
    "mem_mb": "mem",
    "mem_per_cpu_mb": "mem_per_cpu",
    "mem_per_gpu_mb": "mem_per_gpu",
}


@dataclass
class Plan:
    """What `hpcx rerun` submits: one job (``prep``) or a sweep (``sweep``), and what it could not restore."""

    prep: Prepared | None = None
    sweep: PreparedSweep | None = None
    workdir: Path = field(default_factory=Path.cwd)
    lost: list[str] = field(default_factory=list)  # one sentence per part of the request that is not restored


def plan(run: Run, site: Site, user: UserConfig | None, root: Path, *, failed: bool = False) -> Plan:
    """The same request as ``run``'s, resolved and checked again: a job with the same kind (or its exact
    script), resources, --array, named resources (-r), --set variables, --profile, inputs, command and --after
    (decided again from each upstream run's outcome); a sweep as the same sweep (its task table), or with
    ``failed`` only its tasks that did not succeed."""
    from hpcx.submit.sweep_submit import submission_dir

    submission_dir(run)  # the job runs where it was submitted from: refused when that is gone
    if "sweep" in run.manifest:
        return _sweep_plan(run, site, user, failed)
    if failed:
        raise UsageError(
            f"run {run.id} is not a sweep: --failed reruns a sweep's failed tasks",
            hint=f"hpcx rerun {run.id}",
        )
    request, lost = like_request(run, site, root)
    prep = with_profile(resolve(request, site, user), _profile(run))
    return Plan(prep=prep, workdir=request.workdir, lost=lost)


def plan_with_warnings(
    run: Run, site: Site, user: UserConfig | None, root: Path, *, failed: bool = False
) -> tuple[Plan, list[str]]:
    """:func:`plan`, and what `hpcx rerun` warns about before submitting: what differs now from when ``run``
    was submitted (:func:`differences`), then what of its request could not be restored."""
    todo = plan(run, site, user, root, failed=failed)
    return todo, differences(run, site) + todo.lost


def like_request(run: Run, site: Site, root: Path) -> tuple[Request, list[str]]:
    """The request that made ``run`` (not a sweep), and a sentence for each part of it that cannot be restored."""
    m = _manifest(run)
    kind = m.get("kind", {}).get("value")
    # An own script's #SBATCH lines come again with its copy; only what was given beside it is given again.
    given = ("cli", "env", "user", "site", "auto") if kind == "script" else None
    options = _request_options(m.get("resources", {}), given)
    script = run.dir / SCRIPT_FILE if kind == "script" else None
    named, after, lost = _directives(m.get("directives", []), site)
    options.update(_passed_on(m.get("directives", [])))
    try:
        waits = after_job_ids(root, after) if after else ()
    except RejectedError as exc:  # the upstream has failed since: say that the run waited for it
        raise RejectedError(
            f"run {run.id} was submitted to wait for job(s) {', '.join(after)}; {exc.message}", hint=exc.hint
        ) from exc
    return Request(
        kind=None if script else kind,
        options={k: (str(v) if v is not None else None) for k, v in options.items()},
        variables=dict(m.get("variables", {})),
        command=tuple(m.get("command", [])),
        workdir=Path(m.get("workdir") or Path.cwd()),
        named=named,
        after=waits,
        script=script,
        array=_array(m.get("sbatch_args", [])),
        inputs=tuple(e["path"] for e in m.get("inputs", []) if isinstance(e, dict) and "path" in e),
    ), lost


def _request_options(recorded: dict[str, Any], given: tuple[str, ...] | None) -> dict[str, Any]:
    """The manifest's resolved resources as the request's options again: what was asked (a builtin default is
    decided again, so -n 4 does not come back as a node count), -N MIN-MAX and [TYPE:]N GPUs as written."""
    value = {k: v.get("value") for k, v in recorded.items() if isinstance(v, dict)}
    out: dict[str, Any] = {}
    for key, entry in recorded.items():
        source = entry.get("source") if isinstance(entry, dict) else None
        if key in ("nodes_max", "gpu_type") or source == "default" and key != "name":
            continue
        if given is not None and source not in given and key != "name":
            continue
        v = value[key]
        if key == "nodes" and value.get("nodes_max"):
            v = f"{v}-{value['nodes_max']}"
        elif key in ("gpus", "gpus_per_node", "gpus_per_task") and value.get("gpu_type") and v:
            v = f"{value['gpu_type']}:{v}"
        out[_OPTION.get(key, key)] = v
    return out


def _manifest(run: Run) -> dict[str, Any]:
    if not run.manifest:
        raise UsageError(
            f"run {run.id} has no manifest.json", hint="only runs submitted by hpcx can be rerun"
        )
    return run.manifest


def _profile(run: Run) -> bool | None:
    value = (run.manifest.get("profile") or {}).get("value")
    return bool(value) if value is not None else None


def _array(sbatch_args: list[str]) -> str | None:
    """--array as it was submitted (manifest sbatch_args: sbatch's own options beside the script)."""
    for arg in sbatch_args:
        if arg.startswith("--array="):
            return arg.split("=", 1)[1]
    return None


def _directives(recorded: list[Any], site: Site) -> tuple[dict[str, str], list[str], list[str]]:
    """The manifest's (flag, value) directives as -r NAME=VALUE pairs (through the site's resource flags) and
    --after job ids, with a sentence for each one that cannot be given again."""
    by_flag = {res.flag: name for name, res in site.resources.items()}
    named: dict[str, str] = {}
    after: list[str] = []
    lost: list[str] = []
    for flag, value in (tuple(d) for d in recorded if isinstance(d, (list, tuple)) and len(d) == 2):
        if flag in BY_NAME and not BY_NAME[flag].checked and flag != "--dependency":
            continue  # an sbatch option passed on as written: given again as an option (_passed_on)
        if flag == "--dependency":
            value = str(value).split(",")[0]  # a -d of the user's beside it: given again by _passed_on
            if not value.startswith("afterok:"):
                continue  # the user's own -d: _passed_on
            kind, _, ids = str(value).partition(":")
            if kind == "afterok":  # a JOB_INDEX (one task of a sweep's array) is decided again from its sweep
                after += list(dict.fromkeys(i.split("_")[0] for i in ids.split(":") if i))
            else:
                lost.append(f"the dependency {value} is not restored (hpcx gives only afterok, from --after)")
        elif flag == "--kill-on-invalid-dep":
            continue  # comes with --after, given again with it
        elif flag in by_flag:
            named[by_flag[flag]] = value
        else:
            lost.append(
                f"{flag}={value} is not restored: site {site.name} names no resource with that flag now"
            )
    return named, after, lost


def _passed_on(recorded: list[Any]) -> dict[str, Any]:
    """The sbatch options the run passed on unchecked (--mail-type, --hold, a -d of its own, ...), as options."""
    out: dict[str, Any] = {}
    for flag, value in (tuple(d) for d in recorded if isinstance(d, (list, tuple)) and len(d) == 2):
        option = BY_NAME.get(str(flag))
        if option is None or option.checked:
            continue
        if flag == "--dependency":
            first, _, rest = str(value).partition(",")
            own = (
                rest
                if first.startswith("afterok:") and rest
                else (None if first.startswith("afterok:") else value)
            )
            if own:
                out["dependency"] = own
        else:
            out[request_key(option)] = True if value is None else value
    return out


def _sweep_plan(run: Run, site: Site, user: UserConfig | None, failed: bool) -> Plan:
    """The sweep again from the run's sweep.yaml (command, resources, variables) and its task table (the
    same tasks, names, parameters and seeds; with ``failed``, only the tasks that did not succeed, numbered
    from 0 in the new run)."""
    from hpcx.submit.sweep_submit import FAILED_STATES, load_spec, prepare, task_states
    from hpcx.submit.sweeps import Task, chunks

    m = _manifest(run)
    spec_path = run.dir / SWEEP_SPEC_FILE
    if not spec_path.exists():
        raise UsageError(
            f"sweep {run.id} has no sweep.yaml", hint="only sweeps submitted by hpcx can be rerun"
        )
    spec, doc = load_spec(spec_path)
    record = m.get("sweep") or {}
    ps = prepare(spec, doc, site, user, record.get("max_parallel"))
    ps = dataclasses.replace(ps, prep=with_profile(ps.prep, _profile(run)))
    tasks = [
        Task(int(t["task"]), t["name"], dict(t["params"]), int(t["seed"]))
        for t in read_tasks(run.dir / TASK_TABLE)
    ]
    if failed:
        states = task_states(run)
        tasks = [t for t in tasks if states.get(t.id) in FAILED_STATES]
        if not tasks:
            raise UsageError(
                f"sweep {run.id} has no failed tasks", hint=f"hpcx rerun {run.id} reruns all of it"
            )
        tasks = [dataclasses.replace(t, id=n) for n, t in enumerate(tasks)]
    max_array = max(c.count for c in ps.chunks)
    ps = dataclasses.replace(ps, tasks=tasks, chunks=chunks(len(tasks), max_array))
    return Plan(sweep=ps, workdir=Path(m.get("workdir") or Path.cwd()))


def differences(run: Run, site: Site) -> list[str]:
    """What differs now from when ``run`` was submitted, one sentence each (empty: nothing we can see)."""
    m = run.manifest
    out = []
    old_site = m.get("site", {})
    if old_site.get("sha256") and old_site["sha256"] != site.sha256:
        out.append(f"the site file changed since the run ({old_site.get('source')} -> {site.source})")
    out += _git_differences(run, Path(m.get("workdir") or "."))
    versions = m.get("versions", {})
    if versions.get("hpcx") and versions["hpcx"] != __version__:
        out.append(f"hpcx is {__version__}, the run used {versions['hpcx']}")
    if versions.get("python") and versions["python"] != platform.python_version():
        out.append(f"Python is {platform.python_version()}, the run used {versions['python']}")
    out += _environment_differences(m)
    out += _input_differences(m, Path(m.get("workdir") or "."))
    return out


def _git_differences(run: Run, workdir: Path) -> list[str]:
    """The working tree against the run's: its commit, its uncommitted changes to tracked files (the run's
    git.diff against `git diff HEAD` now) and its untracked files (names only: their contents are not kept)."""
    from hpcx.runs.provenance import working_tree

    old = run.manifest.get("git") or {}
    if not old.get("commit"):
        return []
    now = working_tree(workdir)
    if now is None:
        return [
            f"{workdir} is no longer a git repository hpcx can read: the run used commit {old['commit'][:12]}"
        ]
    diff_file = run.dir / GIT_DIFF_FILE
    old_diff = diff_file.read_bytes() if diff_file.exists() else b""
    out = []
    if now["commit"] != old["commit"]:
        out.append(
            f"the code is at commit {now['commit'][:12]}, the run used {old['commit'][:12]}: "
            f"check it out to reproduce exactly"
        )
        if old_diff:
            out.append(f"the run had uncommitted changes ({diff_file}); they are not re-applied")
    elif (old.get("diff") or {}).get("truncated"):
        out.append(
            f"the run's uncommitted changes were too large to keep whole ({diff_file} is cut at 1 MiB): "
            "hpcx cannot tell whether the working tree matches them"
        )
    elif now["diff"] != old_diff:
        if not old_diff:
            out.append(
                "the working tree has uncommitted changes to tracked files that the run did not have "
                "(see `git diff HEAD`)"
            )
        elif not now["diff"]:
            out.append(
                f"the run had uncommitted changes the working tree lacks: `git apply {diff_file}` "
                "restores them"
            )
        else:
            out.append(
                f"the working tree's uncommitted changes differ from the run's ({diff_file}; compare with "
                "`git diff HEAD`)"
            )
    out += _untracked_differences(run.dir / GIT_UNTRACKED_FILE, old, now["untracked"])
    return out


def _untracked_differences(listing: Path, old: dict[str, Any], now: list[str]) -> list[str]:
    untracked = old.get("untracked") or {}
    if "count" not in untracked or untracked.get("truncated") or not listing.exists():
        return []
    then = sorted(line for line in listing.read_text(errors="replace").splitlines() if line)
    if then == now:
        return []
    return [
        f"the untracked files differ from the run's ({len(then)} then, {len(now)} now; the run's are listed "
        f"in {listing}, their contents were not kept)"
    ]


def _input_differences(m: dict[str, Any], workdir: Path) -> list[str]:
    from hpcx.runs.provenance import fingerprint, resolve_input

    out = []
    for old in m.get("inputs", []):
        if not isinstance(old, dict) or "path" not in old:
            continue
        try:
            now = fingerprint(resolve_input(workdir, old["path"]))
        except (UsageError, OSError):
            out.append(f"input {old['path']} is gone")
            continue
        keys = ("sha256", "listing_sha256", "size_bytes", "size")
        if any(old.get(k) != now.get(k) for k in keys if k in old or k in now):
            out.append(f"input {old['path']} changed since the run (its fingerprint differs)")
    return out


def _environment_differences(m: dict[str, Any]) -> list[str]:
    """Loaded modules and the Slurm version, as hpcx.runs.provenance.collect recorded them (manifest ``modules``
    and ``slurm``), against now."""
    from hpcx.runs.provenance import loaded_modules
    from hpcx.schedulers import slurm

    out = []
    old_modules = (m.get("modules") or {}).get("loaded")
    now_modules = loaded_modules(os.environ)["loaded"]
    if old_modules is not None and sorted(old_modules) != sorted(now_modules):
        out.append(
            f"loaded modules differ: the run had {', '.join(old_modules) or 'none'}, "
            f"now {', '.join(now_modules) or 'none'}"
        )
    old_slurm = (m.get("slurm") or {}).get("version")
    if old_slurm:
        try:
            now = slurm.version(timeout_s=10)
        except CommandError:
            now = None
        if now != old_slurm:
            out.append(f"Slurm is {now or 'not reachable'}, the run used {old_slurm}")
    return out
