"""sbatch's job options, table-driven from its documentation (man sbatch), through the real command line in
process: each option in each of its spellings (short and long, ``--opt=value``, ``--opt value``, ``-xVALUE``)
-> the request -> the #SBATCH lines `hpcx render` writes; the options hpcx passes on, verbatim; the refusals,
named as the user spelled them; and an own script's #SBATCH lines, kept as written (issue 29).

The table runs on examples/sites/testbed.yaml, whose partitions name no nodes and no features: there the checks
that need node names (-w, -x) are skipped and only the rendering is tested. The checks themselves run on a copy
of it that names the nodes and features the live test cluster has (scripts/testbed: n1 avx2,cpu; n2 avx2,gpu)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.unit.cli_harness import Result, isolate, run_cli

REPO = Path(__file__).resolve().parents[3]
SITE = str(REPO / "examples" / "sites" / "testbed.yaml")
# Lines every render writes whatever the request: left out where a test compares the request's own lines.
HOUSEKEEPING = ("--output=", "--error=", "--open-mode=", "--requeue", "--signal=", "--chdir=", "--job-name=")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)


def hpcx(*args: str, site: str = SITE) -> Result:
    """``hpcx --site SITE ARGS...`` in process (click's runner captures the output; main() maps the errors to exit
    codes and messages as the installed command does)."""
    return run_cli("--site", site, *args)


def render(*options: str, site: str = SITE) -> str:
    result = hpcx("render", "serial", *options, "true", site=site)
    assert result.code == 0, f"hpcx render serial {' '.join(options)} true: exit {result.code}\n{result.err}"
    return result.out


def directives(script: str) -> list[str]:
    """The script's #SBATCH options as sbatch reads them (``--ntasks=4``; quotes taken off, as sbatch does:
    ``--constraint='a&b'`` is ``--constraint=a&b``)."""
    return [
        " ".join(shlex.split(line[len("#SBATCH ") :]))
        for line in script.splitlines()
        if line.startswith("#SBATCH ")
    ]


def request_lines(script: str) -> list[str]:
    """The #SBATCH lines of the request itself (the run's log paths and the like left out)."""
    return [d for d in directives(script) if not d.startswith(HOUSEKEEPING)]


def spellings(long: str, short: str | None, value: str | None) -> list[tuple[str, ...]]:
    """Every way sbatch takes the option: ``--opt value``, ``--opt=value``, ``-o value``, ``-ovalue``."""
    if value is None:
        return [(long,), *([(short,)] if short else [])]
    out = [(long, value), (f"{long}={value}",)]
    return out + ([(short, value), (f"{short}{value}",)] if short else [])


def table(rows: list[tuple]) -> list:
    """pytest params: one per row and spelling of its option."""
    return [
        pytest.param(spelled, line, absent, extra, id=" ".join(spelled + extra))
        for long, short, value, line, absent, extra in rows
        for spelled in spellings(long, short, value)
    ]


# --- checked options: the request's shape, written back exactly as asked --------------------------------------

