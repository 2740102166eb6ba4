"""Bring up MPI (mpi4py) and torch.distributed together, with a port negotiated over MPI, never guessed.

Without MPI (mpi4py missing, a torchrun launch, or ``HPCX_MPI=0``) torch.distributed comes up alone: rank 0's
address from the step's first node (resolved to an IP here, so no rank depends on a name resolving elsewhere)
and the port Slurm reserved for the step (``SLURM_STEP_RESV_PORTS``, from ``srun --resv-ports=1``). The
context's ``comm`` is then a :class:`~hpcx.runtime.collective.TorchComm`, which offers the few mpi4py calls hpcx
uses over a gloo group, so checkpoints, preemption and the HDF5 writer work the same either way.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hpcx.errors import RuntimeFailure
from hpcx.runtime.collective import TorchComm
from hpcx.runtime.rankenv import detect, per_node_counts

CONNECT_TIMEOUT_S = 15.0  # the rendezvous reachability check: a reachable address answers in milliseconds


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


def mpi_wanted() -> bool:
    """Whether init() uses MPI: ``HPCX_MPI`` (1/0) decides; else yes when mpi4py is installed and the ranks
    were not started by torchrun (whose processes MPI would see as unrelated singletons)."""
    forced = os.environ.get("HPCX_MPI", "").strip().lower()
    if forced in ("1", "yes", "true", "on"):
        return True
    if forced in ("0", "no", "false", "off"):
        return False
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None and detect().launcher != "torchrun"


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeFailure("mpi4py is not installed", hint="pip install 'hpcx[runtime]'") from exc
    return MPI


def _ipv4(host: str) -> str | None:
    """The first IPv4 address ``host`` resolves to here; None when it does not resolve."""
    try:
        # An AF_INET sockaddr is (address, port): its address is always a str.
        return str(socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
    except (OSError, IndexError):
        return None


def _node_address(node: str) -> str | None:
    """An IPv4 address of ``node``: what its name resolves to here, else the NodeAddr Slurm has for it (node
    names need not be in DNS: slurm.conf may give each node its address); None when neither answers."""
    resolved = _ipv4(node)
    if resolved is not None:
        return resolved
    from hpcx import _proc
    from hpcx.errors import CommandError

    try:
        out = _proc.run(["scontrol", "show", "node", "-o", node], timeout_s=30).stdout
    except CommandError:
        return None
    addr = next((w.split("=", 1)[1] for w in out.split() if w.startswith("NodeAddr=")), "")
    if not addr or addr == node:
        return None
    return _ipv4(addr)


def _address_towards(peer: str) -> str:
    """The address this host sends from to reach ``peer``: the kernel's route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((peer, 9))
        return str(probe.getsockname()[0])


def rendezvous_address(nodes: list[str]) -> str:
    """The address the other ranks reach rank 0 on; ``nodes[i]`` is rank i's node, ``nodes[0]`` this one.

    ``HPCX_MASTER_ADDR`` when the site names one; else 127.0.0.1 when every rank shares rank 0's node; else
    the address rank 0's host uses towards the first other node. Never what this host's name resolves to,
    which is 127.0.1.1 on Debian and unreachable from any other node. Raises RuntimeFailure when the other
    node has no address here.
    """
    if os.environ.get("HPCX_MASTER_ADDR"):
        return os.environ["HPCX_MASTER_ADDR"]
    other = next((n for n in nodes if n != nodes[0]), None)
    if other is None:
        return "127.0.0.1"
    peer = _node_address(other)
    if peer is None:
        raise RuntimeFailure(
            f"rank 0 on node {nodes[0]} cannot tell which of its addresses node {other} reaches: {other!r} "
            "resolves to no address here and Slurm names none",
            hint="set HPCX_MASTER_ADDR in the site's environment to an address of the nodes that every node reaches",
        )
    try:
        return _address_towards(peer)
    except OSError as exc:
        raise RuntimeFailure(
            f"rank 0 on node {nodes[0]} has no route to node {other} ({peer}): {exc}",
            hint="set HPCX_MASTER_ADDR in the site's environment to an address of the nodes that every node reaches",
        ) from exc


