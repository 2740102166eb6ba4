"""`hpcx export RUN --tensorboard DIR` (hpcx.runs.export): real metrics files, written by the job's own
hpcx.runtime.log or hpcx's RecordWriter, exported with the tensorboard package's writer and read back with
TensorBoard's own reader: every step's value and wall time, the latest attempt of a requeued job, non-finite values,
a sweep's tasks as TensorBoard runs with their parameters, names TensorBoard groups or a page would interpret, and a
second export that replaces the first instead of adding to it."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorboard", reason="the export needs pip install 'hpcx[tensorboard]'")

from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util

from hpcx.errors import UsageError
from hpcx.rundir.layout import TASK_TABLE, metrics_dir, rank_file
from hpcx.rundir.records import RecordWriter, read_records
from hpcx.rundir.tasks import table_text
from hpcx.runs import Run
from hpcx.runs.export import MARKER_FILE, export_tensorboard

RUN_ID = "20261207-120000-abc123"
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "SLURM_", "OMPI_", "PMI"))}


def _run(tmp_path: Path) -> Run:
    path = tmp_path / "runs" / RUN_ID
    path.mkdir(parents=True, exist_ok=True)
    return Run(RUN_ID, path)


def _log(run: Run, records: list[dict], task: int | None = None, rank: int = 0) -> None:
    """Append metric records as the job does (one line each)."""
    writer = RecordWriter(rank_file(metrics_dir(run.dir, task), rank))
    for record in records:
        writer.write({"type": "metric", "rank": rank, "attempt": 0, **record})
    writer.close()


def _scalars(directory: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Per tag, (step, wall time, value) of every point TensorBoard reads from ``directory``, in file order."""
    acc = EventAccumulator(str(directory), size_guidance={TENSORS: 0})  # 0: every point, no sampling
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        events = acc.Tensors(tag)
        out[tag] = [(e.step, e.wall_time, tensor_util.make_ndarray(e.tensor_proto).item()) for e in events]
    return out


def _f32(value: float) -> float:
    """TensorBoard keeps a scalar as a 32-bit float."""
    import numpy as np

    return float(np.float32(value))


