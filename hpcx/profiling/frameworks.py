"""Which training framework a rank ran: read from the modules its Python had loaded, recorded at exit.

hpcx's exit hook (hpcx/runtime/exitsite/sitecustomize.py, first on a torch job's PYTHONPATH) calls
:func:`record_at_exit`; the rank's ``framework-rank-NNNNN-pPID.jsonl`` then names every framework found, most
specific first (Lightning's Trainer drives DDP through torch.distributed: it is named first), with its version.
Nothing is imported to find out: a framework the program never imported is not there. A process that used CUDA
also records its GPU memory at exit (:func:`gpu_memory`): torch's allocator peaks and NVML's figure for the
process, per device.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any

# (module that shows it was used, the package whose version names it, the name in the report), most specific
# first: the first found is the rank's framework.
KNOWN = (
    ("lightning.pytorch", "lightning", "PyTorch Lightning"),
    ("pytorch_lightning", "pytorch_lightning", "PyTorch Lightning"),
    ("transformers.trainer", "transformers", "Hugging Face Trainer"),
    ("accelerate", "accelerate", "Hugging Face accelerate"),
    ("deepspeed", "deepspeed", "DeepSpeed"),
    ("torch.distributed", "torch", "torch.distributed"),
    ("torch", "torch", "torch"),
)
AGENT_MAINS = ("torch.distributed.run", "torch.distributed.launch")


def found(modules: Mapping[str, Any]) -> list[dict[str, str | None]]:
    """The frameworks among ``modules`` (sys.modules), most specific first, each once."""
    out: list[dict[str, str | None]] = []
    for module, package, name in KNOWN:
        if module in modules and all(f["name"] != name for f in out):
            version = getattr(modules.get(package), "__version__", None)
            out.append({"name": name, "module": module, "version": str(version) if version else None})
    return out


def gpu_memory(modules: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """This process's GPU memory per device it used, at exit: torch's allocator peaks (allocated and reserved,
    this process's own) and, where the driver gives it, NVML's memory for this process id (``process_used_mb``;
    None where NVML lists no such figure). None when the process never initialised CUDA."""
    torch = modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_initialized():
            return None
        used = _nvml_process_mb()
        return [
            {
                "device": i,
                "max_allocated_mb": round(cuda.max_memory_allocated(i) / 2**20, 1),
                "max_reserved_mb": round(cuda.max_memory_reserved(i) / 2**20, 1),
                "process_used_mb": used.get(i),
            }
            for i in range(cuda.device_count())
            if cuda.max_memory_reserved(i) > 0
        ]
    except Exception:  # CUDA torn down or in error at exit: no figure rather than a failing exit
        return None


def _nvml_process_mb() -> dict[int, float]:
    """NVML's used memory of this process per device index (the driver's per-process accounting)."""
    out: dict[int, float] = {}
    try:
        import pynvml

        pynvml.nvmlInit()
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == os.getpid() and proc.usedGpuMemory is not None:
                    out[i] = round(proc.usedGpuMemory / 2**20, 1)
    except Exception:  # no NVML, or a driver without per-process accounting: left out, not zero
        return out
    return out


def _is_agent() -> bool:
    """This process is torchrun's agent (the launcher of the ranks, not one)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return (
        getattr(spec, "name", None) in AGENT_MAINS
        or os.path.basename(sys.argv[0] if sys.argv else "") == "torchrun"
    )


def record_at_exit() -> None:
    """Write this rank's framework record into the run's profile directory (HPCX_PROFILE_DIR, set by hpcx.run);
    nothing outside a profiled run, in torchrun's agent, or in a program that loaded no framework."""
    directory = os.environ.get("HPCX_PROFILE_DIR")
    if not directory or _is_agent():
        return
    frameworks = found(sys.modules)
    if not frameworks:
        return
    gpu = gpu_memory(sys.modules)
    from hpcx.rundir.layout import process_file
    from hpcx.rundir.records import RecordWriter
    from hpcx.runtime.rankenv import detect

    rank = detect().rank
    writer = RecordWriter(process_file(directory, "framework", rank, os.getpid()))
    record = {"type": "framework", "t": time.time(), "rank": rank, "frameworks": frameworks}
    writer.write({**record, "gpu_memory": gpu} if gpu else record)
    writer.close()