def _check_own_address(addr: str, node: str) -> None:
    """Rank 0 listens on ``addr``: it must be an address of rank 0's own node (binding tells at once)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((addr, 0))
    except OSError as exc:
        raise RuntimeFailure(
            f"rank 0's rendezvous address {addr} is not an address of its node {node}: {exc}",
            hint="set HPCX_MASTER_ADDR in the site's environment to an address of the nodes that every node "
            "reaches, or let hpcx choose it (unset it)",
        ) from exc


def _check_reachable(comm: Any, addr: str, port: int, node0: str, timeout_s: float) -> None:
    """Every rank connects to rank 0's rendezvous (bounded), and all of them fail together, saying who could
    not reach what, instead of waiting out torch's timeout with a message that names no fix."""
    error = None
    try:
        socket.create_connection((addr, port), timeout=min(timeout_s, CONNECT_TIMEOUT_S)).close()
    except OSError as exc:
        error = f"rank {comm.Get_rank()} on node {detect().node}: {exc or type(exc).__name__}"
    failed = [e for e in comm.allgather(error) if e is not None]
    if failed:
        raise RuntimeFailure(
            f"rank 0's rendezvous address {addr}:{port} (node {node0}) cannot be reached from "
            f"{len(failed)} rank(s): {'; '.join(failed[:4])}{' ...' if len(failed) > 4 else ''}",
            hint="set HPCX_MASTER_ADDR in the site's environment to an address of the nodes that every node "
            "reaches (not a loopback address when ranks span nodes), or let hpcx choose it (unset it)",
        )


def _first_node_address() -> str:
    """An IP address of the step's first node (where rank 0 runs under srun's block distribution)."""
    if os.environ.get("HPCX_MASTER_ADDR"):
        return os.environ["HPCX_MASTER_ADDR"]
    nodelist = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST")
    if not nodelist:
        if detect().size == 1:
            return "127.0.0.1"
        raise RuntimeFailure(
            "without MPI, rank 0's address comes from HPCX_MASTER_ADDR or the Slurm step's node list, and neither "
            "is set",
            hint="export HPCX_MASTER_ADDR (an IP every rank reaches), or run under srun",
        )
    from hpcx import _proc
    from hpcx.errors import CommandError

    try:
        first = _proc.run(["scontrol", "show", "hostnames", nodelist], timeout_s=30).stdout.split()[0]
    except (CommandError, IndexError) as exc:
        raise RuntimeFailure(
            f"cannot expand the node list {nodelist!r}: {exc}", hint="set HPCX_MASTER_ADDR"
        ) from exc
    addr = _node_address(first)
    if addr is None:
        raise RuntimeFailure(
            f"rank 0's node {first!r} does not resolve to an address, and Slurm names none for it",
            hint="set HPCX_MASTER_ADDR in the site's environment to an address the nodes reach",
        )
    return addr


def _reserved_port() -> int:
    """MASTER_PORT, else the first port Slurm reserved for this step (the same on every node of the step)."""
    if os.environ.get("MASTER_PORT"):
        return int(os.environ["MASTER_PORT"])
    ports = os.environ.get("SLURM_STEP_RESV_PORTS", "")
    first = ports.split(",")[0].split("-")[0]
    if first.isdigit():
        return int(first)
    if detect().size == 1:
        from hpcx.runtime.freeport import free_port

        return free_port()
    raise RuntimeFailure(
        "without MPI to broadcast a port, rank 0's port comes from MASTER_PORT or SLURM_STEP_RESV_PORTS, "
        "and neither is set",
        hint="launch with `srun --resv-ports=1` (slurm.conf needs MpiParams=ports=12000-12999), export "
        "MASTER_PORT, or install mpi4py",
    )


def _ranks_on_node_from_env() -> int:
    """Ranks on this node without MPI: torchrun's LOCAL_WORLD_SIZE, else Slurm's tasks-per-node for this node."""
    if os.environ.get("LOCAL_WORLD_SIZE", "").isdigit():
        return int(os.environ["LOCAL_WORLD_SIZE"])
    counts = per_node_counts(os.environ.get("SLURM_STEP_TASKS_PER_NODE", ""))
    node_id = int(os.environ.get("SLURM_NODEID", "0"))
    return counts[node_id] if node_id < len(counts) else 1


