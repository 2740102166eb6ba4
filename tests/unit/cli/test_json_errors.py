"""--json everywhere: errors as one JSON document, the flag after the command too, streams one document a line."""

import json

import pytest

from hpcx.cli import cli
from hpcx.cli.app import COMMAND_MODULES


def _error(proc):
    doc = json.loads(proc.stdout)
    assert set(doc) == {"hpcx", "error"} and doc["hpcx"] == 1
    assert set(doc["error"]) == {"message", "hint", "exit_code"}
    assert doc["error"]["exit_code"] == proc.returncode
    return doc["error"]


def test_an_error_is_one_json_document_with_the_same_exit_code(hpcx):
    missing = hpcx("--json", "status", "nosuchrun", check=False)
    assert missing.returncode == 2
    err = _error(missing)
    assert "nosuchrun" in err["message"] and "hpcx runs" in err["hint"]

    bad_option = hpcx("runs", "--bogus", "--json", check=False)  # click's own usage error
    assert bad_option.returncode == 2 and "--bogus" in _error(bad_option)["message"]

    rejected = hpcx("--json", "submit", "serial", "-N", "99", "--", "true", check=False)
    assert rejected.returncode == 3 and "99" in _error(rejected)["message"]

    plain = hpcx("status", "nosuchrun", check=False)  # without --json: one line on stderr, as before
    assert plain.returncode == 2 and plain.stdout == "" and plain.stderr.startswith("hpcx: error: no run")


def test_json_is_accepted_after_the_command(hpcx):
    doc = json.loads(hpcx("runs", "--json").stdout)
    assert doc["hpcx"] == 1 and doc["kind"] == "runs"
    assert json.loads(hpcx("config", "show", "--json").stdout)["kind"] == "config"
    assert json.loads(hpcx("config", "--json", "show").stdout)["kind"] == "config"


def _commands(group, path=()):
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))


@pytest.mark.parametrize("name", sorted(COMMAND_MODULES))
def test_every_command_lists_json_in_its_help(hpcx, name):
    words = [name]
    if name in ("site", "config", "data"):
        words += [{"site": "show", "config": "show", "data": "info"}[name]]
    shown = hpcx(*words, "--help")
    options = [line.split()[0] for line in shown.stdout.splitlines() if line.startswith("  -")]
    assert options.count("--json") == 1 and "UserWarning" not in shown.stderr


def test_status_watch_and_logs_follow_print_one_document_per_line(hpcx):
    run = hpcx.json("submit", "serial", "--", "bash", "-c", "echo one; sleep 2; echo two")
    watched = hpcx("status", run["run_id"], "--watch", "--interval", "0.5", "--json", timeout_s=60)
    lines = watched.stdout.splitlines()
    docs = [json.loads(line) for line in lines]
    assert all(d["hpcx"] == 1 and d["kind"] == "status" for d in docs)
    assert docs[-1]["runs"][0]["finished"] and docs[-1]["runs"][0]["run_id"] == run["run_id"]
    assert "\x1b" not in watched.stdout  # no screen clearing in a stream

    followed = hpcx("--json", "logs", "--follow", run["run_id"], timeout_s=60)
    docs = [json.loads(line) for line in followed.stdout.splitlines()]
    assert docs and all(d["kind"] == "logs" and d["run_id"] == run["run_id"] for d in docs)
    assert {"path", "text", "tail"} <= set(docs[0])
    out = "".join(d["text"] for d in docs if d["path"].endswith(".out"))
    assert "one" in out and "two" in out


def test_the_json_flag_is_added_once_however_often_commands_are_looked_up():
    import click

    ctx = click.Context(cli)
    for name in COMMAND_MODULES:
        cli.get_command(ctx, name)
        cli.get_command(ctx, name)
    for _path, cmd in _commands(cli):
        assert [o for p in cmd.params for o in getattr(p, "opts", ())].count("--json") == 1, _path


def test_a_programs_own_json_flag_is_not_hpcxs(hpcx):
    # Options end at the command's first word: this --json is train.py's, so the error stays one text line.
    proc = hpcx("submit", "serial", "-N", "99", "python", "train.py", "--json", check=False)
    assert proc.returncode == 3 and proc.stdout == "" and proc.stderr.startswith("hpcx: error: no partition")
    proc = hpcx("submit", "serial", "-N", "99", "--json", "python", "train.py", check=False)
    assert proc.returncode == 3 and _error(proc)["exit_code"] == 3
