"""Bring up MPI (mpi4py) and torch.distributed together, with a port negotiated over MPI, never guessed."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hpcx.errors import RuntimeFailure
from hpcx.runtime.rankenv import detect


@dataclass
class Context:
    """What init() brought up: the MPI communicator, this rank's place, and the torch backend (if any)."""

    comm: Any
    rank: int
    size: int
    local_rank: int
    node: str
    torch_backend: str | None = None
    master_addr: str | None = None
    master_port: int | None = None


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeFailure("mpi4py is not installed", hint="pip install 'hpcx[runtime]'") from exc
    return MPI


def _master_addr() -> str:
    """The address other ranks reach rank 0 on: HPCX_MASTER_ADDR, else what this host's name resolves to."""
    if os.environ.get("HPCX_MASTER_ADDR"):
        return os.environ["HPCX_MASTER_ADDR"]
    return socket.gethostbyname(socket.gethostname())


def _check_geometry(comm: Any) -> None:
    """Fail loudly when MPI sees a different world than the launcher started (the classic N singletons)."""
    launched = detect()
    if launched.size != comm.Get_size():
        raise RuntimeFailure(
            f"the launcher ({launched.launcher}) started {launched.size} ranks but MPI sees {comm.Get_size()}",
            hint="start ranks with `srun --mpi=pmix` or `mpirun`, not plain srun with a PMI the MPI lacks",
        )


def _init_torch(comm: Any, backend: str, timeout_s: float) -> tuple[str, int]:
    import torch.distributed as dist

    rank, size = comm.Get_rank(), comm.Get_size()
    timeout = _dt.timedelta(seconds=timeout_s)
    store = None
    if rank == 0:
        addr = _master_addr()
        # Port 0: the OS picks a free port and the store keeps it bound, so no other job can take it.
        store = dist.TCPStore(addr, 0, size, is_master=True, timeout=timeout, wait_for_workers=False)
        endpoint = (addr, store.port)
    else:
        endpoint = None
    addr, port = comm.bcast(endpoint, root=0)
    if store is None:
        store = dist.TCPStore(addr, port, size, is_master=False, timeout=timeout)
    dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=timeout)
    os.environ.update(MASTER_ADDR=addr, MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size))
    return addr, port


def init(*, torch_backend: str | None = "auto", timeout_s: float | None = None) -> Context:
    """Initialise MPI and (unless ``torch_backend`` is None) torch.distributed on every rank.

    ``torch_backend="auto"`` picks NCCL when CUDA is available and gloo otherwise. Every rank must call it.
    ``timeout_s`` bounds the rendezvous and every collective (default $HPCX_INIT_TIMEOUT_S or 120 s), so a rank
    that never arrives ends the job instead of hanging it until the time limit.
    """
    _refuse_in_dataloader_worker()
    timeout_s = timeout_s if timeout_s is not None else float(os.environ.get("HPCX_INIT_TIMEOUT_S", 120))
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    _check_geometry(comm)
    env = detect()
    ctx = Context(comm, comm.Get_rank(), comm.Get_size(), env.local_rank, env.node)
    if torch_backend is not None:
        try:
            import torch
        except ImportError as exc:
            raise RuntimeFailure("torch is not installed", hint="pip install 'hpcx[torch]'") from exc
        if torch_backend == "auto":
            torch_backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch_backend == "nccl":
            torch.cuda.set_device(
                gpu_for_rank(env.local_rank, _ranks_on_node(comm), torch.cuda.device_count())
            )
        ctx.master_addr, ctx.master_port = _init_torch(comm, torch_backend, timeout_s)
        ctx.torch_backend = torch_backend
    return ctx


def _ranks_on_node(comm: Any) -> int:
    from mpi4py import MPI

    return comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()


def gpu_for_rank(local_rank: int, ranks_on_node: int, visible_gpus: int) -> int:
    """The GPU a rank drives: its local rank, when each rank on the node can have its own GPU.

    Raises RuntimeFailure saying what to change in the request when the node has fewer GPUs than ranks.
    """
    if visible_gpus == 0:
        raise RuntimeFailure(
            f"NCCL needs a GPU but rank {local_rank} on this node sees none (CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!r})",
            hint="ask for GPUs (--gpus-per-node N) or use torch_backend='gloo'",
        )
    if ranks_on_node > visible_gpus:
        raise RuntimeFailure(
            f"{ranks_on_node} ranks on this node but only {visible_gpus} GPU(s) visible: NCCL needs one GPU per rank",
            hint=f"use --ntasks-per-node {visible_gpus} or --gpus-per-node {ranks_on_node}",
        )
    return local_rank


def _refuse_in_dataloader_worker() -> None:
    """MPI must never start inside a forked DataLoader worker (it would join as a stray rank or crash)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        info = torch.utils.data.get_worker_info()
        if info is not None:
            raise RuntimeFailure(
                f"hpcx.runtime.init() called in DataLoader worker {info.id}",
                hint="initialise in the main process; seed workers with hpcx.runtime.seeds.worker_init_fn",
            )


def shutdown(ctx: Context) -> None:
    """Tear down torch.distributed (if it was started); MPI finalises itself at exit."""
    if ctx.torch_backend is not None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def session(**kwargs: Any) -> Iterator[Context]:
    """init() ... shutdown(), and if any rank raises, abort the whole job instead of leaving the others hanging."""
    ctx = None
    try:
        ctx = init(**kwargs)
        yield ctx
    except BaseException as exc:
        if isinstance(exc, SystemExit) and not exc.code:
            raise
        rank = ctx.rank if ctx else detect().rank
        print(f"hpcx: rank {rank} failed, aborting all ranks: {exc}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        _mpi().COMM_WORLD.Abort(1)
        raise
    else:
        shutdown(ctx)
