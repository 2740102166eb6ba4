"""What a run came from, recorded on the login node at submission, and what Slurm accounted for it afterwards.

``collect`` reads the git state, the Python packages, the loaded modules, the Slurm version and configuration,
a redacted environment and fingerprints of the declared inputs. It runs on every submission on a slow, shared
login node, so every subprocess has a short timeout, and a part that cannot be read is recorded as
``{"error": ...}`` instead of failing the submission. Only a declared input that does not exist fails it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from hpcx import __version__, _proc
from hpcx.errors import CommandError, UsageError
from hpcx.fsutil import atomic_write, atomic_write_json, read_json
from hpcx.io.info import inspect as inspect_hdf5
from hpcx.io.info import is_hdf5
from hpcx.rundir.layout import ACCOUNTING_FILE, GIT_DIFF_FILE, GIT_UNTRACKED_FILE, REQUIREMENTS_FILE
from hpcx.runs import Run
from hpcx.runs import job_ids as _job_ids  # a sweep's arrays too: each is accounted for
from hpcx.schedulers import slurm
from hpcx.schedulers.base import FINISHED_STATES
from hpcx.site import Site

# Side files in the run directory, next to manifest.json: hpcx.rundir.layout names them, and importers of this
# module (submit.after, tests) still find them here under these names.
GIT_DIFF = GIT_DIFF_FILE
GIT_UNTRACKED = GIT_UNTRACKED_FILE
REQUIREMENTS = REQUIREMENTS_FILE
ACCOUNTING = ACCOUNTING_FILE

DIFF_CAP_BYTES = 1 << 20
UNTRACKED_CAP_LINES = 10_000
FULL_HASH_CAP_BYTES = 256 << 20  # larger input files are hashed at both ends only
EDGE_BYTES = 16 << 20
# What the manifest keeps of each dataset of an HDF5 input, with its filters' names and its fingerprint.
HDF5_SUMMARY_KEYS = ("path", "shape", "dtype", "layout", "chunks")
HDF5_DATASETS_SHOWN = 200  # a file of thousands of datasets lists the first ones (the fingerprint covers all)
GIT_TIMEOUT_S = 10.0
SLURM_TIMEOUT_S = min(slurm.QUERY_TIMEOUT_S, 10.0)

# Anywhere in a variable's name, any case. Over-matching (SSH_AUTH_SOCK, GIT_AUTHOR_NAME) only loses a value.
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
# scheme://userinfo@ : RFC 3986 userinfo holds no / ? #; greedy up to the last @ so a raw @ in a password goes too.
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#]*@")
SLURM_CONFIG_KEYS = (
    "ClusterName",
    "SelectType",
    "SelectTypeParameters",
    "MpiDefault",
    "MaxArraySize",
    "MaxJobCount",
    "EnforcePartLimits",
    "DefMemPerCPU",
    "DefMemPerNode",
    "PreemptMode",
    "SchedulerType",
)
# JobName last: the one free-text field, so a "|" in it cannot shift the others.
ACCOUNTING_FIELDS = (
    "JobID",
    "State",
    "ExitCode",
    "Elapsed",
    "TotalCPU",
    "MaxRSS",
    "AllocTRES",
    "NodeList",
    "Start",
    "End",
    "Reason",
    "JobName",
)


def collect(workdir: Path, run_dir: Path, site: Site, *, inputs: Sequence[str] = ()) -> dict[str, Any]:
    """The provenance part of a run's manifest: keys ``git``, ``python``, ``modules``, ``slurm``,
    ``environment`` and ``inputs``. Writes git.diff, git-untracked.txt and requirements.txt into ``run_dir``
    atomically. Raises UsageError, before writing anything, when a declared input does not exist; any other
    part that cannot be read holds an ``error`` key instead."""
    found = [(given, resolve_input(workdir, given)) for given in inputs]
    git = _in_background(git_state, workdir, run_dir)
    slurm = _in_background(slurm_state) if site.scheduler == "slurm" else None
    doc: dict[str, Any] = {
        "python": _guarded(python_state, run_dir, site),
        "modules": loaded_modules(os.environ),
        "environment": _guarded(redacted_environment, os.environ, site.redact_env),
        "inputs": [{"path": given, "resolved": str(p), **_guarded(fingerprint, p)} for given, p in found],
    }
    doc["git"] = git()
    doc["slurm"] = slurm() if slurm else None
    return doc


def _guarded(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``fn(*args)``, or ``{"error": ...}`` if it fails: provenance that cannot be read never stops a job."""
    try:
        return fn(*args)
    except Exception as exc:  # by design: any failure here is recorded, not raised
        return {"error": strip_url_credentials(str(exc) or type(exc).__name__)}