def test_every_step_the_job_logged_is_read_back_with_its_value_and_wall_time(tmp_path):
    run = _run(tmp_path)
    code = (
        "import hpcx.runtime as r\nfor s in range(50):\n    r.log(s, loss=1.0 / (s + 1), lr=0.1 * 0.9 ** s)\n"
    )
    env = {**CLEAN, "HPCX_RUN_DIR": str(run.dir)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    logged = list(read_records(rank_file(metrics_dir(run.dir), 0)))

    doc = export_tensorboard(run, tmp_path / "tb")

    assert doc["dir"] == str(tmp_path / "tb" / RUN_ID) and doc["replaced"] is False
    assert doc["runs"] == [
        {"dir": doc["dir"], "task": None, "rank": 0, "metrics": ["loss", "lr"], "points": 100}
    ]
    scalars = _scalars(tmp_path / "tb" / RUN_ID)
    assert sorted(scalars) == ["loss", "lr"]
    for name in ("loss", "lr"):
        assert scalars[name] == [(r["step"], r["t"], _f32(r[name])) for r in logged]


def test_only_rank_0_by_default_and_one_folder_per_rank_with_all_ranks(tmp_path):
    run = _run(tmp_path)
    for rank in (0, 1):
        _log(run, [{"t": 100.0 + s, "step": s, "loss": rank + s / 10} for s in range(3)], rank=rank)

    export_tensorboard(run, tmp_path / "tb")
    assert [v for _, _, v in _scalars(tmp_path / "tb" / RUN_ID)["loss"]] == [_f32(0.0), _f32(0.1), _f32(0.2)]

    doc = export_tensorboard(run, tmp_path / "all", all_ranks=True)
    top = tmp_path / "all" / RUN_ID
    assert [(r["dir"], r["rank"]) for r in doc["runs"]] == [
        (str(top / "rank-00000"), 0),
        (str(top / "rank-00001"), 1),
    ]
    assert [v for _, _, v in _scalars(top / "rank-00001")["loss"]] == [_f32(1.0), _f32(1.1), _f32(1.2)]
    assert not _scalars(top)  # nothing at the top: each rank is a run of its own


def test_a_requeued_jobs_latest_attempt_wins_each_step_it_logged_again(tmp_path):
    run = _run(tmp_path)
    first = [{"t": 1000.0 + s, "step": s, "attempt": 0, "loss": 10.0 + s} for s in range(10)]
    # The second attempt resumed from the checkpoint of step 5: it logs steps 6..12 again, later and differently.
    second = [{"t": 2000.0 + s, "step": s, "attempt": 1, "loss": 20.0 + s} for s in range(6, 13)]
    _log(run, first + second)

    export_tensorboard(run, tmp_path / "tb")

    points = _scalars(tmp_path / "tb" / RUN_ID)["loss"]
    expected = [(s, 1000.0 + s, 10.0 + s) for s in range(6)] + [
        (s, 2000.0 + s, 20.0 + s) for s in range(6, 13)
    ]
    assert points == expected


def test_an_older_attempts_record_written_after_a_newer_one_does_not_win(tmp_path):
    run = _run(tmp_path)
    _log(
        run,
        [{"t": 2.0, "step": 3, "attempt": 1, "loss": 1.0}, {"t": 3.0, "step": 3, "attempt": 0, "loss": 9.0}],
    )
    export_tensorboard(run, tmp_path / "tb")
    assert _scalars(tmp_path / "tb" / RUN_ID)["loss"] == [(3, 2.0, 1.0)]


def test_non_finite_values_are_exported_as_non_finite_scalars(tmp_path):
    run = _run(tmp_path)
    code = "import hpcx.runtime as r\nr.log(0, loss=1.5)\nr.log(1, loss=float('nan'))\nr.log(2, loss=float('inf'))\nr.log(3, loss=-float('inf'))\n"
    env = {**CLEAN, "HPCX_RUN_DIR": str(run.dir)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [r["loss"] for r in read_records(rank_file(metrics_dir(run.dir), 0))] == [
        1.5,
        "nan",
        "inf",
        "-inf",
    ]

    export_tensorboard(run, tmp_path / "tb")

    values = [v for _, _, v in _scalars(tmp_path / "tb" / RUN_ID)["loss"]]
    assert values[0] == 1.5 and math.isnan(values[1]) and values[2] == math.inf and values[3] == -math.inf


def _sweep(run: Run, params: list[dict]) -> None:
    rows = [{"task": i, "name": f"t{i}", "params": p, "seed": i} for i, p in enumerate(params)]
    (run.dir / TASK_TABLE).write_text(table_text(rows))


def _session_start(directory: Path):
    acc = EventAccumulator(str(directory), size_guidance={TENSORS: 0})
    acc.Reload()
    tag = hparams_metadata.SESSION_START_INFO_TAG
    if tag not in acc.Tags()["tensors"]:
        return None
    return hparams_metadata.parse_session_start_info_plugin_data(acc.SummaryMetadata(tag).plugin_data.content)


def _text(directory: Path) -> str:
    acc = EventAccumulator(str(directory), size_guidance={TENSORS: 0})
    acc.Reload()
    return tensor_util.make_ndarray(acc.Tensors("parameters")[0].tensor_proto).item().decode()


def test_a_sweeps_tasks_are_separate_runs_with_their_parameters(tmp_path):
    run = _run(tmp_path)
    _sweep(run, [{"lr": 0.1, "opt": "sgd"}, {"lr": 0.01, "opt": "adam"}, {"layers": [2, 4], "lr": 0.5}])
    for task in range(3):
        _log(run, [{"t": 50.0 + s, "step": s, "loss": task * 100 + s} for s in range(4)], task=task)

    doc = export_tensorboard(run, tmp_path / "tb")

    top = tmp_path / "tb" / RUN_ID
    assert [r["dir"] for r in doc["runs"]] == [str(top / f"task-0000{t}") for t in range(3)]
    for task in range(3):
        assert [v for _, _, v in _scalars(top / f"task-0000{task}")["loss"]] == [
            task * 100.0 + s for s in range(4)
        ]
    start = _session_start(top / "task-00001")
    assert start.hparams["lr"].number_value == 0.01 and start.hparams["opt"].string_value == "adam"
    assert '"opt": "adam"' in _text(top / "task-00001")
    # A list is no hparam value: that task's parameters are text only.
    assert _session_start(top / "task-00002") is None and '"layers": [' in _text(top / "task-00002")


def test_one_task_of_a_sweep_fills_only_its_own_folder(tmp_path):
    run = _run(tmp_path)
    _sweep(run, [{"lr": 0.1}, {"lr": 0.2}])
    for task in range(2):
        _log(run, [{"t": 1.0, "step": 0, "loss": float(task)}], task=task)
    export_tensorboard(run, tmp_path / "tb")

    doc = export_tensorboard(run, tmp_path / "tb", task=1)

    top = tmp_path / "tb" / RUN_ID
    assert doc["dir"] == str(top / "task-00001") and doc["replaced"] is True
    assert [r["dir"] for r in doc["runs"]] == [str(top / "task-00001")]
    assert _scalars(top / "task-00000")["loss"] == [(0, 1.0, 0.0)]  # the other task's export stays
    assert _scalars(top / "task-00001")["loss"] == [(0, 1.0, 1.0)]


def test_names_with_slashes_and_html_are_tags_exactly_as_logged(tmp_path):
    run = _run(tmp_path)
    names = ["train/loss", "eval/acc/top1", "<script>alert(1)</script>", 'a "b" & <i>c</i>']
    _log(run, [{"t": 5.0 + s, "step": s, **{n: float(i + s) for i, n in enumerate(names)}} for s in range(2)])

    doc = export_tensorboard(run, tmp_path / "tb")

    scalars = _scalars(tmp_path / "tb" / RUN_ID)
    assert sorted(scalars) == sorted(names) == doc["runs"][0]["metrics"]
    assert scalars["<script>alert(1)</script>"] == [(0, 5.0, 2.0), (1, 6.0, 3.0)]


def _event_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("events.out.tfevents.*"))


def test_exporting_again_replaces_the_previous_export_without_duplicating_a_point(tmp_path):
    run = _run(tmp_path)
    _log(run, [{"t": 10.0 + s, "step": s, "loss": float(s)} for s in range(5)])
    export_tensorboard(run, tmp_path / "tb")
    _log(run, [{"t": 20.0 + s, "step": s, "loss": float(s) * 2} for s in range(5, 8)])  # the job went on

    doc = export_tensorboard(run, tmp_path / "tb")

    top = tmp_path / "tb" / RUN_ID
    assert doc["replaced"] is True and len(_event_files(top)) == 1
    assert [(s, v) for s, _, v in _scalars(top)["loss"]] == [(s, float(s)) for s in range(5)] + [
        (s, float(s) * 2) for s in range(5, 8)
    ]
    assert (top / MARKER_FILE).is_file()
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == [RUN_ID]  # nothing left beside it


def test_a_folder_the_export_did_not_write_is_never_replaced(tmp_path):
    run = _run(tmp_path)
    _log(run, [{"t": 1.0, "step": 0, "loss": 1.0}])
    mine = tmp_path / "tb" / RUN_ID / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("keep me")

    with pytest.raises(UsageError, match="was not written by hpcx export"):
        export_tensorboard(run, tmp_path / "tb")

    assert mine.read_text() == "keep me" and not _event_files(tmp_path / "tb")
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == [RUN_ID]


@pytest.mark.parametrize("logged", [False, True])
def test_a_run_without_metrics_is_a_clear_error_and_writes_nothing(tmp_path, logged):
    run = _run(tmp_path)
    if logged:  # a job that only declared its length, or a rank other than 0
        writer = RecordWriter(rank_file(metrics_dir(run.dir), 0))
        writer.write({"type": "progress", "t": 1.0, "rank": 0, "attempt": 0, "total_steps": 10})
        writer.close()
        _log(run, [{"t": 1.0, "step": 0, "loss": 1.0}], rank=1)

    with pytest.raises(UsageError, match=f"run {RUN_ID} has no logged metrics of rank 0"):
        export_tensorboard(run, tmp_path / "tb")

    assert not (tmp_path / "tb").exists()
