"""`hpcx export RUN --tensorboard DIR` as a user runs it: found by id prefix or RUN_TASK, text and --json answers,
the clear error without the tensorboard extra or without metrics, and a CLI that never loads tensorboard until the
export writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcx.rundir.layout import MANIFEST_FILE, TASK_TABLE, metrics_dir, rank_file
from hpcx.rundir.records import RecordWriter
from hpcx.rundir.tasks import table_text
from tests.unit.cli_harness import isolate, run_cli

RUN_ID = "20261207-130000-def456"


@pytest.fixture
def run_dir(monkeypatch, tmp_path) -> Path:
    isolate(monkeypatch, tmp_path)
    path = tmp_path / "runs" / RUN_ID
    path.mkdir(parents=True)
    return path


def _log(run_dir: Path, steps: int, task: int | None = None) -> None:
    writer = RecordWriter(rank_file(metrics_dir(run_dir, task), 0))
    for s in range(steps):
        writer.write(
            {"type": "metric", "t": 10.0 + s, "rank": 0, "attempt": 0, "step": s, "loss": 1.0 / (s + 1)}
        )
    writer.close()


def test_export_by_prefix_says_what_it_wrote_and_how_to_view_it(run_dir, tmp_path):
    pytest.importorskip("tensorboard")
    _log(run_dir, 20)

    result = run_cli("export", RUN_ID[:10], "--tensorboard", str(tmp_path / "tb"))

    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"exported 20 points of 1 metrics (loss) as 1 TensorBoard run(s) to {tmp_path / 'tb' / RUN_ID}",
        f"view: tensorboard --logdir {tmp_path / 'tb'}",
    ]
    assert len(list((tmp_path / "tb" / RUN_ID).glob("events.out.tfevents.*"))) == 1


def test_json_names_each_tensorboard_run_and_run_task_exports_one_task(run_dir, tmp_path):
    pytest.importorskip("tensorboard")
    rows = [{"task": t, "name": f"t{t}", "params": {"lr": 0.1 * (t + 1)}, "seed": t} for t in (0, 1)]
    (run_dir / TASK_TABLE).write_text(table_text(rows))
    (run_dir / MANIFEST_FILE).write_text(json.dumps({"run_id": RUN_ID, "sweep": {"tasks": 2}}))
    for task in (0, 1):
        _log(run_dir, 3 + task, task=task)

    doc = json.loads(run_cli("--json", "export", f"{RUN_ID}_1", "--tensorboard", str(tmp_path / "tb")).out)

    task_dir = tmp_path / "tb" / RUN_ID / "task-00001"
    assert doc["kind"] == "export" and doc["task"] == 1 and doc["dir"] == str(task_dir)
    assert doc["runs"] == [{"dir": str(task_dir), "task": 1, "rank": 0, "metrics": ["loss"], "points": 4}]
    assert not (tmp_path / "tb" / RUN_ID / "task-00000").exists()


def test_a_run_without_metrics_exits_2_with_a_clear_message(run_dir, tmp_path):
    pytest.importorskip("tensorboard")
    result = run_cli("export", RUN_ID, "--tensorboard", str(tmp_path / "tb"))
    assert result.code == 2
    assert f"hpcx: error: run {RUN_ID} has no logged metrics of rank 0" in result.err
    assert "hpcx.runtime.log" in result.err and not (tmp_path / "tb").exists()


def test_without_the_extra_the_error_names_the_install_command(run_dir, tmp_path):
    _log(run_dir, 3)
    # None in sys.modules makes every `import tensorboard...` fail, as on a login node without the extra.
    code = (
        "import sys\n"
        "sys.modules['tensorboard'] = None\n"
        "from hpcx.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = [sys.executable, "-c", code, "export", RUN_ID, "--tensorboard", str(tmp_path / "tb")]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=dict(os.environ), cwd=Path.cwd()
    )
    assert proc.returncode == 2, proc.stderr
    assert "needs the tensorboard package" in proc.stderr
    assert "pip install 'hpcx[tensorboard]'" in proc.stderr
    assert not (tmp_path / "tb").exists()


def test_the_cli_and_the_export_command_load_no_tensorboard():
    code = (
        "import sys, hpcx.cli, hpcx.cli.export, hpcx.runs.export\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorboard', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