def _in_background(fn: Callable[..., dict[str, Any]], *args: Any) -> Callable[[], dict[str, Any]]:
    """Start ``_guarded(fn, *args)`` in a thread; the returned function waits for its result."""
    box: dict[str, dict[str, Any]] = {}
    thread = threading.Thread(target=lambda: box.update(result=_guarded(fn, *args)), daemon=True)
    thread.start()

    def result() -> dict[str, Any]:
        thread.join()
        return box.get("result", {"error": "interrupted"})

    return result


# --- git ---------------------------------------------------------------------------------------------------


def _git(args: Sequence[str], cwd: Path, *, check: bool = True) -> _proc.Result:
    # No optional locks: a submission must never block (or be blocked by) the user's own git commands.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    return _proc.run(["git", *args], cwd=cwd, env=env, timeout_s=GIT_TIMEOUT_S, check=check)


def git_state(workdir: Path, run_dir: Path) -> dict[str, Any]:
    """Commit, branch, dirty flag and remote of ``workdir``'s repository, with the diff against HEAD and the
    untracked files written to run_dir (size-capped). ``{"commit": None}`` outside a repository."""
    try:
        head = _git(["rev-parse", "--show-toplevel", "HEAD", "--abbrev-ref", "HEAD"], workdir, check=False)
    except CommandError as exc:  # git missing or hung
        return {"commit": None, "error": str(exc)}
    if head.returncode != 0:
        if "not a git repository" in head.stderr:
            return {"commit": None}
        tail = (head.stderr.strip().splitlines() or [f"exited {head.returncode}"])[-1]
        return {"commit": None, "error": f"git rev-parse HEAD in {workdir}: {tail}"}
    top, commit, branch = head.stdout.splitlines()[:3]
    diff = _guarded(_write_diff, Path(top), run_dir)
    untracked = _guarded(_write_untracked, Path(top), run_dir)
    changes = [diff.get("size_bytes"), untracked.get("count")]
    dirty = True if any(changes) else (None if None in changes else False)  # None: could not tell
    return {
        "commit": commit,
        "branch": None if branch == "HEAD" else branch,  # HEAD: detached
        "dirty": dirty,
        "remote_url": _guarded(_remote, Path(top)).get("url"),
        "toplevel": top,
        "diff": diff,
        "untracked": untracked,
    }


# --binary: a patch `git apply` can replay, binary files included; no external diff tools or text conversions.
_DIFF_ARGS = ("diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--no-textconv")


def _write_diff(top: Path, run_dir: Path) -> dict[str, Any]:
    # git writes the patch to a file itself: a diff is bytes (binary patches, Latin-1 sources), not text.
    fd, tmp = tempfile.mkstemp(prefix=f".{GIT_DIFF}.", suffix=".partial", dir=run_dir)
    os.close(fd)
    try:
        _git([*_DIFF_ARGS, f"--output={tmp}"], top)
        size = os.path.getsize(tmp)
        with open(tmp, "rb") as fh:
            data = fh.read(DIFF_CAP_BYTES)
    finally:
        Path(tmp).unlink(missing_ok=True)
    truncated = size > DIFF_CAP_BYTES
    if truncated and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]  # whole lines only
    atomic_write(run_dir / GIT_DIFF, data)
    return {"file": GIT_DIFF, "size_bytes": size, "truncated": truncated}


