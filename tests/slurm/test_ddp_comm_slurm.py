"""DDP's own communication, measured by hpcx with no change to the program, against torch.profiler in the same
run: examples/train_ddp.py on 2 ranks over 2 nodes (gloo), `hpcx submit --profile`. The bytes per backward pass
are the model's gradient bytes; the seconds in the buckets' all-reduces agree with what torch.profiler records
for the same collectives; the terminal report shows the communication share and the DDP line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]
STEPS = 60


def _features() -> int:
    return int(
        re.search(r"^FEATURES = (\d+)", (REPO / "examples" / "train_ddp.py").read_text(), re.M).group(1)
    )


def test_ddp_buckets_are_the_gradients_and_their_time_agrees_with_torch_profiler(slurm_hpcx, tmp_path):
    out = tmp_path / "out"
    doc = slurm_hpcx.json(
        "submit",
        "--profile",
        "mpi",
        "-N",
        "2",
        "--ntasks-per-node",
        "1",
        "-t",
        "10",
        "--",
        "python",
        "examples/train_ddp.py",
        "--steps",
        str(STEPS),
        "--torch-profile",
        "--out",
        str(out),
    )
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=400)
    assert row["state"] == "COMPLETED", slurm_hpcx("logs", doc["run_id"]).stdout
    report = slurm_hpcx.json("report", doc["run_id"])["report"]
    ddp = report["comm"]["ddp"]
    # Linear(FEATURES, 32) and Linear(32, 1), float32: every gradient once per backward pass
    grad_bytes = (_features() * 32 + 32 + 32 + 1) * 4
    assert ddp["bytes_per_step"] == grad_bytes and ddp["backward_passes"] == 2 * STEPS
    assert ddp["hooks"] == {"hpcx default allreduce": 2} and ddp["not_covered"] == []
    run_dir = Path(doc["run_dir"])
    ours = theirs = 0.0
    for rank in (0, 1):
        profiled = json.loads((out / f"torch-profile-rank-{rank}.json").read_text())
        assert profiled["gloo_all_reduce_calls"] == STEPS  # one bucket per step: the same collectives
        theirs += profiled["gloo_all_reduce_s"]
        (path,) = (run_dir / "profile").glob(f"comm-rank-{rank:05d}-p*.jsonl")
        ours += sum(b["seconds"] for b in json.loads(path.read_text().splitlines()[-1])["ddp"]["buckets"])
    print(f"all-reduce seconds over both ranks: hpcx {ours:.4f}, torch.profiler {theirs:.4f}")
    assert ours == pytest.approx(theirs, rel=0.10)
    text = slurm_hpcx("report", doc["run_id"]).stdout
    assert re.search(r"communication: [\d.]+ s in traced calls, \d+% of rank time", text), text
    assert "torch ddp_bucket_allreduce: 120 calls" in text and "DDP: 1 bucket, " in text, text
