"""A PyTorch Lightning script as Lightning's docs write it for a Slurm cluster: no line of hpcx in it.

    hpcx submit torch-ddp -N 2 --ntasks-per-node 1 -- python examples/frameworks/lightning_ddp.py

Lightning's SLURM cluster environment takes the ranks from Slurm and the rendezvous from MASTER_ADDR and
MASTER_PORT, which hpcx.run sets (an address every node reaches, Slurm's reserved port).
"""

import argparse
import os
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Slow(L.Callback):
    """A step that takes a while, so that a short time limit falls in the middle of training."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer, *args) -> None:
        time.sleep(self.seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--step-sleep", type=float, default=0.0)
    parser.add_argument(
        "--root", default="lightning_logs_root", help="where Lightning keeps its requeue checkpoint"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(256, 8), torch.randn(256, 1))
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        num_nodes=args.nodes,
        strategy="ddp",
        max_steps=args.steps,
        max_epochs=-1,
        default_root_dir=args.root,
        callbacks=[Slow(args.step_sleep)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Tiny(), DataLoader(data, batch_size=32))
    env = trainer.strategy.cluster_environment
    print(
        f"global_rank {trainer.global_rank} of {trainer.world_size} reached step {trainer.global_step} "
        f"(attempt {os.environ.get('SLURM_RESTART_COUNT', '0')}) via {type(env).__name__} at "
        f"{env.main_address}:{env.main_port} (MASTER_ADDR={os.environ.get('MASTER_ADDR')})",
        flush=True,
    )


if __name__ == "__main__":
    main()