def working_tree(workdir: Path) -> dict[str, Any] | None:
    """The repository of ``workdir`` as it is now, in the form git_state records it for a run: ``commit``,
    ``diff`` (bytes of ``git diff HEAD``, binary patches included) and ``untracked`` (sorted names); None outside
    a repository or when git fails."""
    try:
        head = _git(["rev-parse", "--show-toplevel", "HEAD"], workdir, check=False)
        if head.returncode != 0:
            return None
        top, commit = head.stdout.splitlines()[:2]
        fd, tmp = tempfile.mkstemp(prefix=f".{GIT_DIFF}.", suffix=".partial")
        os.close(fd)
        try:
            _git([*_DIFF_ARGS, f"--output={tmp}"], Path(top))
            diff = Path(tmp).read_bytes()
        finally:
            Path(tmp).unlink(missing_ok=True)
        names = _git(["ls-files", "--others", "--exclude-standard"], Path(top)).stdout.splitlines()
    except (CommandError, OSError, ValueError):
        return None
    return {"commit": commit, "diff": diff, "untracked": sorted(names)}


def _write_untracked(top: Path, run_dir: Path) -> dict[str, Any]:
    # Paths come C-quoted (core.quotePath), so the list is ASCII text whatever the file names are.
    names = _git(["ls-files", "--others", "--exclude-standard"], top).stdout.splitlines()
    atomic_write(run_dir / GIT_UNTRACKED, "".join(n + "\n" for n in names[:UNTRACKED_CAP_LINES]))
    return {"file": GIT_UNTRACKED, "count": len(names), "truncated": len(names) > UNTRACKED_CAP_LINES}


def _remote(top: Path) -> dict[str, Any]:
    """origin's URL (else the first remote's), credentials removed; None without remotes."""
    out = _git(["config", "--get-regexp", r"^remote\..*\.url$"], top, check=False).stdout
    urls = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    url = urls.get("remote.origin.url") or next(iter(urls.values()), None)
    return {"url": strip_url_credentials(url) if url else None}


def strip_url_credentials(text: str) -> str:
    """``text`` with the userinfo of every ``scheme://user:pass@host`` URL replaced by ``***``."""
    return _URL_USERINFO.sub(r"\1***@", text)


# --- Python, modules, environment --------------------------------------------------------------------------


def python_state(run_dir: Path, site: Site) -> dict[str, Any]:
    """The interpreter running hpcx and its installed distributions (written to run_dir/requirements.txt)."""
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "job_executable": site.python or sys.executable,
        "virtualenv": sys.prefix != sys.base_prefix,
        "hpcx": __version__,
        "requirements": _guarded(_write_requirements, run_dir),
    }


