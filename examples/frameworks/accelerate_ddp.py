"""A Hugging Face accelerate script run with plain `python` (no `accelerate launch`): no line of hpcx in it.

    hpcx submit torch-ddp -N 2 --ntasks-per-node 1 -- python examples/frameworks/accelerate_ddp.py

Accelerator() reads torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), which hpcx.run
sets for every rank of a torch job.
"""

import torch
from accelerate import Accelerator


def main() -> None:
    accelerator = Accelerator(cpu=True)
    total = accelerator.reduce(torch.tensor([float(accelerator.process_index + 1)]), reduction="sum")
    print(
        f"process {accelerator.process_index} of {accelerator.num_processes}: reduced sum {total.item():g}",
        flush=True,
    )
    accelerator.wait_for_everyone()
    accelerator.end_training()  # the process group ends before the interpreter (gloo's threads abort otherwise)


if __name__ == "__main__":
    main()
