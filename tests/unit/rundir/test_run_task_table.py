"""``python -m hpcx.run --task-id N --task-table tasks.jsonl -- CMD``: an array task runs its own row of a sweep,
with its parameters in the environment and in the command's placeholders, and its records in its own folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hpcx.rundir import layout
from hpcx.rundir.tasks import table_text

ROWS = [
    {"task": 0, "name": "lr=0.1", "params": {"lr": 0.1, "opt": "sgd"}, "seed": 11},
    {"task": 1, "name": "lr=0.01", "params": {"lr": 0.01, "opt": "adam"}, "seed": 12},
]
# The command: prints its words and its HPCX_* environment.
SHOW = (
    "import json, os, sys; "
    "print(json.dumps([sys.argv[1:], {k: v for k, v in os.environ.items() if k.startswith('HPCX_')}]))"
)


def _run(tmp_path, *options):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "OMPI_", "PMI", "SLURM_", "RANK"))
    }
    env["HPCX_RUN_DIR"] = str(tmp_path)
    argv = [
        sys.executable,
        "-m",
        "hpcx.run",
        "--interval",
        "0.05",
        *options,
        "--",
        sys.executable,
        "-c",
        SHOW,
        "--lr",
        "{lr}",
        "{{lr}}",
        "{task_name}",
        "${opt}",
    ]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_a_task_runs_its_own_row_and_records_in_its_own_folder(tmp_path):
    table = tmp_path / layout.TASK_TABLE
    table.write_text(table_text(ROWS))
    out = _run(tmp_path, "--task-id", "1", "--task-table", str(table))
    assert out.returncode == 0, out.stderr
    words, env = json.loads(out.stdout)
    assert words == ["--lr", "0.01", "{lr}", "lr=0.01", "${opt}"]
    assert {
        k: env[k] for k in ("HPCX_TASK_ID", "HPCX_TASK_NAME", "HPCX_SEED", "HPCX_PARAM_LR", "HPCX_PARAM_OPT")
    } == {
        "HPCX_TASK_ID": "1",
        "HPCX_TASK_NAME": "lr=0.01",
        "HPCX_SEED": "12",
        "HPCX_PARAM_LR": "0.01",
        "HPCX_PARAM_OPT": "adam",
    }
    assert env["HPCX_PROFILE_DIR"] == str(layout.profile_dir(tmp_path, 1))
    assert list(layout.rank_files(layout.profile_dir(tmp_path, 1))) == [0]


def test_a_table_without_the_task_or_without_a_task_id_ends_with_usage_status(tmp_path):
    table = tmp_path / layout.TASK_TABLE
    table.write_text(table_text(ROWS))
    missing = _run(tmp_path, "--task-id", "5", "--task-table", str(table))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"hpcx.run: rank 0: task table {table} has no task 5\n"
    no_id = _run(tmp_path, "--task-table", str(table))
    assert (no_id.returncode, no_id.stderr) == (2, "hpcx.run: --task-table needs --task-id\n")
    assert not (tmp_path / layout.PROFILE_DIR).exists()


def test_the_table_is_one_sorted_compact_line_per_task_and_reads_back_whole(tmp_path):
    """tasks.jsonl is what a rerun and `hpcx compare` read back, and what the job's own row comes from: its bytes
    do not depend on the order a spec listed its parameters in."""
    from hpcx.rundir.tasks import read_tasks

    rows = [{"task": 0, "seed": 7, "params": {"opt": "adam", "lr": 0.5}, "name": "lr=0.5 µ"}]
    text = table_text(rows)
    # ASCII only (a non-ASCII name is escaped), so any locale's default encoding reads it
    assert text == '{"name":"lr=0.5 \\u00b5","params":{"lr":0.5,"opt":"adam"},"seed":7,"task":0}\n'
    table = tmp_path / layout.TASK_TABLE
    table.write_bytes((text + "\n").encode("utf-8"))  # a blank line at the end, as an editor may leave
    assert read_tasks(table) == rows


def test_a_big_table_reports_its_progress_every_thousand_tasks():
    """`hpcx sweep` shows how far the task table of a large sweep is written: 2,500 tasks are told as two
    thousands (the last 500 are the end, not a step)."""
    told: list[int] = []
    rows = [{"task": i, "name": str(i), "params": {}, "seed": i} for i in range(2500)]
    text = table_text(rows, told.append)
    assert told == [1000, 1000] and text.count("\n") == 2500
    assert table_text(rows[:999], told.append) and told == [1000, 1000]  # under a thousand: nothing to tell