def _write_requirements(run_dir: Path) -> dict[str, Any]:
    lines = installed_requirements()
    text = "".join(line + "\n" for line in lines)
    atomic_write(run_dir / REQUIREMENTS, text)
    return {"file": REQUIREMENTS, "count": len(lines), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def installed_requirements() -> list[str]:
    """``name==version`` for each distribution this interpreter can import, sorted by name (the first on
    sys.path wins, as for imports); ``name @ url`` for ones installed from a VCS or an archive URL."""
    from importlib import metadata  # here, not at import: ~30 ms that only submissions pay

    lines: dict[str, str] = {}
    for dist in metadata.distributions():
        name, version = _name_version(dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "")
        key = re.sub(r"[-_.]+", "-", name).lower()
        if name and key not in lines:
            lines[key] = _requirement(name, version, dist.read_text("direct_url.json"))
    return [lines[k] for k in sorted(lines)]


def _name_version(metadata_text: str) -> tuple[str, str]:
    # Only the two header fields: the email parser behind dist.metadata costs ~1 ms per distribution.
    fields: dict[str, str] = {}
    for line in metadata_text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        if key in ("Name", "Version"):
            fields.setdefault(key, value.strip())
    return fields.get("Name", ""), fields.get("Version", "")


def _requirement(name: str, version: str, direct_url: str | None) -> str:
    try:
        origin = json.loads(direct_url) if direct_url else {}
    except ValueError:
        origin = {}
    url = strip_url_credentials(origin.get("url", ""))
    vcs = origin.get("vcs_info")
    if vcs:
        return f"{name} @ {vcs.get('vcs', 'git')}+{url}@{vcs.get('commit_id', '')}"
    if "archive_info" in origin and not url.startswith("file:"):
        return f"{name} @ {url}"
    if origin.get("dir_info", {}).get("editable"):
        return f"{name}=={version}  # editable: {url}"
    return f"{name}=={version}"


def loaded_modules(environ: Mapping[str, str]) -> dict[str, Any]:
    """The environment modules loaded now, from LOADEDMODULES (kept by both Lmod and Environment Modules)."""
    if "LMOD_CMD" in environ or "LMOD_VERSION" in environ:
        system: str | None = "lmod"
    elif "MODULESHOME" in environ or "MODULES_CMD" in environ:
        system = "environment-modules"
    else:
        system = None
    return {"system": system, "loaded": [m for m in environ.get("LOADEDMODULES", "").split(":") if m]}


def redacted_environment(environ: Mapping[str, str], extra_patterns: Iterable[str] = ()) -> dict[str, Any]:
    """``environ`` without any variable whose name looks secret (SECRET_NAME or one of ``extra_patterns``,
    case-insensitive, anywhere in the name), and with URL credentials removed from the values kept.
    The names left out are listed under ``redacted``; their values appear nowhere."""
    patterns = [SECRET_NAME]
    for pattern in extra_patterns:
        try:
            patterns.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:  # fail closed: record no environment rather than one missing a redaction
            raise ValueError(
                f"site redact_env pattern {pattern!r} is not a regular expression ({exc}); "
                "no environment recorded"
            ) from exc
    kept, redacted = {}, []
    for name, value in environ.items():
        if any(p.search(name) for p in patterns):
            redacted.append(name)
        else:
            kept[name] = strip_url_credentials(value)
    return {"variables": dict(sorted(kept.items())), "redacted": sorted(redacted)}


# --- Slurm ---------------------------------------------------------------------------------------------------


def slurm_state() -> dict[str, Any]:
    """Slurm's version (``sbatch --version``) and the configuration lines that change how jobs behave."""
    doc: dict[str, Any] = {"version": None, "config": {}}
    errors = []
    try:
        doc["version"] = slurm.version(timeout_s=SLURM_TIMEOUT_S)
    except CommandError as exc:
        errors.append(str(exc))
    try:
        doc["config"] = config_values(slurm.config(timeout_s=SLURM_TIMEOUT_S))
    except CommandError as exc:
        errors.append(str(exc))
    if errors:
        doc["error"] = "; ".join(errors)
    return doc


def config_values(config: Mapping[str, str], keys: Sequence[str] = SLURM_CONFIG_KEYS) -> dict[str, Any]:
    """The values of ``keys`` in Slurm's configuration (:func:`hpcx.schedulers.slurm.config`), in its order, as
    the manifest records them: numbers as ints, (null) as None."""
    return {
        key: None if value == "(null)" else int(value) if value.isdigit() else value
        for key, value in config.items()
        if key in keys
    }


# --- inputs --------------------------------------------------------------------------------------------------


def resolve_input(workdir: Path, given: str) -> Path:
    """``given`` (relative to ``workdir``, where the job starts); UsageError if nothing is there."""
    path = (workdir / os.path.expanduser(given)).absolute()
    if not path.exists():
        raise UsageError(
            f"input {given!r} does not exist (looked for {path})",
            hint="declare only files or directories that exist at submission",
        )
    return path


def fingerprint(path: Path) -> dict[str, Any]:
    """Size, mtime and sha256 of a file (both 16 MiB ends only, ``partial``, above 256 MiB); for a directory
    the file count, total size and a sha256 over its sorted (relative path, size, mtime) listing. An HDF5 file
    (known by its signature, whatever its name) adds ``hdf5``: see ``hdf5_content``."""
    st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        return _directory_fingerprint(path)
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device: opening it could block
        return {"type": "other"}
    doc = {"type": "file", "size_bytes": st.st_size, "mtime_s": st.st_mtime, **_file_sha256(path, st.st_size)}
    if is_hdf5(path):
        doc["hdf5"] = _guarded(hdf5_content, path, st.st_size)
    return doc


def _file_sha256(path: Path, size_bytes: int) -> dict[str, Any]:
    with open(path, "rb") as fh:
        if size_bytes <= FULL_HASH_CAP_BYTES:
            return {"sha256": _sha256(fh).hexdigest(), "partial": False}
        digest = _sha256(fh, EDGE_BYTES)
        fh.seek(size_bytes - EDGE_BYTES)
        digest = _sha256(fh, EDGE_BYTES, digest)
        digest.update(str(size_bytes).encode())
        return {"sha256": digest.hexdigest(), "partial": True}


def hdf5_content(path: Path, size_bytes: int) -> dict[str, Any]:
    """The fingerprint of an HDF5 file's values (hpcx.io.info: the same whatever the chunking, compression or
    layout) and a summary of its datasets: read in full up to the byte-hash cap, sampled beyond it (on disk, or
    in values once decompressed, so a small, well compressed file cannot stall a submission). Raises when h5py
    cannot be imported or the file cannot be read; the caller records why, next to the byte fingerprint."""
    doc = inspect_hdf5(path, quick=size_bytes > FULL_HASH_CAP_BYTES, full_limit_bytes=FULL_HASH_CAP_BYTES)
    return {
        **doc["fingerprint"],
        "datasets": [_dataset_summary(d) for d in doc["datasets"][:HDF5_DATASETS_SHOWN]],
        "datasets_total": len(doc["datasets"]),
        "links": doc["links"][:HDF5_DATASETS_SHOWN],
    }


def _dataset_summary(described: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: described[k] for k in HDF5_SUMMARY_KEYS},
        "filters": [f["name"] for f in described["filters"]],
        **described["fingerprint"],  # sha256 and mode, or sha256 None and why
    }


