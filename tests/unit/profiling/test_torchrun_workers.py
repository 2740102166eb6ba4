"""torchrun as the launcher: `srun --ntasks-per-node=1 python -m hpcx.run -- python -m hpcx.runtime.torchrun ...`
on two nodes, as the torch-ddp kind's `--set mode=torchrun` starts it (here two hpcx.run with the variables
srun gives them). hpcx.runtime.torchrun's c10d rendezvous brings four workers together; the profiler sees each
worker as its rank (not the agent), with its own memory; the report names the launcher and the framework."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from hpcx.reports import build_report
from hpcx.reports.terminal import render_text
from hpcx.runtime.freeport import free_port
from tests.unit.profiling.test_regions_torchrun import LAUNCHER_PREFIXES
from tests.unit.reports.test_report import make_run

# Each worker holds a buffer of (rank + 1) x 40 MB for a few seconds: every rank's peak tells its own process.
TRAIN = textwrap.dedent("""
    import os, sys, time
    import torch, torch.distributed as dist
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total)
    held = bytearray((rank + 1) * 40 * 2**20)
    for i in range(0, len(held), 4096):
        held[i] = 1
    time.sleep(3)
    if os.environ.get("FAIL_RANK") == str(rank):
        sys.exit(3)
    os.write(1, f"worker {rank} of {dist.get_world_size()} sum {total.item():g}\\n".encode())
    dist.barrier()
""")


def _agents(tmp_path, profile, extra_env=None, timeout=150, script=TRAIN):
    program = tmp_path / "train.py"
    program.write_text(script)
    port = free_port()
    agents = []
    for node in (0, 1):
        env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_PREFIXES)}
        env.update(
            SLURM_PROCID=str(node),
            SLURM_STEP_NUM_TASKS="2",
            SLURM_LOCALID="0",
            SLURM_NODEID=str(node),
            SLURM_STEP_NUM_NODES="2",
            SLURM_STEP_RESV_PORTS=str(port),
            SLURM_JOB_ID="777",
            SLURMD_NODENAME=f"n{node + 1}",
            HPCX_MASTER_ADDR="127.0.0.1",
            HPCX_KIND="torch-ddp",
            **(extra_env or {}),
        )
        argv = [sys.executable, "-m", "hpcx.run", "--profile-dir", str(profile), "--"]
        argv += [sys.executable, "-m", "hpcx.runtime.torchrun", "--nproc-per-node=2", str(program)]
        agents.append(
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        )
    outs = []
    try:
        for agent in agents:
            outs.append(agent.communicate(timeout=timeout))
    finally:
        for agent in agents:
            agent.kill()
    return [a.returncode for a in agents], outs


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_four_workers_on_two_agents_are_four_ranks_each_with_its_own_memory(tmp_path):
    run = make_run(tmp_path, ntasks=2)
    profile = run.dir / "profile"
    codes, outs = _agents(tmp_path, profile)
    assert codes == [0, 0], [err[-3000:] for _, err in outs]
    lines = sorted(line for out, _ in outs for line in out.splitlines() if line.startswith("worker"))
    assert lines == [f"worker {r} of 4 sum 10" for r in range(4)]
    assert "--rdzv-endpoint=127.0.0.1:" in outs[0][1] and "--rdzv-conf=is_host=1" in outs[0][1]

    names = sorted(p.name for p in profile.glob("*.jsonl") if not p.name.startswith(("framework", "node-")))
    assert names == ["agent-n1-t0.jsonl", "agent-n2-t1.jsonl", *(f"rank-{r:05d}.jsonl" for r in range(4))]
    nodes = []
    for rank in range(4):
        start, *_, end = _records(profile / f"rank-{rank:05d}.jsonl")
        assert (start["rank"], start["size"], start["launcher"]) == (rank, 4, "torchrun")
        nodes.append(start["node"])
        assert start["local_rank"] == rank % 2
        assert start["pid"] != start["agent_pid"] and start["argv"][-1].endswith("train.py")
        assert end["type"] == "end" and end["exit_code"] == 0 and end["samples"] >= 2
    # c10d numbers the agents by their addresses (equal here, both on the loopback): either node may hold 0 and 1
    assert nodes[0] == nodes[1] != nodes[2] == nodes[3] and set(nodes) == {"n1", "n2"}
    agent = _records(profile / "agent-n1-t0.jsonl")[0]
    assert agent["role"] == "agent" and "hpcx.runtime.torchrun" in agent["argv"]

    report = build_report(run)
    by_rank = {r["rank"]: r for r in report["ranks"]}
    assert sorted(by_rank) == [0, 1, 2, 3]
    peaks = [by_rank[r]["peak_rss_mb"] for r in range(4)]
    # each worker's peak is its own process's: rank r holds (r + 1) x 40 MB more than torch's baseline
    for low, high in zip(peaks, peaks[1:]):
        assert 25 < high - low < 60, peaks
    launch = report["launch"]
    assert launch["launcher"] == "torchrun" and launch["ranks_by_launcher"] == {"torchrun": 4}
    assert launch["agents"] == 2
    assert launch["framework"].startswith("torch.distributed 2.")
    assert launch["frameworks"][0]["ranks"] == [0, 1, 2, 3]
    assert "ranks started by 4 torchrun, 2 torchrun agents; framework torch.distributed 2." in render_text(
        report
    )


def test_a_failing_worker_fails_its_agent_and_its_rank_says_so(tmp_path):
    profile = tmp_path / "p"
    codes, outs = _agents(tmp_path, profile, {"FAIL_RANK": "3"})
    assert codes[1] != 0, outs[1][1][-3000:]  # the node of rank 3
    end = _records(profile / "rank-00003.jsonl")[-1]
    assert end["type"] == "end" and end["exit_code"] == codes[1] and end["exit_code_of"] == "torchrun agent"


def test_workers_are_counted_against_what_the_agents_start_even_the_shortest(tmp_path):
    # workers that exit at once, before any rendezvous: each either gets its rank file or is said to be unseen
    run = make_run(tmp_path, ntasks=2)
    profile = run.dir / "profile"
    codes, outs = _agents(tmp_path, profile, script="import sys\n")
    assert codes == [0, 0], [err[-3000:] for _, err in outs]
    ends = [_records(p)[-1] for p in sorted(profile.glob("agent-*.jsonl"))]
    assert [e["workers_expected"] for e in ends] == [2, 2]
    seen = sorted(r for e in ends for r in e["worker_ranks"])
    assert seen == sorted(int(p.name[5:10]) for p in profile.glob("rank-*.jsonl"))
    report = build_report(run)
    assert report["launch"]["workers"] == {"expected": 4, "seen": len(seen)}
    assert len(report["ranks"]) == len(seen)
    line = render_text(report)
    if len(seen) < 4:
        assert f"({4 - len(seen)} of 4 workers ended before hpcx saw them" in line
    else:
        assert "ended before hpcx saw them" not in line
