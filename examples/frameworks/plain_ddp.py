"""A DDP training script as torch's own tutorial writes it for torchrun: no line of hpcx in it.

    hpcx submit torch-ddp -N 2 --ntasks-per-node 1 -- python examples/frameworks/plain_ddp.py --steps 20

init_process_group reads RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT from the environment (env://), which
hpcx.run sets for every rank of a torch job as torchrun would.
"""

import argparse
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    dist.init_process_group("gloo")  # env://
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ["LOCAL_RANK"])
    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total)
    print(f"rank {rank} of {world} (local {local}): all-reduced sum {total.item():g}", flush=True)
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    start = time.monotonic()
    for step in range(args.steps):
        x = torch.randn(32, 8)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:
            since = time.monotonic() - start
            print(f"rank {rank}: first step after {since:.3f} s (at {time.time():.3f})", flush=True)
    print(f"rank {rank}: done, loss {loss.item():.6f}", flush=True)
    dist.barrier()  # no rank tears gloo down while another still talks to it (an abort at exit otherwise)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