def _init_torch_without_mpi(backend: str, timeout_s: float) -> tuple[Any, str, int]:
    import torch.distributed as dist

    env = detect()
    addr, port = _first_node_address(), _reserved_port()
    if env.rank == 0:
        _check_own_address(addr, env.node)
    try:
        dist.init_process_group(
            backend,
            init_method=f"tcp://{addr}:{port}",
            rank=env.rank,
            world_size=env.size,
            timeout=_dt.timedelta(seconds=timeout_s),
        )
    except RuntimeError as exc:  # torch's DistNetworkError/DistStoreError: name the address and the fix
        raise RuntimeFailure(
            f"rank {env.rank} on node {env.node} cannot rendezvous with rank 0 at {addr}:{port}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            hint="set HPCX_MASTER_ADDR in the site's environment to an address of the first node that every node "
            "reaches",
        ) from exc
    group = (
        None if backend == "gloo" else dist.new_group(backend="gloo")
    )  # object collectives need a CPU group
    os.environ.update(MASTER_ADDR=addr, MASTER_PORT=str(port), RANK=str(env.rank), WORLD_SIZE=str(env.size))
    return TorchComm(group), addr, port


def _check_geometry(comm: Any) -> None:
    """Fail loudly when MPI sees a different world than the launcher started (the classic N singletons)."""
    launched = detect()
    if launched.size != comm.Get_size():
        raise RuntimeFailure(
            f"the launcher ({launched.launcher}) started {launched.size} ranks but MPI sees {comm.Get_size()}",
            hint="start ranks with `srun --mpi=pmix` or `mpirun`, not plain srun with a PMI the MPI lacks",
        )


def _open_store(nodes: list[str], size: int, timeout: _dt.timedelta) -> tuple[Any, tuple[Any, Any]]:
    """Rank 0: the rendezvous store and its endpoint (address, port), or None and why not (message, hint)."""
    import torch.distributed as dist

    try:
        addr = rendezvous_address(nodes)
        _check_own_address(addr, nodes[0])
        # Port 0: the OS picks a free port and the store keeps it bound, so no other job can take it.
        store = dist.TCPStore(addr, 0, size, is_master=True, timeout=timeout, wait_for_workers=False)
        return store, (addr, store.port)
    except RuntimeFailure as exc:  # the others learn why, rather than wait for an endpoint
        return None, (exc.message, exc.hint)
    except (RuntimeError, OSError) as exc:
        return None, (
            f"rank 0 on node {nodes[0]} cannot open the rendezvous store: {exc}",
            "set HPCX_MASTER_ADDR in the site's environment to an address of the nodes",
        )


def _init_torch(comm: Any, backend: str, timeout_s: float) -> tuple[str, int]:
    import torch.distributed as dist

    rank, size = comm.Get_rank(), comm.Get_size()
    timeout = _dt.timedelta(seconds=timeout_s)
    nodes = comm.allgather(detect().node)
    store, endpoint = _open_store(nodes, size, timeout) if rank == 0 else (None, None)
    first, second = comm.bcast(endpoint, root=0)
    if isinstance(first, str) and isinstance(second, int):
        addr, port = first, second
    else:
        raise RuntimeFailure(first, hint=second)
    _check_reachable(comm, addr, port, nodes[0], timeout_s)
    if store is None:
        store = dist.TCPStore(addr, port, size, is_master=False, timeout=timeout)
    dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=timeout)
    os.environ.update(MASTER_ADDR=addr, MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size))
    return addr, port


def init(
    *, torch_backend: str | None = "auto", timeout_s: float | None = None, mpi: bool | None = None
) -> Context:
    """Initialise MPI and (unless ``torch_backend`` is None) torch.distributed on every rank.

    ``torch_backend="auto"`` picks NCCL when CUDA is available and gloo otherwise. Every rank must call it.
    ``timeout_s`` bounds the rendezvous and every collective (default $HPCX_INIT_TIMEOUT_S or 120 s), so a rank
    that never arrives ends the job instead of hanging it until the time limit. ``mpi`` (default
    :func:`mpi_wanted`) False brings torch.distributed up alone (see the module docstring).
    """
    _refuse_in_dataloader_worker()
    timeout_s = timeout_s if timeout_s is not None else float(os.environ.get("HPCX_INIT_TIMEOUT_S", 120))
    if not (mpi if mpi is not None else mpi_wanted()):
        return _init_without_mpi(torch_backend, timeout_s)
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    _check_geometry(comm)
    env = detect()
    ctx = Context(comm, comm.Get_rank(), comm.Get_size(), env.local_rank, env.node)
    if torch_backend is not None:
        torch_backend = _torch_backend(torch_backend, env.local_rank, lambda: _ranks_on_node(comm))
        ctx.master_addr, ctx.master_port = _init_torch(comm, torch_backend, timeout_s)
        ctx.torch_backend = torch_backend
    return ctx


