"""The task table: a sweep's ``tasks.jsonl``, one line of parameters per array task (line N is task N).

The login side writes it when it submits a sweep and reads it for reports, comparisons and reruns; each array
task's ``python -m hpcx.run --task-table`` reads its own row, fills the ``{name}`` placeholders of its command
and sets ``HPCX_PARAM_*``. A row is ``{"task": N, "name": ..., "params": {...}, "seed": ...}``. One file, not one
per task: many small files hurt a parallel filesystem.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from hpcx.errors import UsageError

# A placeholder is {name}; {{ is a literal brace ({{name}} a literal {name}); ${name} is the shell's and other
# braces ({"json": 1}) stay as written.
_PLACEHOLDER = re.compile(
    r"\{\{(?P<literal>[A-Za-z_][A-Za-z0-9_]*)\}\}|\{\{|(?<!\$)\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}"
)
TASK_FIELDS = ("seed", "task", "task_name")  # placeholders every task defines besides its parameters


def placeholders(text: str) -> list[str]:
    """The ``{name}`` placeholders of ``text`` (not literal ``{{name}}`` nor the shell's ``${name}``)."""
    return [m.group("name") for m in _PLACEHOLDER.finditer(text) if m.group("name")]


def fill_command(command: list[str], task: dict[str, Any]) -> list[str]:
    """Replace ``{name}`` in each word by the task's parameter (or ``{seed}``, ``{task}``, ``{task_name}``) and
    ``{{`` by ``{``; the spec was checked for unknown names at submission, so any left stay as written."""
    values = {**task["params"], "seed": task["seed"], "task": task["task"], "task_name": task["name"]}

    def one(m: re.Match[str]) -> str:
        if m.group("literal"):
            return "{" + m.group("literal") + "}"
        if m.group("name") is None:
            return "{"
        return str(values[m.group("name")]) if m.group("name") in values else m.group(0)

    return [_PLACEHOLDER.sub(one, w) for w in command]


def table_text(rows: Iterable[dict[str, Any]], progress: Callable[[int], None] | None = None) -> str:
    """The text of a task table: one compact JSON object per row, keys sorted; ``progress`` is told of every
    thousand rows written."""
    encode = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode  # one encoder for every row
    lines = []
    for i, row in enumerate(rows):
        lines.append(encode(row))
        if progress and i % 1000 == 999:
            progress(1000)
    return "\n".join(lines) + "\n"


def read_task(table: str | os.PathLike[str], task_id: int) -> dict[str, Any]:
    """Row ``task_id`` of a task table (line N is task N); raise UsageError when the table has no such row."""
    with open(table, encoding="utf-8") as fh:
        for number, line in enumerate(fh):
            if number == task_id:
                row = json.loads(line)
                if row.get("task") != task_id:
                    raise UsageError(f"task table {table} line {task_id} holds task {row.get('task')}")
                return row
    raise UsageError(f"task table {table} has no task {task_id}")


def read_tasks(table: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every row of a task table, in task order (blank lines skipped)."""
    with open(table, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def task_env(row: dict[str, Any]) -> dict[str, str]:
    """The environment a task sees: HPCX_TASK_ID, HPCX_TASK_NAME, HPCX_SEED and HPCX_PARAM_<NAME>."""
    env = {"HPCX_TASK_ID": str(row["task"]), "HPCX_TASK_NAME": row["name"], "HPCX_SEED": str(row["seed"])}
    for k, v in row["params"].items():
        env[f"HPCX_PARAM_{k.upper()}"] = v if isinstance(v, str) else json.dumps(v)
    return env
