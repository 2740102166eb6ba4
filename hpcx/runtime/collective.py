"""One collective wrapper: this rank's place among the job's ranks and the few collectives hpcx's own code needs
(bcast, allgather, barrier, any_true, agree), over an mpi4py communicator, a torch.distributed gloo group, or
this process alone. The HDF5 writer, checkpoints and preemption all talk through it, so each works the same in
a job with MPI, in one with torch.distributed only, and in a single process.

:class:`TorchComm` is the torch.distributed kind with mpi4py's spellings (``Get_rank``, ``Barrier``, ...): the
``ctx.comm`` of a job without MPI. Importing this module imports neither mpi4py nor torch.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hpcx.errors import RuntimeFailure, UsageError


class Collective:
    """This rank's ``rank`` of ``size``, and collectives over ``comm`` (an mpi4py communicator, or another
    :class:`Collective`), or trivial ones for this process alone when ``comm`` is None. ``rank`` and ``size``
    default to the communicator's (alone: 0 of 1)."""

    def __init__(self, comm: Any = None, *, rank: int | None = None, size: int | None = None) -> None:
        self._mpi: Any = None  # an mpi4py communicator (or anything with its object API)
        self._dist: Any = None  # torch.distributed, for a TorchComm
        self._group: Any = None  # the torch.distributed group (None: the default one)
        if isinstance(comm, Collective):
            self._mpi, self._dist, self._group = comm._mpi, comm._dist, comm._group
        elif comm is not None:
            self._mpi = comm
        self.rank = int(rank) if rank is not None else (comm.Get_rank() if comm is not None else 0)
        self.size = int(size) if size is not None else (comm.Get_size() if comm is not None else 1)

    @classmethod
    def of(cls, comm: Any) -> Collective:
        """Over ``comm``; with None, this process alone at the place its launcher gave it (one of many ranks,
        perhaps, that then have no communicator between them)."""
        if comm is not None:
            return cls(comm)
        from hpcx.runtime.rankenv import detect

        env = detect()
        return cls(rank=env.rank, size=env.size)

    @classmethod
    def of_context(cls, ctx: Any) -> Collective:
        """Over ``ctx.comm`` at ``ctx.rank`` of ``ctx.size`` (what :func:`hpcx.runtime.init` returned); None: one
        process."""
        comm = getattr(ctx, "comm", None)
        return cls(comm, rank=int(getattr(ctx, "rank", 0)), size=int(getattr(ctx, "size", 1)))

    @property
    def connected(self) -> bool:
        """Whether the ranks have a communicator between them (False: this process speaks for itself)."""
        return self._mpi is not None or self._dist is not None

    @property
    def is_mpi(self) -> bool:
        return self._mpi is not None

    @property
    def mpi_comm(self) -> Any:
        """The mpi4py communicator (for h5py's mpio driver), or None without MPI."""
        return self._mpi

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """``root``'s ``obj`` on every rank."""
        if self._dist is not None:
            box = [obj]
            self._dist.broadcast_object_list(box, src=root, group=self._group)
            return box[0]
        return obj if self._mpi is None else self._mpi.bcast(obj, root=root)

    def allgather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order."""
        if self._dist is not None:
            out: list[Any] = [None] * self.size
            self._dist.all_gather_object(out, obj, group=self._group)
            return out
        if self._mpi is not None:
            return self._mpi.allgather(obj)
        if self.size > 1:
            raise AssertionError("allgather without a communicator")  # callers check; a bug if reached
        return [obj]

    def barrier(self) -> None:
        if self._dist is not None:
            self._dist.barrier(group=self._group)
        elif self._mpi is not None:
            self._mpi.Barrier()

    def any_true(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (an allreduce; alone, ``flag`` itself)."""
        if not self.connected or self.size == 1:
            return flag
        if self._dist is not None:
            import torch

            t = torch.tensor([1 if flag else 0], dtype=torch.int32)
            self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX, group=self._group)
            return bool(t.item())
        from mpi4py import MPI

        return bool(self._mpi.allreduce(flag, op=MPI.LOR))

    def agree(self, error: BaseException | None, what: str) -> None:
        """Raise on every rank when any rank failed, naming the first failing rank and its error."""
        if not self.connected:
            if error is not None:
                raise error
            return
        errors = self.allgather(None if error is None else f"{type(error).__name__}: {error}")
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if failed:
            rank, message = failed[0]
            if error is not None and rank == self.rank and isinstance(error, (UsageError, RuntimeFailure)):
                raise error
            raise RuntimeFailure(f"{what} failed on rank {rank} of {self.size}: {message}")


class TorchComm(Collective):
    """A :class:`Collective` over a torch.distributed gloo group with the subset of an mpi4py communicator's
    spellings that hpcx uses (Get_rank, Get_size, bcast, allgather, Barrier, Abort, any_true): the communicator
    of a job without MPI."""

    def __init__(self, group: Any = None) -> None:
        import torch.distributed as dist

        super().__init__(rank=dist.get_rank(), size=dist.get_world_size())
        self._dist, self._group = dist, group

    @property
    def group(self) -> Any:
        return self._group

    def Get_rank(self) -> int:  # mpi4py's spelling, so callers need not care which they hold
        return self.rank

    def Get_size(self) -> int:
        return self.size

    def Barrier(self) -> None:
        self.barrier()

    def Abort(self, code: int = 1) -> None:
        """No MPI to take the others down: exit now; srun --kill-on-bad-exit ends the rest of the step."""
        sys.stderr.flush()
        os._exit(code)
