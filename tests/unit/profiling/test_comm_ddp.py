"""DDP's own gradient communication under `--profile`, with no change to the program: each bucket's all-reduce
is timed and sized, the numerics stay the program's (bit for bit), a program's own hook is timed instead of
replaced, a built-in C++ hook is said to be not covered, and the report carries it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hpcx.profiling.comm import HOOK_DIR
from hpcx.profiling.comm_ddp import split_overlap
from hpcx.reports.comm import summarize_ddp
from hpcx.runtime.torchenv import EXIT_SITE
from tests.unit.profiling.test_regions_torchrun import LAUNCHER_PREFIXES

TRAIN = textwrap.dedent("""
    import os, sys, torch, torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    model = DDP(net, bucket_cap_mb=0.25)
    if os.environ.get("HOOK") == "user":
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
        model.register_comm_hook(None, default_hooks.fp16_compress_hook)
    if os.environ.get("HOOK") == "builtin":
        model._register_builtin_comm_hook(dist.BuiltinCommHookType.FP16_COMPRESS)
    if os.environ.get("HOOK", "").startswith("late"):  # a sanity forward first, then the program's own hook
        with torch.no_grad():
            model(torch.zeros(1, 256))
        if os.environ["HOOK"] == "late-user":
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
            model.register_comm_hook(None, default_hooks.fp16_compress_hook)
        else:
            model._register_builtin_comm_hook(dist.BuiltinCommHookType.FP16_COMPRESS)
    if os.environ.get("HOOK") == "powersgd":  # a hook whose callbacks all-reduce again, after the hook returned
        from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as ps
        state = ps.PowerSGDState(process_group=None, matrix_approximation_rank=1, start_powerSGD_iter=2)
        model.register_comm_hook(state, ps.powerSGD_hook)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = 12 - 5 * dist.get_rank() if os.environ.get("HOOK") == "join" else 12
    import contextlib
    # uneven inputs: the Reducer divides by the ranks still training, not by the initial world size
    joined = model.join(divide_by_initial_world_size=False) if os.environ.get("HOOK") == "join" else contextlib.nullcontext()
    with joined:
        for step in range(steps):
            g = torch.Generator().manual_seed(step * 10 + dist.get_rank())
            loss = model(torch.randn(64, 256, generator=g)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    grad_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    state = b"".join(p.detach().numpy().tobytes() for p in model.parameters())
    import hashlib
    os.write(1, f"rank {dist.get_rank()} grad_bytes {grad_bytes} state {hashlib.sha256(state).hexdigest()}\\n".encode())
    dist.barrier()
    dist.destroy_process_group()
""")


def _run(tmp_path: Path, name: str, traced: bool, hook: str = "") -> tuple[list[str], Path]:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    profile = tmp_path / name
    env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_PREFIXES)}
    env.update(HOOK=hook, HPCX_PROFILE_DIR=str(profile))
    # hpcx's exit hook, as hpcx.run gives a torch job: gloo's threads otherwise abort some exits (exit -6)
    env["PYTHONPATH"] = os.pathsep.join([str(EXIT_SITE), env.get("PYTHONPATH", "")])
    if traced:
        env.update(
            HPCX_PROFILE_COMM="1", PYTHONPATH=os.pathsep.join([str(HOOK_DIR), env.get("PYTHONPATH", "")])
        )
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sorted(line for line in proc.stdout.splitlines() if line.startswith("rank ")), profile


def _last(profile: Path, rank: int) -> dict:
    (path,) = profile.glob(f"comm-rank-{rank:05d}-p*.jsonl")
    return json.loads(path.read_text().splitlines()[-1])


@pytest.fixture(scope="module")
def default_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    return _run(tmp, "bare", traced=False), _run(tmp, "traced", traced=True)


def test_the_numerics_are_the_programs_bit_for_bit(default_runs):
    (bare, _), (traced, _) = default_runs
    assert bare == traced and len(bare) == 2


def test_every_bucket_is_timed_and_sized_and_a_step_moves_the_gradient_bytes(default_runs):
    _, (lines, profile) = default_runs
    grad_bytes = int(lines[0].split()[3])
    for rank in (0, 1):
        record = _last(profile, rank)
        calls = {e["call"]: e for e in record["entries"]}
        assert "all_reduce" not in calls  # the hook's own all_reduce is the bucket's, not counted twice
        ddp = record["ddp"]
        assert ddp["hooks"] == {"hpcx default allreduce": 1} and ddp["steps"] == 12
        assert set(record["cost_us"]) == {"torch", "ddp"}  # measured in the process, on its first calls
        assert sum(b["bytes"] for b in ddp["buckets"]) == 12 * grad_bytes
        assert calls["ddp_bucket_allreduce"]["bytes"] == 12 * grad_bytes
        assert sum(b["calls"] for b in ddp["buckets"]) == calls["ddp_bucket_allreduce"]["calls"] >= 12
        seconds = sum(b["seconds"] for b in ddp["buckets"])
        assert 0 < seconds and ddp["hidden_s"] + ddp["exposed_s"] <= seconds + 1e-9
    summary = summarize_ddp({r: [[_last(profile, r)]] for r in (0, 1)})
    assert summary["bytes_per_step"] == grad_bytes and summary["backward_passes"] == 24
    assert summary["not_covered"] == [] and 0 <= summary["hidden_share"] <= 1


def test_a_programs_own_hook_is_timed_not_replaced_and_a_builtin_one_is_not_covered(tmp_path):
    bare, _ = _run(tmp_path, "bare", traced=False, hook="user")
    traced, profile = _run(tmp_path, "user", traced=True, hook="user")
    assert bare == traced  # fp16 compression, the program's choice, still in force
    ddp = _last(profile, 0)["ddp"]
    assert ddp["hooks"] == {"user: fp16_compress_hook": 1} and ddp["steps"] == 12
    grad_bytes = int(traced[0].split()[3])
    assert sum(b["bytes"] for b in ddp["buckets"]) == 12 * grad_bytes  # the bucket's, before its compression
    _, profile = _run(tmp_path, "builtin", traced=True, hook="builtin")
    (path,) = profile.glob("comm-rank-00000-p*.jsonl") or [None]
    summary = summarize_ddp({0: [[json.loads(path.read_text().splitlines()[-1])]]}) if path else None
    assert summary is not None, "a DDP model with a built-in hook must be reported, as not covered"
    assert summary["not_covered"] == ["builtin: BuiltinCommHookType.FP16_COMPRESS (not covered)"]
    assert summary["buckets"] == []


def test_a_hook_registered_after_a_forward_still_works_and_is_timed(tmp_path):
    # DDP takes one hook per model: hpcx's went in at the first forward, so it hands the buckets on
    bare, _ = _run(tmp_path, "bare", traced=False, hook="late-user")
    traced, profile = _run(tmp_path, "late", traced=True, hook="late-user")
    assert bare == traced
    ddp = _last(profile, 0)["ddp"]
    assert ddp["hooks"] == {"user: fp16_compress_hook": 1} and ddp["steps"] == 12
    builtin_bare, _ = _run(tmp_path, "bare-builtin", traced=False, hook="late-builtin")
    builtin, profile = _run(tmp_path, "late-builtin", traced=True, hook="late-builtin")
    assert builtin_bare == builtin  # torch's Python fp16 hook does what its C++ one does
    assert _last(profile, 0)["ddp"]["hooks"] == {"builtin: BuiltinCommHookType.FP16_COMPRESS (as Python)": 1}


def test_uneven_inputs_keep_the_reducers_divisor(tmp_path):
    # join(divide_by_initial_world_size=False): DDP divides by the ranks still training; a hook divides itself
    bare, _ = _run(tmp_path, "bare", traced=False, hook="join")
    traced, profile = _run(tmp_path, "join", traced=True, hook="join")
    assert bare == traced
    # rank 1 ran out after 7 batches; its 5 shadow passes all-reduce zeros through the same hook, and count
    assert _last(profile, 0)["ddp"]["steps"] == 12 and _last(profile, 1)["ddp"]["steps"] == 12


def test_a_hooks_later_collectives_are_the_buckets_not_counted_twice(tmp_path):
    # PowerSGD all-reduces P and Q from its future's callbacks, after the hook itself returned
    bare, _ = _run(tmp_path, "bare", traced=False, hook="powersgd")
    traced, profile = _run(tmp_path, "powersgd", traced=True, hook="powersgd")
    assert bare == traced
    for rank in (0, 1):
        record = _last(profile, rank)
        calls = {e["call"]: e for e in record["entries"]}
        assert "all_reduce" not in calls, calls
        assert record["ddp"]["hooks"] == {"user: powerSGD_hook": 1} and record["ddp"]["steps"] == 12


def test_hidden_and_exposed_seconds():
    assert split_overlap([(0.0, 1.0), (0.5, 2.0), (3.0, 4.0)], backward_end=1.5) == (1.5, 1.5)
    assert split_overlap([(2.0, 3.0)], backward_end=2.0) == (0.0, 1.0)
    assert split_overlap([(0.0, 1.0)], backward_end=5.0) == (1.0, 0.0)
    assert split_overlap([], backward_end=1.0) == (0.0, 0.0)
