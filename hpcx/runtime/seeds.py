"""One root seed per run: per-rank and per-worker seeds for python, numpy and torch (CPU and CUDA), their
capture and restore, and a record of them next to the run's manifest.

numpy and torch are imported inside the functions that use them, and only where they are installed: a job that
uses neither pays for neither. Nothing here touches MPI, so :func:`worker_init_fn` is safe in DataLoader workers.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

from hpcx.errors import UsageError
from hpcx.fsutil import atomic_write_json
from hpcx.rundir.layout import seeds_file

# seed_everything() leaves the rank seed here for DataLoader workers: forked workers inherit the module global,
# spawned ones (which re-import this module) the environment variable.
RANK_SEED_ENV = "HPCX_RANK_SEED"
CUBLAS_WORKSPACE = ":4096:8"  # what cuBLAS needs for reproducible results (CUDA >= 10.2), per the CUDA docs
_rank_seed: int | None = None


def derive_seed(*parts: int | str) -> int:
    """A seed in [0, 2**63) that depends only on ``parts``: the same on every machine, Python and rank count.

    sha256 rather than ``root + rank``, so seeds of neighbouring ranks or runs share no structure.
    """
    text = "hpcx-seed/" + "/".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def _check_seed(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(
            f"{name} must be an integer, not {value!r}", hint="e.g. seed_everything(1234, ctx.rank)"
        )
    return value


def _import_optional(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        return None


def _seed_libraries(seed: int) -> dict[str, bool]:
    """Seed python's ``random``, numpy's global generator and torch's CPU and CUDA generators with ``seed``."""
    random.seed(seed)
    np, torch = _import_optional("numpy"), _import_optional("torch")
    if np is not None:
        # The legacy global generator takes 32-bit words; two of them keep all 64 bits of the seed.
        np.random.seed([seed & 0xFFFFFFFF, seed >> 32])
    cuda = False
    if torch is not None:
        torch.manual_seed(seed)  # also seeds every CUDA device (lazily, if CUDA is not initialised yet)
        cuda = bool(torch.cuda.is_available())
    return {"python": True, "numpy": np is not None, "torch": torch is not None, "cuda": cuda}


def _set_deterministic() -> None:
    """torch's deterministic algorithms, cuDNN without autotuning, and the cuBLAS workspace they need."""
    # cuBLAS reads this when it creates its first handle: set it before the first CUDA matmul.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch = _import_optional("torch")
    if torch is None:
        return
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def seed_everything(root_seed: int, rank: int, *, deterministic: bool = False) -> dict[str, Any]:
    """Seed python, numpy and torch (CPU and every CUDA device) of this rank from the run's one root seed.

    The rank seed is ``derive_seed(root_seed, "rank", rank)``: different on every rank, the same for the same
    root seed and rank on any machine. ``deterministic=True`` also turns on
    ``torch.use_deterministic_algorithms(True)``, ``cudnn.deterministic`` (``cudnn.benchmark`` off) and
    ``CUBLAS_WORKSPACE_CONFIG``; call it before the first CUDA operation. Returns what was done, as recorded by
    :func:`record`: root seed, rank, rank seed, the deterministic flag and which libraries were seeded.
    """
    global _rank_seed
    root_seed, rank = _check_seed("root_seed", root_seed), _check_seed("rank", rank)
    rank_seed = derive_seed(root_seed, "rank", rank)
    seeded = _seed_libraries(rank_seed)
    if deterministic:
        _set_deterministic()
    _rank_seed = rank_seed
    os.environ[RANK_SEED_ENV] = str(rank_seed)
    return {
        "root_seed": root_seed,
        "rank": rank,
        "rank_seed": rank_seed,
        "deterministic": bool(deterministic),
        "seeded": seeded,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def worker_seed(rank_seed: int, worker_id: int, epoch_seed: int = 0) -> int:
    """The seed of DataLoader worker ``worker_id`` of the rank whose seed is ``rank_seed``.

    ``epoch_seed`` is torch's per-iterator base seed (``get_worker_info().seed``), which itself comes from the
    rank's seeded generator: without it every epoch's workers would draw the same random augmentations.
    """
    return derive_seed(rank_seed, "worker", worker_id, epoch_seed)


def worker_init_fn(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: seed python, numpy and torch in a worker from the rank seed.

    Reads the rank seed :func:`seed_everything` set (inherited by forked workers, or from ``HPCX_RANK_SEED`` in
    spawned ones). Imports neither MPI nor anything that does.
    """
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    rank_seed = _rank_seed if _rank_seed is not None else os.environ.get(RANK_SEED_ENV)
    if rank_seed is None:
        raise UsageError(
            "worker_init_fn needs the rank seed, but seed_everything() was not called in this process",
            hint="call hpcx.runtime.seeds.seed_everything(root_seed, rank) before creating the DataLoader",
        )
    epoch_seed = info.seed if info is not None else 0
    _seed_libraries(worker_seed(int(rank_seed), worker_id, epoch_seed))


def capture_rng_state() -> dict[str, Any]:
    """The state of every generator this process seeds: python ``random``, numpy's global generator, torch's
    CPU generator and the generator of every CUDA device. Plain types and tensors only, so
    ``torch.load(weights_only=True)`` reads it back.
    """
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {"python": [version, list(internal), gauss]}
    np, torch = _import_optional("numpy"), _import_optional("torch")
    if np is not None:
        st = np.random.get_state(legacy=False)
        state["numpy"] = {
            "bit_generator": st["bit_generator"],
            "key": st["state"]["key"].tolist(),
            "pos": int(st["state"]["pos"]),
            "has_gauss": int(st["has_gauss"]),
            "gauss": float(st["gauss"]),
        }
    if torch is not None:
        state["torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng_state` captured. Generators missing from ``state`` are left alone;
    CUDA states are restored for as many devices as both the state and this process have.
    """
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        import numpy as np

        st = state["numpy"]
        key = np.asarray(st["key"], dtype=np.uint32)
        np.random.set_state((st["bit_generator"], key, st["pos"], st["has_gauss"], st["gauss"]))
    if "torch" in state:
        import torch

        torch.set_rng_state(state["torch"].cpu())
        if state.get("cuda") and torch.cuda.is_available():
            for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(cuda_state.cpu(), device)


def record(run_dir: str | os.PathLike[str], info: dict[str, Any]) -> Path:
    """Write ``info`` (what :func:`seed_everything` returned) to ``run_dir/seeds/rank-NNNNN.json`` atomically.

    The login side writes the run's manifest before the job starts; each rank records its seeds next to it.
    """
    rank = _check_seed("info['rank']", info.get("rank"))
    path = seeds_file(run_dir, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, info)
