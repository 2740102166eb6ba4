"""A toy training task for sweeps: fits y = 3x + 1 with SGD, prints the final loss and logs it
(``hpcx.runtime.log``), so ``hpcx compare --sweep RUN --metric loss`` compares the sweep's groups.

Deterministic for a given --seed; --lr 0.1 with --model small diverges on purpose, so a sweep has a failure to
retry. Reads its parameters from the command line (hpcx fills {lr}, {seed}, ...) and from $HPCX_PARAM_*.
"""

import argparse
import math
import os
import random
import sys

from hpcx.runtime import log


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--model", choices=["small", "large"], default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    w, b = rng.gauss(0, 1), rng.gauss(0, 1)
    scale = 10.0 if args.model == "small" else 1.0  # the "small" model sees unnormalised inputs
    for _ in range(args.steps):
        x = rng.uniform(-1, 1) * scale
        err = (w * x + b) - (3 * x + 1)
        w -= args.lr * err * x
        b -= args.lr * err
        if not math.isfinite(w):
            print(f"diverged: lr={args.lr} model={args.model} seed={args.seed}", file=sys.stderr)
            return 1
    loss = sum(((w * x + b) - (3 * x + 1)) ** 2 for x in (i / 10 for i in range(-10, 11))) / 21
    log(args.steps, loss=loss)  # outside an hpcx run this does nothing
    print(
        f"task={os.environ.get('HPCX_TASK_ID')} lr={args.lr} model={args.model} seed={args.seed} loss={loss:.3g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
