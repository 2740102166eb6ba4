"""A Hugging Face Trainer script as the Trainer's docs write it (TrainingArguments + Trainer): no line of hpcx in it.

    hpcx submit torch-ddp -N 2 --ntasks-per-node 1 -- python examples/frameworks/hf_trainer_ddp.py

The Trainer (through accelerate) starts DDP from torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT), which hpcx.run sets for every rank of a torch job. Nothing is downloaded: a one-weight model on
two numbers, on CPU with gloo.

Why the final weight proves DDP: the data are the two numbers 1 and 3, one per process and step, and the loss is
``weight * x``, so a process's own gradient is 1 or 3 and DDP's average is 2. Plain SGD from 0 then ends at
``-lr * steps * 2`` on every process; a process training alone sums an odd number of odd gradients (steps is
odd), which never reaches that even total.
"""

import argparse
import os

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub calls: the model and the data are made here
VALUES = (1.0, 3.0)


class TwoNumbers(Dataset):
    def __len__(self) -> int:
        return len(VALUES)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": torch.tensor([VALUES[index]])}


class OneWeight(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": (self.weight * x).mean()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output-dir", default=os.getcwd())
    parser.add_argument(
        "--steps", type=int, default=5, help="odd, so that only averaged gradients give the total"
    )
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args()
    training = TrainingArguments(
        output_dir=args.output_dir,
        use_cpu=True,
        ddp_backend="gloo",
        report_to="none",
        max_steps=args.steps,
        per_device_train_batch_size=1,
        optim="sgd",
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,  # no clipping: the gradient is the plain average
        ddp_find_unused_parameters=False,
        save_strategy="no",
        disable_tqdm=True,
    )
    model = OneWeight()
    trainer = Trainer(model=model, args=training, train_dataset=TwoNumbers())
    trainer.train()
    expected = -args.lr * args.steps * sum(VALUES) / len(VALUES)
    print(
        f"process {training.process_index} of {training.world_size}: weight {model.weight.item():g} "
        f"after {trainer.state.global_step} steps (DDP average gives {expected:g}) "
        f"via {os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}",
        flush=True,
    )


if __name__ == "__main__":
    main()
