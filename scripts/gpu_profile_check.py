"""GPU checks of the profiling hooks (issue 7), run by scripts/gpu-check on a GPU machine; prints one JSON object.

1. NVML energy: a minute of matmul load on GPU 0 while hpcx.profiling.sources.Nvml reads power every 0.1 s
   (``edge=False``) and the total-energy counter only at the two edges; the counter's joules against the
   trapezoid integral of the power samples (target: within 5%).
2. GPU memory both ways: torch's allocator peak (``max_memory_allocated``, ``max_memory_reserved``) beside
   NVML's "used" for the same tensors, labelled, never one passed off as the other.
3. NCCL collective timing through hpcx.profiling.comm at world size 1 (all_reduce of 1, 16 and 256 MiB,
   blocking and ``async_op=True``), with the traced seconds (CUDA events per call, resolved lazily: the
   calls still pending when the loop ends are shown) against CUDA-event timing of the same loop.
4. The cost of the energy counter read itself (the reason it is read only at edges).
5. DDP's bucket hook on NCCL (issue 14 item 1): bytes per step against the gradient bytes, GPU seconds per step.
6. GPU memory per rank (issue 14 item 3): the exit hook's record of a process that allocated 512 MiB.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    import torch

    from hpcx.profiling.sources import Nvml

    seconds = float(os.environ.get("HPCX_GPU_LOAD_S", "60"))
    out: dict[str, object] = {"gpu": torch.cuda.get_device_name(0)}
    nv = Nvml()
    nv.open()
    first = nv.read(edge=True)[0]
    a = torch.randn(8192, 8192, device="cuda")
    samples: list[tuple[float, float]] = []
    t_end = time.monotonic() + seconds
    t0 = time.monotonic()
    next_sample = t0
    while time.monotonic() < t_end:
        for _ in range(4):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
        now = time.monotonic()
        if now >= next_sample:
            samples.append((now - t0, nv.read(edge=False)[0]["power_w"]))
            next_sample = now + 0.1
    last = nv.read(edge=True)[0]
    samples.append((time.monotonic() - t0, last["power_w"]))
    integral = sum((t2 - t1) * (p1 + p2) / 2 for (t1, p1), (t2, p2) in zip(samples, samples[1:]))
    counter = last["energy_j"] - (first.get("energy_j") or 0.0)
    out["energy"] = {
        "counter_j": round(counter, 1),
        "integrated_power_j": round(integral, 1),
        "ratio": round(integral / counter, 4) if counter else None,
        "samples": len(samples),
        "seconds": round(samples[-1][0], 1),
        "target": "within 5%",
    }

    t = time.perf_counter()
    for _ in range(20):
        nv._energy_mj(nv.gpus[0][1])
    out["energy_counter_read_ms"] = round((time.perf_counter() - t) / 20 * 1000, 3)

    del a
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = nv.read(edge=False)[0]["mem_used_mb"]
    blocks = [torch.empty(256 << 20, dtype=torch.uint8, device="cuda") for _ in range(8)]  # 2 GiB
    torch.cuda.synchronize()
    after = nv.read(edge=False)[0]["mem_used_mb"]
    out["memory"] = {
        "torch_max_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
        "torch_max_reserved_mb": torch.cuda.max_memory_reserved() / 2**20,
        "nvml_used_delta_mb": round(after - before, 1),
        "allocated_mb": 2048,
    }
    del blocks

    import torch.distributed as dist

    from hpcx.profiling import comm

    comm.install()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29561")
    dist.init_process_group("nccl", rank=0, world_size=1)
    rows = []
    for mib in (1, 16, 256):
        x = torch.ones(mib << 18, device="cuda")  # float32: mib MiB
        for mode in ("blocking", "async_op"):
            dist.all_reduce(x)
            torch.cuda.synchronize()
            before = {(e["call"], e["bucket"]): e["seconds"] for e in comm.totals()}
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                if mode == "async_op":
                    dist.all_reduce(x, async_op=True).wait()
                else:
                    dist.all_reduce(x)
            end.record()
            pending = len(comm._cuda_pending)  # NCCL calls are timed by CUDA events, resolved lazily
            torch.cuda.synchronize()
            traced = sum(
                e["seconds"] - before.get((e["call"], e["bucket"]), 0.0)
                for e in comm.totals()
                if e["call"] == "all_reduce"
            )
            rows.append(
                {
                    "mib": mib,
                    "mode": mode,
                    "cuda_events_s": round(start.elapsed_time(end) / 1000, 6),
                    "traced_s": round(traced, 6),
                    "pending_at_loop_end": pending,
                }
            )
    out["nccl_all_reduce"] = rows
    out["ddp_comm_hook"] = ddp_comm_hook(torch, dist, comm)
    dist.destroy_process_group()
    out["memory_per_rank"] = memory_per_rank()
    print(json.dumps(out, indent=2))
    return 0


def ddp_comm_hook(torch: object, dist: object, comm: object) -> dict[str, object]:
    """Issue 14 item 1 on NCCL: a DDP model under comm tracing (installed above) gets the timed default hook; its
    buckets' bytes per step against the model's gradient bytes, their GPU seconds (CUDA events) per step."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from hpcx.profiling import comm_ddp

    net = torch.nn.Sequential(
        torch.nn.Linear(4096, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 4096)
    ).cuda()
    model = DDP(net, bucket_cap_mb=25)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    steps = 20
    for _ in range(steps):
        loss = model(torch.randn(256, 4096, device="cuda")).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    comm._resolve_cuda(wait=True)
    summary = comm_ddp.summary() or {}
    grad = sum(p.numel() * p.element_size() for p in model.parameters())
    moved = sum(b["bytes"] for b in summary.get("buckets", []))
    seconds = next((e["seconds"] for e in comm.totals() if e["call"] == comm_ddp.CALL), None)
    return {
        "results": [
            {
                "metric": "ddp_bytes_per_step_over_grad_bytes",
                "value": round(moved / steps / grad, 4),
                "unit": "ratio",
                "target": 1.0,
            },
            {
                "metric": "ddp_bucket_gpu_s_per_step",
                "value": round(seconds / steps, 6) if seconds else None,
                "unit": "s",
                "target": None,
            },
            {"metric": "ddp_buckets", "value": len(summary.get("buckets", [])), "unit": "1", "target": None},
            {"metric": "ddp_hooks", "value": json.dumps(summary.get("hooks")), "unit": "", "target": None},
        ]
    }


