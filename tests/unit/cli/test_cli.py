"""Every command answers --help; errors are one line with the documented exit code."""

import json

import pytest

COMMANDS = [
    [],
    ["render"],
    ["submit"],
    ["status"],
    ["logs"],
    ["cancel"],
    ["runs"],
    ["report"],
    ["testbed"],
    ["site"],
    ["site", "validate"],
    ["site", "show"],
    ["data"],
    ["data", "info"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "hpcx")
def test_help(hpcx, cmd):
    out = hpcx(*cmd, "--help").stdout
    assert "Usage: hpcx" in out


def test_version(hpcx):
    assert hpcx("--version").stdout.startswith("hpcx, version ")


def test_render_shows_the_script_and_submits_nothing(hpcx, runs_root):
    out = hpcx("render", "mpi", "--ntasks-per-node", "2", "--", "python", "x.py", "a b").stdout
    assert "mpirun -n 2" in out and "-m hpcx.run -- python x.py 'a b'" in out
    assert list(runs_root.iterdir()) == []


def test_render_json_carries_sources(hpcx):
    doc = hpcx.json("render", "serial", "-t", "5", "--", "true")
    assert doc["hpcx"] == 1 and doc["kind"] == "render"
    assert doc["sources"]["time_min"] == "cli" and doc["sources"]["nodes"] == "default"


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["render", "serial", "--time", "soon", "--", "true"], 2, "--time 'soon' is not a Slurm time"),
        (["render", "nokind", "--", "true"], 2, "job kind 'nokind' has no template"),
        (["render", "serial"], 2, "no command given"),
        (["render", "serial", "--name", "a b", "--", "true"], 2, "is not a plain name"),
        (["--site", "/nonexistent.yaml", "render", "serial", "--", "true"], 2, "cannot be read"),
        (["status", "nosuchrun"], 2, "no run 'nosuchrun'"),
        (["report", "nosuchrun"], 2, "no run 'nosuchrun'"),
        (["render", "serial", "--set", "1x=2", "--", "true"], 2, "is not NAME=VALUE"),
    ],
)
def test_bad_input_is_one_line_and_exit_code(hpcx, args, code, words):
    proc = hpcx(*args, check=False)
    assert proc.returncode == code, proc.stderr
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_rejection_exits_3_and_names_the_fix(hpcx):
    from tests.conftest import TESTBED_SITE

    proc = hpcx(
        "--site",
        str(TESTBED_SITE),
        "render",
        "serial",
        "-p",
        "debug",
        "-t",
        "48:00:00",
        "--",
        "true",
        check=False,
    )
    assert proc.returncode == 3
    assert "exceeds partition debug's MaxTime 00:30:00; use --partition batch" in proc.stderr


def test_status_json_pins_its_keys(hpcx):
    doc = hpcx.json("status")
    assert set(doc) == {"hpcx", "kind", "runs"} and doc["runs"] == []
    json.dumps(doc)