# (long, short, value, the #SBATCH line, lines that must not be there, other options the case needs)
CHECKED = [
    ("--ntasks", "-n", "4", "--ntasks=4", ("--nodes=", "--ntasks-per-node="), ()),
    ("--nodes", "-N", "1-2", "--nodes=1-2", ("--ntasks=",), ()),
    ("--nodes", "-N", "2", "--nodes=2", ("--ntasks=",), ()),
    ("--ntasks-per-node", None, "2", "--ntasks-per-node=2", ("--ntasks=",), ()),
    ("--cpus-per-task", "-c", "2", "--cpus-per-task=2", ("--cpus-per-gpu=",), ()),
    ("--time", "-t", "20", "--time=00:20:00", (), ()),
    ("--time", "-t", "1-0", "--time=1-00:00:00", (), ("-p", "batch")),
    ("--time", "-t", "1-00:00:00", "--time=1-00:00:00", (), ("-p", "batch")),
    ("--time", "-t", "90", "--time=01:30:00", (), ("-p", "batch")),
    ("--mem", None, "2G", "--mem=2048M", ("--mem-per-cpu=", "--mem-per-gpu="), ()),
    ("--mem", None, "1500", "--mem=1500M", ("--mem-per-cpu=", "--mem-per-gpu="), ()),
    ("--mem", None, "0", "--mem=0", ("--mem-per-cpu=", "--mem-per-gpu="), ()),
    ("--mem-per-cpu", None, "1G", "--mem-per-cpu=1024M", ("--mem=", "--mem-per-gpu="), ()),
    ("--mem-per-gpu", None, "1G", "--mem-per-gpu=1024M", ("--mem=", "--mem-per-cpu="), ("--gpus", "1")),
    ("--gpus", "-G", "tesla:1", "--gpus=tesla:1", ("--gres=", "--gpus-per-node="), ()),
    ("--gpus", "-G", "2", "--gpus=2", ("--gres=", "--gpus-per-node="), ()),
    ("--gpus-per-node", None, "1", "--gpus-per-node=1", ("--gres=",), ()),
    ("--gpus-per-node", None, "tesla:2", "--gpus-per-node=tesla:2", ("--gres=",), ()),
    ("--gpus-per-task", None, "1", "--gpus-per-task=1", ("--gres=",), ("-n", "1")),
    ("--cpus-per-gpu", None, "2", "--cpus-per-gpu=2", ("--cpus-per-task=",), ("--gpus", "1")),
    ("--ntasks-per-gpu", None, "2", "--ntasks-per-gpu=2", ("--nodes=", "--ntasks-per-node="), ("-G", "1")),
    ("--gres", None, "gpu:tesla:1", "--gres=gpu:tesla:1", ("--gpus-per-node=", "--gpus="), ()),
    ("--gres", None, "gpu:2", "--gres=gpu:2", ("--gpus-per-node=", "--gpus="), ()),
    ("--exclusive", None, None, "--exclusive", (), ()),
    ("--nodelist", "-w", "n1", "--nodelist=n1", (), ()),
    ("--nodelist", "-w", "n[1-2]", "--nodelist=n[1-2]", (), ("-N", "2")),
    ("--exclude", "-x", "n2", "--exclude=n2", (), ()),
    ("--partition", "-p", "batch", "--partition=batch", (), ()),
    ("--qos", "-q", "normal", "--qos=normal", (), ()),
    ("--account", "-A", "acct", "--account=acct", (), ()),
    ("--job-name", "-J", "prep", "--job-name=prep", (), ()),
]


@pytest.mark.parametrize("spelled, line, absent, extra", table(CHECKED))
def test_a_checked_option_is_written_back_as_asked(spelled, line, absent, extra):
    lines = directives(render(*spelled, *extra))
    assert line in lines, lines
    unwanted = [d for d in lines if d.startswith(absent)] if absent else []
    assert not unwanted, f"{' '.join(spelled)} must not become {unwanted}"


def test_ntasks_alone_is_only_ntasks():
    # -n 4 must not become --nodes=1 --ntasks-per-node=4: Slurm would place that job differently.
    assert request_lines(render("-n", "4")) == [
        "--partition=debug",
        "--ntasks=4",
        "--time=00:10:00",
    ]


def test_exclusive_with_a_value_keeps_it():
    assert "--exclusive=user" in directives(render("--exclusive=user"))


def test_the_old_name_spelling_still_names_the_job():
    assert "--job-name=prep" in directives(render("--name", "prep"))


def test_a_partition_list_lets_hpcx_choose_among_those():
    lines = directives(render("-p", "debug,batch"))
    assert [d for d in lines if d.startswith("--partition=")] in (
        ["--partition=debug"],
        ["--partition=batch"],
    )


def test_a_partition_list_chooses_the_one_that_fits():
    # debug allows 30 minutes, batch two days: an hour fits only batch.
    assert "--partition=batch" in directives(render("-p", "debug,batch", "-t", "1:00:00"))


def test_the_constraint_renders_where_the_site_lists_no_features():
    # testbed.yaml names no node features (the live test cluster has avx2): like -w and -x without node names,
    # a check that needs them cannot be made there, and -C goes to Slurm as asked.
    assert "--constraint=avx2" in directives(render("-C", "avx2"))


# --- passed on, not checked: verbatim ----------------------------------------------------------------------------

