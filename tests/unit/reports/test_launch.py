"""The report's launch section: which launcher started the ranks (from their start records), how many torchrun
agents there were, and the framework most ranks ran (from the framework records of hpcx's exit hook)."""

from __future__ import annotations

from pathlib import Path

from hpcx.reports.launch import launch_line, summarize_launch
from hpcx.rundir.layout import agent_file, process_file
from hpcx.rundir.records import RecordWriter

LIGHTNING = {"name": "PyTorch Lightning", "module": "lightning.pytorch", "version": "2.5.1"}
DIST = {"name": "torch.distributed", "module": "torch.distributed", "version": "2.13.0"}
TORCH = {"name": "torch", "module": "torch", "version": "2.13.0"}


def _framework(profile: Path, rank: int, pid: int, frameworks: list) -> None:
    w = RecordWriter(process_file(profile, "framework", rank, pid))
    w.write({"type": "framework", "t": 1.0, "rank": rank, "frameworks": frameworks})
    w.close()


def _ranks(*launchers):
    return [{"rank": i, "launcher": name} for i, name in enumerate(launchers)]


def test_torchrun_workers_agents_and_the_framework_most_ranks_ran(tmp_path):
    for node in ("n1", "n2"):
        RecordWriter(agent_file(tmp_path, node, "0")).close()
    for rank in range(3):
        _framework(tmp_path, rank, 100 + rank, [LIGHTNING, DIST, TORCH])
    _framework(tmp_path, 3, 103, [DIST, TORCH])  # one rank that never got as far as Lightning
    doc = summarize_launch(tmp_path, _ranks(*["torchrun"] * 4))
    assert (
        doc["launcher"] == "torchrun" and doc["ranks_by_launcher"] == {"torchrun": 4} and doc["agents"] == 2
    )
    assert doc["framework"] == "PyTorch Lightning 2.5.1"
    assert doc["frameworks"] == [
        {"name": "PyTorch Lightning", "version": "2.5.1", "ranks": [0, 1, 2]},
        {"name": "torch.distributed", "version": "2.13.0", "ranks": [0, 1, 2, 3]},
        {"name": "torch", "version": "2.13.0", "ranks": [0, 1, 2, 3]},
    ]
    assert (
        launch_line(doc)
        == "ranks started by 4 torchrun, 2 torchrun agents; framework PyTorch Lightning 2.5.1"
    )


def test_mixed_launchers_are_all_named_with_their_counts(tmp_path):
    doc = summarize_launch(tmp_path, _ranks("srun", "srun", "none"))
    assert doc["launcher"] == "none + srun" and doc["ranks_by_launcher"] == {"none": 1, "srun": 2}
    assert (doc["agents"], doc["framework"], doc["frameworks"]) == (0, None, [])
    assert launch_line(doc) == "ranks started by 1 none, 2 srun"


def test_a_rank_without_a_launcher_and_one_agent(tmp_path):
    RecordWriter(agent_file(tmp_path, "n1")).close()
    doc = summarize_launch(tmp_path, [{"rank": 0}, {"rank": 1, "launcher": None}])
    assert doc["ranks_by_launcher"] == {"unknown": 2}
    assert launch_line(doc) == "ranks started by 2 unknown, 1 torchrun agent"


def test_the_last_record_of_a_rank_wins_and_versions_may_be_missing(tmp_path):
    _framework(tmp_path, 0, 1, [DIST])
    _framework(tmp_path, 0, 2, [{"name": "DeepSpeed", "module": "deepspeed", "version": None}])
    doc = summarize_launch(tmp_path, _ranks("srun"))
    assert doc["framework"] == "DeepSpeed" and [f["name"] for f in doc["frameworks"]] == ["DeepSpeed"]


def test_nothing_recorded(tmp_path):
    assert summarize_launch(tmp_path / "absent", []) == {
        "launcher": None,
        "ranks_by_launcher": {},
        "agents": 0,
        "framework": None,
        "frameworks": [],
    }
    assert launch_line(None) is None and launch_line(summarize_launch(tmp_path, [])) is None


def test_damaged_framework_records_are_left_out(tmp_path):
    path = process_file(tmp_path, "framework", 0, 7)
    path.write_text(
        '{"v":2,"type":"framework","rank":0,"frameworks":"lightning"}\n{"v":2,"type":"framework","rank'
    )
    _framework(tmp_path, 1, 8, [{"module": "x"}, TORCH])
    doc = summarize_launch(tmp_path, _ranks("srun", "srun"))
    assert doc["framework"] == "torch 2.13.0" and doc["frameworks"] == [
        {"name": "torch", "version": "2.13.0", "ranks": [1]}
    ]