CHILD = """
import torch
blocks = [torch.empty(256 << 20, dtype=torch.uint8, device="cuda") for _ in range(2)]
torch.cuda.synchronize()
"""


def memory_per_rank() -> dict[str, object]:
    """Issue 14 item 3: a process allocating 512 MiB under hpcx's exit hook records torch's allocator peak and
    NVML's figure for the process; the record as the report reads it."""
    import subprocess
    import tempfile
    from pathlib import Path

    from hpcx.runtime.torchenv import EXIT_SITE

    with tempfile.TemporaryDirectory() as d:
        env = {
            **os.environ,
            "HPCX_PROFILE_DIR": d,
            "RANK": "3",
            "WORLD_SIZE": "4",
            "TORCHELASTIC_RUN_ID": "gpu",
        }
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXIT_SITE), os.environ.get("PYTHONPATH")]))
        proc = subprocess.run(
            [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120
        )
        records = [json.loads(p.read_text().splitlines()[-1]) for p in Path(d).glob("framework-rank-00003-*")]
    gpu = (records[0].get("gpu_memory") or [{}])[0] if records else {}
    allocated, used = gpu.get("max_allocated_mb"), gpu.get("process_used_mb")
    return {
        "exit": proc.returncode,
        "results": [
            {
                "metric": "rank_gpu_alloc_peak_over_512MiB",
                "value": round(allocated / 512, 4) if allocated else None,
                "unit": "ratio",
                "target": 1.0,
            },
            {"metric": "rank_nvml_process_mb", "value": used, "unit": "MiB", "target": None},
            {
                "metric": "rank_gpu_reserved_mb",
                "value": gpu.get("max_reserved_mb"),
                "unit": "MiB",
                "target": None,
            },
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