PASSED = [
    ("--hold", "-H", None, "--hold", (), ()),
    ("--mail-type", None, "END", "--mail-type=END", (), ()),
    ("--mail-user", None, "a@b.c", "--mail-user=a@b.c", (), ()),
    ("--begin", "-b", "now+1hour", "--begin=now+1hour", (), ()),
    ("--licenses", "-L", "lic:1", "--licenses=lic:1", (), ()),
    ("--reservation", None, "r1", "--reservation=r1", (), ()),
    ("--comment", None, "x", "--comment=x", (), ()),
    ("--wckey", None, "w", "--wckey=w", (), ()),
    ("--dependency", "-d", "afterany:1", "--dependency=afterany:1", (), ()),
    ("--signal", None, "B:USR1@60", "--signal=B:USR1@60", (), ()),
    ("--hint", None, "nomultithread", "--hint=nomultithread", (), ()),
    ("--chdir", "-D", "/tmp", "--chdir=/tmp", (), ()),
    ("--export", None, "ALL", "--export=ALL", (), ()),
    ("--export", None, "NONE", "--export=NONE", (), ()),
    ("--gpu-bind", None, "closest", "--gpu-bind=closest", (), ()),
    ("--gpu-freq", None, "high", "--gpu-freq=high", (), ()),
    ("--time-min", None, "10", "--time-min=10", (), ()),
    ("--deadline", None, "now+2hours", "--deadline=now+2hours", (), ()),
    ("--distribution", "-m", "cyclic", "--distribution=cyclic", (), ()),
    ("--mincpus", None, "2", "--mincpus=2", (), ()),
    ("--tmp", None, "100", "--tmp=100", (), ()),
    ("--ntasks-per-core", None, "1", "--ntasks-per-core=1", (), ()),
    ("--threads-per-core", None, "1", "--threads-per-core=1", (), ()),
    ("--priority", None, "10", "--priority=10", (), ()),
    ("--overcommit", "-O", None, "--overcommit", (), ()),
    ("--oversubscribe", "-s", None, "--oversubscribe", (), ()),
    ("--spread-job", None, None, "--spread-job", (), ()),
    ("--use-min-nodes", None, None, "--use-min-nodes", (), ()),
    ("--contiguous", None, None, "--contiguous", (), ()),
    ("--nice", None, None, "--nice", (), ()),
]


@pytest.mark.parametrize("spelled, line, absent, extra", table(PASSED))
def test_a_passed_on_option_appears_verbatim(spelled, line, absent, extra):
    script = render(*spelled, *extra)
    assert line in directives(script)
    assert "-m hpcx.run -- true\n" in script, "the option took the command's first word"


def test_nice_with_a_value_keeps_it():
    assert "--nice=5" in directives(render("--nice=5"))


def test_export_takes_its_value_after_a_space_as_sbatch_does():
    # sbatch's --export has a required argument (slurm_opt.c: required_argument): --export ALL is --export=ALL,
    # and ALL is not the command.
    script = render("--export", "ALL")
    assert "--export=ALL" in directives(script)
    assert "--job-name=true" in directives(script)


def test_the_users_signal_is_the_one_slurm_takes():
    # sbatch takes the last --signal of the script: the user's, not hpcx's default warning.
    signals = [d for d in directives(render("--signal", "B:USR1@60")) if d.startswith("--signal=")]
    assert signals[-1] == "--signal=B:USR1@60"


def test_chdir_is_where_the_job_runs():
    script = render("-D", "/tmp")
    chdirs = [d for d in directives(script) if d.startswith("--chdir=")]
    assert chdirs[-1] == "--chdir=/tmp"
    cds = [line for line in script.splitlines() if line.startswith("cd ")]
    assert all(line == "cd /tmp" for line in cds), f"the script moves elsewhere: {cds}"


def test_no_requeue_turns_hpcxs_requeue_off():
    # sbatch takes the last of --requeue and --no-requeue.
    lines = [d for d in directives(render("--no-requeue")) if d in ("--requeue", "--no-requeue")]
    assert lines[-1] == "--no-requeue"


def test_cpu_bind_is_a_default_for_the_jobs_steps():
    # sbatch has no --cpu-bind: hpcx gives it to every srun step of the job through SLURM_CPU_BIND.
    script = render("--cpu-bind", "cores")
    assert not [d for d in directives(script) if d.startswith("--cpu-bind")]
    assert re.search(r"^export SLURM_CPU_BIND=['\"]?cores['\"]?$", script, re.M), script


def test_dry_run_lists_the_options_passed_on_unchecked():
    result = hpcx("submit", "--dry-run", "--json", "serial", "--mail-type", "END", "--hold", "true")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert "--mail-type=END" in doc["script"]
    beside = json.dumps({k: v for k, v in doc.items() if k != "script"})
    assert "--mail-type" in beside and "--hold" in beside, f"not listed as passed on: {beside}"


# --- refusals, in the user's spelling ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, named",
    [
        (("--mem", "1G", "--mem-per-cpu", "1G"), ("--mem 1G", "--mem-per-cpu 1G")),
        (("--mem=1G", "--mem-per-gpu=1G", "-G", "1"), ("--mem", "--mem-per-gpu")),
        (("--mem-per-cpu", "1G", "--mem-per-gpu", "1G", "-G", "1"), ("--mem-per-cpu", "--mem-per-gpu")),
    ],
    ids=["mem+mem-per-cpu", "mem+mem-per-gpu", "mem-per-cpu+mem-per-gpu"],
)
def test_two_memory_requests_are_refused_naming_both(options, named):
    result = hpcx("render", "serial", *options, "true")
    assert result.code == 2, result
    assert all(n in result.err for n in named), result.err


