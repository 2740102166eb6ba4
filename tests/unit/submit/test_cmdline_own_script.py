"""`hpcx submit job.sh`: the script's #SBATCH lines are checked and reach sbatch as written; beside them hpcx
puts only what the user typed (which overrides them, as with sbatch) and what it needs itself (log paths).
Pure: resolve and the sbatch arguments, against the test bed's site file (the cluster: tests/slurm/)."""

from pathlib import Path

import pytest

from hpcx.errors import RejectedError
from hpcx.site import load_site
from hpcx.submit.submission import Request, resolve, script_args

REPO = Path(__file__).resolve().parents[3]
TESTBED = str(REPO / "examples" / "sites" / "testbed.yaml")
RUN_DIR = Path("/runs/R")


def _prep(tmp_path: Path, directives: str, options: dict | None = None):
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n{directives}\npython task.py\n")
    return resolve(Request(None, options=options or {}, script=script), load_site(TESTBED))


def _args(prep, workdir: Path) -> list[str]:
    return script_args(prep, RUN_DIR, workdir)


def test_the_scripts_request_is_not_rewritten(tmp_path):
    prep = _prep(tmp_path, "#SBATCH -p batch --gres=gpu:tesla:1 -n 4\n#SBATCH --nodes=1-2 -t 20")
    assert _args(prep, tmp_path) == [
        "--job-name=job.sh",  # sbatch's own default (the run's copy of the script is named job.sbatch)
        "--output=/runs/R/logs/slurm-%j.out",
        "--error=/runs/R/logs/slurm-%j.err",
    ]
    res = prep.spec.resources  # what was checked
    checked = (res.partition, res.nodes, res.nodes_max, res.ntasks, res.gres, res.time_min)
    assert checked == ("batch", 1, 2, 4, "gpu:tesla:1", 20)


def test_typed_options_override_the_script_as_written(tmp_path):
    prep = _prep(tmp_path, "#SBATCH -p batch -t 20 -J mine", {"time": "5", "nodes": "1-2", "mem": "2G"})
    assert sorted(_args(prep, tmp_path)[:3]) == ["--mem=2G", "--nodes=1-2", "--time=5"]
    assert "--job-name=mine" not in _args(prep, tmp_path) and prep.spec.resources.time_min == 5


def test_an_automatic_partition_is_passed_where_the_script_names_none(tmp_path):
    prep = _prep(tmp_path, "#SBATCH -t 2:00:00")
    assert prep.sources["partition"] == "auto" and "--partition=batch" in _args(prep, tmp_path)
    assert not any(a.startswith("--time") for a in _args(prep, tmp_path))


def test_the_scripts_own_logs_stand(tmp_path):
    prep = _prep(tmp_path, "#SBATCH -t 5 -o myout-%j.txt")
    # -o alone: stderr goes there too, as with sbatch
    assert not any(a.startswith(("--output", "--error")) for a in _args(prep, tmp_path))
    prep = _prep(tmp_path, "#SBATCH -t 5 --error=err-%j.txt")
    assert "--output=/runs/R/logs/slurm-%j.out" in _args(prep, tmp_path)
    assert not any(a.startswith("--error") for a in _args(prep, tmp_path))


@pytest.mark.parametrize(
    "directives, message",
    [
        (
            "#SBATCH -p gpu --gres=gpu:a100:1",
            "partition gpu can hold one of this job's tasks: .*tesla GPUs, not a100",
        ),
        ("#SBATCH -p batch --gres=gpu:v100:1", "tesla GPUs, not v100"),
        ("#SBATCH -p batch --nodes=1-3", "--nodes 1-3 allows 3 nodes, over partition batch's MaxNodes 2"),
    ],
)
def test_pre_flight_checks_what_the_script_asks(tmp_path, directives, message):
    with pytest.raises(RejectedError, match=message):
        _prep(tmp_path, directives)


@pytest.mark.parametrize(
    "directives, partition",
    [
        ("#SBATCH -p batch -n 6", "batch"),  # 4 CPUs per node: Slurm spreads 6 tasks over 2 nodes
        ("#SBATCH -p batch -n 4 -c 2", "batch"),
        ("#SBATCH -p batch -n 3", "batch"),
        ("#SBATCH -t 5 -n 6", "debug"),  # no partition: one is chosen that has 2 nodes
    ],
)
def test_tasks_without_a_node_count_are_checked_spread_as_slurm_spreads_them(tmp_path, directives, partition):
    prep = _prep(tmp_path, directives)
    assert prep.partition.name == partition and prep.spec.resources.nodes_max is None
    assert not any(a.startswith(("--nodes", "--ntasks")) for a in _args(prep, tmp_path))


def test_tasks_that_fit_no_partition_are_refused(tmp_path):
    with pytest.raises(
        RejectedError,
        match="-n 12 needs 3 nodes of 4 tasks, over partition batch's 2 usable nodes \\(MaxNodes 2\\)",
    ):
        _prep(tmp_path, "#SBATCH -p batch -n 12")


def test_a_node_range_is_accepted(tmp_path):
    prep = _prep(tmp_path, "#SBATCH -p batch --nodes=1-2 -n 2")
    assert prep.spec.resources.nodes == 1 and prep.sources["nodes"] == "script"