def _sha256(fh: BinaryIO, limit: int | None = None, digest: Any = None) -> Any:
    """Feed ``fh`` (at most ``limit`` bytes) into ``digest`` (a new sha256 if None), 1 MiB at a time."""
    digest = hashlib.sha256() if digest is None else digest
    left = limit if limit is not None else -1
    while left != 0:
        chunk = fh.read(1 << 20 if left < 0 else min(1 << 20, left))
        if not chunk:
            break
        digest.update(chunk)
        left = left - len(chunk) if left > 0 else left
    return digest


def _directory_fingerprint(root: Path) -> dict[str, Any]:
    entries: list[tuple[str, int, int]] = []  # (path under root, size, mtime_ns)
    unreadable: list[OSError] = []
    # Symlinked directories are listed by os.walk but not entered: a link cycle cannot make this endless.
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable.append):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError as exc:
                unreadable.append(exc)
                continue
            if stat.S_ISREG(st.st_mode):
                entries.append((os.path.relpath(full, root), st.st_size, st.st_mtime_ns))
    entries.sort()
    digest = hashlib.sha256()
    for rel, size, mtime_ns in entries:
        digest.update(os.fsencode(rel) + f"\0{size}\0{mtime_ns}\n".encode())
    return {
        "type": "directory",
        "files": len(entries),
        "size_bytes": sum(e[1] for e in entries),
        "newest_mtime_s": max((e[2] for e in entries), default=0) / 1e9,
        "listing_sha256": digest.hexdigest(),
        "unreadable": len(unreadable),
    }