@pytest.mark.parametrize(
    "typed, nearest",
    [
        ("--gpu", "--gpus"),
        ("--ntask", "--ntasks"),
        ("--mem-per-cp", "--mem-per-cpu"),
        ("--nodlist", "--nodelist"),
    ],
)
def test_an_option_sbatch_lacks_names_the_nearest_one(typed, nearest):
    result = hpcx("render", "serial", typed, "1", "true")
    assert result.code == 2, result
    assert re.search(re.escape(nearest) + r"(?![\w-])", result.err), result.err


@pytest.mark.parametrize(
    "options, named",
    [
        (("-N", "2-1"), "2-1"),
        (("-t", "1h"), "1h"),
        (("--mem", "lots"), "lots"),
        (("--gres", "gpu:tesla:0"), "gpu:tesla:0"),
        (("-G", "tesla:two"), "tesla:two"),
        (("-w", "n[2-1]"), "n[2-1]"),
        (("--exclusive=everyone",), "everyone"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else v,
)
def test_a_bad_value_is_a_usage_error_naming_it(options, named):
    result = hpcx("render", "serial", *options, "true")
    assert result.code == 2, result
    assert named in result.err, result.err


@pytest.mark.parametrize(
    "options, named",
    [
        (("-n", "16"), ("-n 16",)),  # 16 tasks of 1 CPU on at most 2 nodes of 4 CPUs
        (("--nodes", "1-5"), ("--nodes 1-5", "MaxNodes 2")),
        (("-n", "4", "--mem-per-cpu", "5G"), ("--mem-per-cpu 5G", "4000M")),  # the issue's own example
        (("--gres", "gpu:a100:1"), ("a100", "tesla")),
        (("--exclusive", "--mem-per-cpu", "2G"), ("--exclusive", "4000M")),  # 4 CPUs x 2G on a 4000M node
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_a_job_the_partition_cannot_hold_is_rejected_in_the_users_terms(options, named):
    result = hpcx("render", "serial", "-p", "debug", *options, "true")
    assert result.code == 3, result
    assert all(n in result.err for n in named), result.err


@pytest.mark.parametrize(
    "options",
    [("--gres", "gpu:tesla:2", "-N", "2"), ("-N", "2", "--gpus-per-node", "1")],
    ids=" ".join,
)
def test_a_rejection_names_no_option_the_user_did_not_give(options):
    # One node of debug has GPUs: two nodes with GPUs do not fit. The user gave no -n.
    result = hpcx("render", "serial", "-p", "debug", *options, "true")
    assert result.code == 3, result
    assert "--ntasks" not in result.err and "-n " not in result.err, result.err


# --- own scripts: their #SBATCH lines, as written ---------------------------------------------------------------


def own_script(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "job.sh"
    path.write_text("#!/bin/bash\n" + "".join(f"{line}\n" for line in lines) + "srun true\n")
    return path


def dry_run(*args: str, site: str = SITE) -> dict:
    result = hpcx("submit", "--dry-run", "--json", *args, site=site)
    assert result.code == 0, f"exit {result.code}\n{result.err}"
    return json.loads(result.out)


@pytest.mark.parametrize("line", ["#SBATCH -n 4", "#SBATCH -n4", "#SBATCH --ntasks 4", "#SBATCH --ntasks=4"])
def test_an_own_scripts_ntasks_stays_as_written(tmp_path, line):
    path = own_script(tmp_path, line)
    doc = dry_run("./job.sh")
    assert doc["script"] == path.read_text()
    assert doc["sources"]["ntasks"] == "script"
    shape = [a for a in doc["sbatch_args"] if a.startswith(("--nodes", "--ntasks", "--ntasks-per-node"))]
    assert not shape, f"#SBATCH {line} must reach Slurm alone, not beside {shape}"


def test_an_own_scripts_node_range_and_tasks_add_nothing(tmp_path):
    own_script(tmp_path, "#SBATCH -N 1-2", "#SBATCH -n 2", "#SBATCH --mem-per-cpu=500M")
    doc = dry_run("./job.sh")
    assert not [a for a in doc["sbatch_args"] if a.startswith(("--nodes", "--ntasks", "--mem"))]
    assert doc["sources"]["nodes"] == doc["sources"]["mem_per_cpu_mb"] == "script"


def test_a_command_line_option_beside_an_own_script_overrides_it(tmp_path):
    own_script(tmp_path, "#SBATCH -n 4")
    doc = dry_run("-n", "2", "./job.sh")
    assert "--ntasks=2" in doc["sbatch_args"]
    assert not [a for a in doc["sbatch_args"] if a.startswith(("--nodes", "--ntasks-per-node"))]


def test_an_own_scripts_passed_on_lines_are_listed_unchecked(tmp_path):
    own_script(tmp_path, "#SBATCH --hold", "#SBATCH --mail-type=END", "#SBATCH --gres=gpu:tesla:1")
    doc = dry_run("./job.sh")
    assert {"--hold", "--mail-type=END"} <= set(doc["unchecked_directives"])
    assert doc["sources"]["gres"] == "script"


def test_an_own_scripts_two_memory_requests_are_refused(tmp_path):
    own_script(tmp_path, "#SBATCH --mem=1G", "#SBATCH --mem-per-cpu=1G")
    result = hpcx("submit", "--dry-run", "./job.sh")
    assert result.code == 2, result
    assert "--mem" in result.err and "--mem-per-cpu" in result.err, result.err


def test_an_own_scripts_option_sbatch_lacks_names_the_nearest_one(tmp_path):
    # sbatch itself refuses `#SBATCH --gpu=1` (ambiguous: --gpus, --gpu-bind, ...): hpcx does before it.
    own_script(tmp_path, "#SBATCH --gpu=1")
    result = hpcx("submit", "--dry-run", "./job.sh")
    assert result.code == 2, result
    assert re.search(r"--gpus(?![\w-])", result.err), result.err


def test_an_own_scripts_sbatch_options_hpcx_does_not_list_are_kept(tmp_path):
    own_script(tmp_path, "#SBATCH --output=x.out", "#SBATCH --gres-flags=enforce-binding")
    doc = dry_run("./job.sh")
    assert {"--output=x.out", "--gres-flags=enforce-binding"} <= set(doc["unchecked_directives"])


# --- the checks that need node names and features, on a site that has them ---------------------------------------


@pytest.fixture
def named_site(tmp_path) -> str:
    """testbed.yaml with the node names and features of the live test cluster (scripts/testbed)."""
    doc = yaml.safe_load(Path(SITE).read_text())
    parts = doc["clusters"]["hpcxtest"]["partitions"]
    for name in ("debug", "batch"):
        parts[name]["nodes"] = "n[1-2]"
        cpu, gpu = parts[name]["node_types"]
        cpu.update(nodes="n1", features=["avx2", "cpu"])
        gpu.update(nodes="n2", features=["avx2", "gpu"])
    parts["gpu"].update(nodes="n2", features=["avx2", "gpu"])
    path = tmp_path / "named.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.mark.parametrize(
    "options, line",
    [
        (("-C", "avx2"), "--constraint=avx2"),
        (("--constraint=avx2&gpu",), "--constraint=avx2&gpu"),
        (("-C", "cpu|gpu"), "--constraint=cpu|gpu"),
        (("-w", "n1"), "--nodelist=n1"),
        (("--nodelist=n[1-2]", "-N", "2"), "--nodelist=n[1-2]"),
        (("-x", "n1", "--gpus", "1"), "--exclude=n1"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else v,
)
def test_names_and_features_the_nodes_have_are_accepted(named_site, options, line):
    assert line in directives(render(*options, site=named_site))


@pytest.mark.parametrize(
    "options, named",
    [
        (("-C", "avx512"), "avx512"),
        (("-w", "n3"), "n3"),
        (("-w", "n1", "-x", "n1"), "n1"),
        (("-w", "n1", "--gpus-per-node", "1"), "n1"),
        (("-x", "n2", "--gpus", "1"), "n2"),  # the exclusion leaves no GPU node: say so
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else v,
)
def test_names_and_features_the_nodes_lack_are_refused_naming_them(named_site, options, named):
    result = hpcx("render", "serial", "-p", "debug", *options, "true", site=named_site)
    assert result.code == 3, result
    assert named in result.err, result.err


def test_a_nodelist_file_is_a_nodelist(named_site, tmp_path):
    # man sbatch, --nodelist: "a filename ... if it contains a '/' character"; the file names n1.
    (tmp_path / "hosts").write_text("n1\n")
    result = hpcx("render", "serial", "-p", "debug", "-w", "./hosts", "true", site=named_site)
    assert result.code == 0, result
    assert [d for d in directives(result.out) if d.startswith("--nodelist=")], result.out
