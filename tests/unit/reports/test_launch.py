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


def _framework(profile: Path, rank: int, pid: int, frameworks: list, t: float = 1.0) -> None:
    w = RecordWriter(process_file(profile, "framework", rank, pid))
    w.write({"type": "framework", "t": t, "rank": rank, "frameworks": frameworks})
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
    _framework(tmp_path, 0, 10, [{"name": "DeepSpeed", "module": "deepspeed", "version": None}], t=5.0)
    _framework(tmp_path, 0, 9, [DIST], t=2.0)  # an earlier process whose file sorts after (p9 > p10 as text)
    doc = summarize_launch(tmp_path, _ranks("srun"))
    assert doc["framework"] == "DeepSpeed" and [f["name"] for f in doc["frameworks"]] == ["DeepSpeed"]


def test_nothing_recorded(tmp_path):
    assert summarize_launch(tmp_path / "absent", []) == {
        "launcher": None,
        "ranks_by_launcher": {},
        "agents": 0,
        "framework": None,
        "frameworks": [],
        "workers": None,
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


def test_gpu_memory_per_rank_from_the_exit_records(tmp_path):
    from hpcx.reports.launch import attach_gpu_memory, gpu_memory_line

    def record(rank, pid, gpu):
        w = RecordWriter(process_file(tmp_path, "framework", rank, pid))
        w.write({"type": "framework", "t": 1.0, "rank": rank, "frameworks": [TORCH], "gpu_memory": gpu})
        w.close()

    record(
        0, 1, [{"device": 0, "max_allocated_mb": 512.0, "max_reserved_mb": 600.0, "process_used_mb": 900.0}]
    )
    record(
        1, 2, [{"device": 1, "max_allocated_mb": 2048.0, "max_reserved_mb": 2100.0, "process_used_mb": None}]
    )
    _framework(tmp_path, 2, 3, [TORCH])  # a rank that never used CUDA
    ranks = [{"rank": r} for r in range(4)]
    attach_gpu_memory(ranks, tmp_path)
    assert [r["gpu_memory"] is None for r in ranks] == [False, False, True, True]
    assert ranks[1]["gpu_memory"][0]["max_allocated_mb"] == 2048.0
    assert gpu_memory_line(ranks) == (
        "GPU memory per rank at exit: torch's allocator peak at most 2048 MiB allocated, 2100 MiB reserved "
        "(rank 1, device 1); NVML for the rank's own process at most 900 MiB (rank 0)"
    )
    assert gpu_memory_line([{"rank": 0, "gpu_memory": None}]) is None


def _agent_end(profile: Path, node: str, expected, ranks) -> None:
    w = RecordWriter(agent_file(profile, node, "0"))
    w.write({"type": "start", "t": 0.0, "rank": 0, "role": "agent"})
    w.write(
        {
            "type": "end",
            "t": 1.0,
            "rank": 0,
            "exit_code": 0,
            "workers_expected": expected,
            "worker_ranks": ranks,
        }
    )
    w.close()


def test_workers_an_agent_started_but_hpcx_never_saw_are_said(tmp_path):
    _agent_end(tmp_path, "n1", 2, [0, 1])
    _agent_end(tmp_path, "n2", 2, [3])  # rank 2 ended before a look found it
    doc = summarize_launch(tmp_path, _ranks("torchrun", "torchrun", "torchrun"))
    assert doc["workers"] == {"expected": 4, "seen": 3}
    assert launch_line(doc) == (
        "ranks started by 3 torchrun, 2 torchrun agents (1 of 4 workers ended before hpcx saw them: not "
        "profiled, not in the ranks below)"
    )
    _agent_end(tmp_path / "all", "n1", 2, [0, 1])
    _agent_end(tmp_path / "all", "n2", 2, [2, 3])
    doc = summarize_launch(tmp_path / "all", _ranks(*["torchrun"] * 4))
    assert doc["workers"] == {"expected": 4, "seen": 4} and "saw them" not in launch_line(doc)


def test_an_agent_that_chose_its_worker_count_leaves_it_unknown(tmp_path):
    _agent_end(tmp_path, "n1", None, [0])  # --nproc-per-node=gpu: torchrun decided
    _agent_end(tmp_path, "n2", 2, [1])
    doc = summarize_launch(tmp_path, _ranks("torchrun", "torchrun"))
    assert doc["workers"] == {"expected": None, "seen": 2} and "saw them" not in launch_line(doc)
    assert summarize_launch(tmp_path / "none", [])["workers"] is None
