"""A toy training loop for examples/tune/study.yaml: its loss curve depends on the learning rate, the width and
the optimizer, the first steps predicting the final value only partly. Logs the loss with hpcx.runtime.log and
ends early when its study's stopping rule asks (preempt.should_stop sees the stop request)."""

import argparse
import math
import random
import sys
import time

from hpcx import runtime
from hpcx.runtime import preempt

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--width", type=int, required=True)
parser.add_argument("--optimizer", choices=["adam", "sgd"], required=True)
parser.add_argument("--steps", type=int, default=81)
parser.add_argument("--step-seconds", type=float, default=0.05)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

rng = random.Random(args.seed)
best_lr = 3e-3 if args.optimizer == "adam" else 3e-2
floor = 0.05 + 0.4 * abs(math.log10(args.lr / best_lr)) + 8.0 / args.width
speed = 0.08 if args.optimizer == "adam" else 0.03  # sgd starts slower and may still end better
state = preempt.install()
for step in range(1, args.steps + 1):
    time.sleep(args.step_seconds)
    loss = floor + 2.0 * math.exp(-speed * step) + rng.gauss(0, 0.01)
    runtime.log(step, loss=loss)
    if preempt.should_stop(state, step=step):
        sys.exit(0)
