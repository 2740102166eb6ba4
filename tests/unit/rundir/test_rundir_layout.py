"""The run directory's names (hpcx.rundir.layout): every name built is parsed back to what built it, and names of
another shape are told apart instead of sliced."""

from pathlib import Path

from hpcx.rundir import layout
from hpcx.rundir.tasks import read_tasks, table_text
from hpcx.submit.sweep_submit import task_table
from hpcx.submit.sweeps import expand, parse_spec


def test_rank_files_per_job_step_parse_back_to_their_rank(tmp_path):
    assert layout.rank_file(tmp_path, 3) == tmp_path / "rank-00003.jsonl"
    assert layout.rank_file(tmp_path, 3, "0") == tmp_path / "rank-00003.step-0.jsonl"
    assert layout.rank_file(tmp_path, 12, "a/b").name == "rank-00012.step-a_b.jsonl"
    for name in ("rank-00003.jsonl", "rank-00003.step-0.jsonl", "rank-123456.step-batch.jsonl"):
        (tmp_path / name).touch()
    (tmp_path / "rank-x.jsonl").touch()
    (tmp_path / "rank-00001.jsonl.tmp").touch()
    assert [
        layout.rank_of_file(n) for n in ("rank-00007.step-2.jsonl", "rank-x.jsonl", "io-rank-00001-p9.jsonl")
    ] == [
        7,
        None,
        None,
    ]
    assert layout.rank_files(tmp_path) == {
        3: [tmp_path / "rank-00003.jsonl", tmp_path / "rank-00003.step-0.jsonl"],
        123456: [tmp_path / "rank-123456.step-batch.jsonl"],
    }


def test_node_files_keep_path_separators_out_and_name_their_node_without_the_step(tmp_path):
    assert layout.node_file(tmp_path, "cn01") == tmp_path / "node-cn01.jsonl"
    path = layout.node_file(tmp_path, "rack/cn01", "4")
    assert path == tmp_path / "node-rack_cn01.step-4.jsonl"
    assert layout.node_of_file(path) == "rack_cn01"
    assert layout.node_of_file(tmp_path / "node-cn.lab.org.jsonl") == "cn.lab.org"
    for name in ("node-b.jsonl", "node-a.step-1.jsonl", "rank-00000.jsonl"):
        (tmp_path / name).touch()
    assert layout.node_files(tmp_path) == [tmp_path / "node-a.step-1.jsonl", tmp_path / "node-b.jsonl"]


def test_task_folders_are_found_by_number_and_other_names_are_not_tasks(tmp_path):
    run = tmp_path / "run"
    assert layout.profile_dir(run) == run / "profile"
    assert layout.profile_dir(run, 7) == run / "profile" / "task-00007"
    assert layout.metrics_dir(run, 123456) == run / "metrics" / "task-123456"
    for task in (10, 2):
        layout.profile_dir(run, task).mkdir(parents=True)
    (run / "profile" / "task-3x").mkdir()
    (run / "profile" / "task-00004").touch()  # a file, not a task's folder
    assert layout.task_dirs(run / "profile") == {
        2: run / "profile" / "task-00002",
        10: run / "profile" / "task-00010",
    }
    assert [layout.task_of(n) for n in ("task-00042", "task-", "task-1.json", "rank-00001")] == [
        42,
        None,
        None,
        None,
    ]
    assert layout.task_dirs(tmp_path / "missing") == {}


def test_process_files_per_kind_and_reports_per_task(tmp_path):
    path = layout.process_file(tmp_path, layout.COMM_RECORDS, 5, 4242)
    assert path == tmp_path / "comm-rank-00005-p4242.jsonl"
    assert layout.rank_of_process_file(path, layout.COMM_RECORDS) == 5
    assert layout.rank_of_process_file(path, layout.IO_RECORDS) is None
    for kind in (layout.IO_RECORDS, layout.REGION_RECORDS):
        layout.process_file(tmp_path, kind, 1, 7).touch()
    path.touch()
    assert layout.process_files(tmp_path, layout.REGION_RECORDS) == [tmp_path / "regions-rank-00001-p7.jsonl"]
    assert layout.report_file(tmp_path) == tmp_path / "report" / "report.json"
    assert layout.report_file(tmp_path, 3, ".html") == tmp_path / "report" / "task-00003.html"
    assert layout.seeds_file(tmp_path, 2) == tmp_path / "seeds" / "rank-00002.json"


def test_the_task_table_reads_back_what_a_sweep_writes(tmp_path):
    spec = parse_spec({"name": "s", "command": ["echo", "{lr}"], "parameters": {"grid": {"lr": [0.1, 0.01]}}})
    tasks = expand(spec)
    counted = []
    text = table_text((t.to_dict() for t in tasks), counted.append)
    assert text == task_table(tasks)
    table = Path(tmp_path / layout.TASK_TABLE)
    table.write_text(text + "\n")
    assert read_tasks(table) == [t.to_dict() for t in tasks]
    assert counted == []  # told every thousand rows
    table_text(({"task": i} for i in range(2500)), counted.append)
    assert counted == [1000, 1000]


def test_control_and_heartbeat_files_where_both_sides_look(tmp_path):
    run = tmp_path / "run"
    assert (
        layout.control_dir(run) == run / "control"
        and layout.control_dir(str(run), 7) == run / "control/task-00007"
    )
    assert layout.stop_request_file(run) == run / "control/stop.json"
    assert layout.stop_request_file(run, 3) == run / "control/task-00003/stop.json"
    assert layout.stopped_file(run) == run / "control/stopped.json"
    assert layout.stopped_file(run, 3) == run / "control/task-00003/stopped.json"
    metrics = layout.metrics_dir(run, 2)
    assert layout.heartbeat_file(metrics, 0) == run / "metrics/task-00002/heartbeat-rank-00000"
    assert layout.heartbeat_file(str(metrics), 12).name == "heartbeat-rank-00012"
    assert layout.agent_file(run, "n1", "4", 2) == run / "agent-n1-t2.step-4.jsonl"
    assert layout.agent_file(run, "n1") == run / "agent-n1-t0.jsonl"
    for path in (
        layout.agent_file(run, "n2"),
        layout.agent_file(run, "n1", "4", 2),
        run / "rank-00000.jsonl",
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    assert layout.agent_files(run) == [run / "agent-n1-t2.step-4.jsonl", run / "agent-n2-t0.jsonl"]
    assert layout.agent_files(tmp_path / "absent") == []