def _torch_backend(requested: str, local_rank: int, ranks_on_node: Callable[[], int]) -> str:
    """The backend to use ("auto": NCCL with CUDA, else gloo); for NCCL, this rank's GPU made current."""
    try:
        import torch
    except ImportError as exc:
        raise RuntimeFailure("torch is not installed", hint="pip install 'hpcx[torch]'") from exc
    backend = ("nccl" if torch.cuda.is_available() else "gloo") if requested == "auto" else requested
    if backend == "nccl":
        torch.cuda.set_device(gpu_for_rank(local_rank, ranks_on_node(), torch.cuda.device_count()))
    return backend


def _init_without_mpi(torch_backend: str | None, timeout_s: float) -> Context:
    env = detect()
    if torch_backend is None:
        if env.size > 1:
            raise RuntimeFailure(
                f"{env.size} ranks with neither MPI nor torch.distributed cannot talk to each other",
                hint="install mpi4py (pip install 'hpcx[runtime]') or pass a torch_backend",
            )
        return Context(None, 0, 1, env.local_rank, env.node)
    torch_backend = _torch_backend(torch_backend, env.local_rank, _ranks_on_node_from_env)
    comm, addr, port = _init_torch_without_mpi(torch_backend, timeout_s)
    return Context(comm, env.rank, env.size, env.local_rank, env.node, torch_backend, addr, port)


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
    """Tear down torch.distributed (if it was started), leaving nothing of it to run while Python exits; MPI
    finalises itself at exit.

    Every gloo work enqueued during a backward pass (DDP's bucket all-reduces) carries a copy of the caller's
    Python ``contextvars`` context, and the gloo worker thread that drops the work's last reference takes the
    GIL to free it. ``destroy_process_group()`` waits for the works to complete, not for the workers to let
    go of them, and DDP's reducer keeps the process group, and so its workers, alive after it; a worker that
    frees its last work once the interpreter has begun to finalise is ended with ``pthread_exit``, which
    aborts the rank (SIGABRT) after its training finished. So this waits, without the GIL, until every gloo
    worker thread is idle (waiting for work), for at most ``GLOO_IDLE_LIMIT_S``.
    """
    if ctx.torch_backend is None:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    _wait_for_idle_gloo_threads(GLOO_IDLE_LIMIT_S)


GLOO_WORKER = "pt_gloo_runloop"  # the name torch gives ProcessGroupGloo's worker threads
GLOO_IDLE_LIMIT_S = 5.0


def busy_gloo_threads() -> list[int]:
    """This process's gloo worker threads that are not idle. Idle is blocked waiting for work: a futex
    condition wait without a timeout (/proc/self/task/TID/syscall: 202, op FUTEX_WAIT_BITSET, no timeout).
    Running, waiting for the GIL (a timed wait) or for a lock is busy. Without /proc, none are known."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return []
    busy = []
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/comm", encoding="ascii") as fh:
                if fh.read().strip() != GLOO_WORKER:
                    continue
            with open(f"/proc/self/task/{tid}/syscall", encoding="ascii") as fh:
                call = fh.read().split()
        except (OSError, UnicodeDecodeError):
            continue  # the thread has ended
        idle = len(call) > 4 and call[0] == "202" and int(call[2], 16) & 0x7F == 9 and int(call[4], 16) == 0
        if not idle:
            busy.append(int(tid))
    return busy


def _wait_for_idle_gloo_threads(limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while busy_gloo_threads() and time.monotonic() < deadline:
        time.sleep(0.002)  # without the GIL: a worker that needs it to free its last work gets it


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
        if ctx is not None and ctx.comm is None:
            raise  # one rank without a communicator: nobody to take down, the user's own error propagates
        rank = ctx.rank if ctx else detect().rank
        print(f"hpcx: rank {rank} failed, aborting all ranks: {exc}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        if ctx is not None and isinstance(ctx.comm, TorchComm):
            ctx.comm.Abort(1)
        elif ctx is None and not mpi_wanted():
            os._exit(1)  # init itself failed without MPI: srun --kill-on-bad-exit ends the others
        _mpi().COMM_WORLD.Abort(1)
        raise
    else:
        shutdown(ctx)


# The rendezvous parts that hpcx.run gives a torch program started without hpcx (torchrun's variables).
first_node_address = _first_node_address
reserved_port = _reserved_port
ranks_on_node = _ranks_on_node_from_env