# --- accounting ----------------------------------------------------------------------------------------------


def record_accounting(run: Run) -> dict[str, Any] | None:
    """Slurm's accounting rows for the run's jobs (one row per job, array task and step; every chunk of a
    sweep), written to run_dir/accounting.json. Returns the document, or None when the run has no Slurm job
    or sacct has nothing for it. A file that already records the same jobs finished is returned, not rewritten."""
    return record_accounting_many([run]).get(run.id)


def record_accounting_many(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """:func:`record_accounting` for many runs with one sacct call for all of those that need asking (run id ->
    document; runs without a Slurm job or without rows are left out)."""
    out: dict[str, dict[str, Any]] = {}
    ask: list[tuple[Run, list[str]]] = []
    for run in runs:
        job = run.job
        if job.get("scheduler") != "slurm" or not job.get("job_id"):
            continue
        job_ids = _job_ids(job)
        old = _final_accounting(run, job_ids)
        if old is not None:
            out[run.id] = old
        else:
            ask.append((run, job_ids))
    if not ask:
        return out
    every_id = list(dict.fromkeys(i for _, ids in ask for i in ids))
    try:
        rows = slurm.accounting(every_id, ACCOUNTING_FIELDS)
    except CommandError:
        return out
    for run, job_ids in ask:
        mine = [r for r in rows if re.split(r"[_.+]", r["JobID"], maxsplit=1)[0] in job_ids]
        if mine:
            out[run.id] = _write_accounting(run, job_ids, mine)
    return out


def _final_accounting(run: Run, job_ids: list[str]) -> dict[str, Any] | None:
    """The run's accounting.json when it already records these jobs as finished (nothing to ask again)."""
    try:
        old = read_json(run.dir / ACCOUNTING)
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) and old.get("finished") and old.get("job_ids") == job_ids else None


def _write_accounting(run: Run, job_ids: list[str], rows: list[dict[str, str]]) -> dict[str, Any]:
    doc = {
        "schema": "hpcx.accounting/1",
        "job_ids": job_ids,
        "queried_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        # slurmdbd lags: an array task sacct does not list yet would be missing from a file kept as final.
        "finished": all_finished(rows) and _every_task_listed(run.job, rows),
        "rows": rows,
    }
    atomic_write_json(run.dir / ACCOUNTING, doc)
    return doc


def _every_task_listed(job: dict[str, Any], rows: Sequence[dict[str, str]]) -> bool:
    """Whether sacct listed every array task of a sweep's chunks (``JOB_INDEX``); true for other jobs."""
    from hpcx.submit.sweeps import chunk_tasks

    listed = {task for r in rows for task in listed_tasks(r["JobID"])}
    return all(f"{c['job_id']}_{i}" in listed for c, i, _ in chunk_tasks(job.get("chunks", [])))


_TASK_RANGE_ROW = re.compile(r"(\d+)_\[([0-9,\-]+)(?:%\d+)?\]")


def listed_tasks(job_id: str) -> list[str]:
    """The array tasks one sacct row stands for: ``123_4`` itself; ``123_[0-3,7]`` (the one row sacct keeps for
    tasks that never started, such as an array cancelled while pending) each of 123_0 ... 123_3 and 123_7."""
    m = _TASK_RANGE_ROW.fullmatch(job_id)
    if m is None:
        return [job_id]
    tasks: list[str] = []
    for part in m.group(2).split(","):
        first, _, last = part.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            tasks += [f"{m.group(1)}_{i}" for i in range(int(first), int(last or first) + 1)]
    return tasks


def all_finished(rows: Sequence[dict[str, str]]) -> bool:
    """Whether every job and array task (steps aside) is in a final state; REQUEUED and PENDING are not."""
    jobs = [r for r in rows if "." not in r["JobID"]]
    return bool(jobs) and all((r["State"].split() or [""])[0] in FINISHED_STATES for r in jobs)
