"""A synchronous hpcx checkpoint save against a plain ``torch.save`` + fsync of the same state to the same disk.

metric save_vs_torch_save = median wall time of ``Checkpointer(root, keep=3).save(step, state)`` (one process:
replicated.pt + rank-00000.pt with the RNG states, every file fsynced and hashed with sha256, the manifest, the
directory renamed and fsynced, ``latest`` replaced, rotation) / median wall time of the faster plain save:
``torch.save(state, path)`` or ``torch.save(state, open(path, "wb"))``, then ``os.fsync``. Target <= 1.15.

The state is 200 MiB (40 MiB with --quick): four large float32 tensors plus a few small ones and plain values,
like a model's state_dict. Cases alternate (hpcx, baseline, baseline, ...) after a warm-up round, in the same
temporary directory (HPCX_BENCH_DIR, default the system temp directory); the value is the ratio of medians.
hpcx deletes the steps that rotation drops in a thread after save() returns; the benchmark waits for that
(untimed) before the next case runs, so it does not slow the baseline, and reports its time separately. For
the same reason the plain file is removed (untimed) before each plain save: torch.save over an existing file
would free the old file's blocks (O_TRUNC) inside the timed call.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

NAME = "save_vs_torch_save"
TARGET = 1.15


def make_state(total_mb: int) -> dict[str, Any]:
    """A state_dict-like dict of ``total_mb`` MiB: four big float32 tensors, some small ones, plain values."""
    import torch

    gen = torch.Generator().manual_seed(0)
    per_tensor = total_mb * 2**20 // 4 // 4
    state: dict[str, Any] = {f"layer{i}.weight": torch.randn(per_tensor, generator=gen) for i in range(4)}
    state.update({f"layer{i}.bias": torch.randn(1024, generator=gen) for i in range(4)})
    state["meta"] = {"epoch": 3, "position": 12345, "lr": 1e-3, "name": "bench"}
    return state


def state_bytes(state: dict[str, Any]) -> int:
    return sum(v.numel() * v.element_size() for v in state.values() if hasattr(v, "numel"))


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run(quick: bool) -> list[dict[str, Any]]:
    try:
        import torch
    except ImportError as exc:
        raise c.Skip(f"torch is not installed ({exc}): pip install -e '.[torch]'") from exc
    from hpcx.runtime.checkpoint import Checkpointer

    total_mb, repeats = (40, 5) if quick else (200, 15)
    state = make_state(total_mb)
    work = Path(tempfile.mkdtemp(prefix="hpcx-bench-save-", dir=os.environ.get("HPCX_BENCH_DIR")))
    try:
        cp = Checkpointer(work / "ckpt", keep=3)
        steps = iter(range(1, 1_000_000))
        plain_path = work / "plain.pt"
        plain_file = work / "plain-file.pt"

        deletes: list[float] = []

        def hpcx_save() -> None:
            cp.save(next(steps), state)

        def hpcx_rotation_done() -> None:
            # Rank 0 deletes rotated steps in a thread after save() returns (in training that overlaps the
            # next steps). Waiting here, untimed, keeps that disk work out of the baseline's timings.
            t0 = time.perf_counter()
            cp.wait()
            deletes.append(time.perf_counter() - t0)

        def remove_plain() -> None:
            # Untimed, like hpcx's deletion: overwriting in place would free the old file's blocks inside the
            # timed torch.save (O_TRUNC), which costs about as much as hpcx's rotation delete.
            plain_path.unlink(missing_ok=True)
            plain_file.unlink(missing_ok=True)

        def torch_save_path() -> None:
            torch.save(state, plain_path)
            fsync_path(plain_path)

        def torch_save_file() -> None:
            with open(plain_file, "wb") as fh:
                torch.save(state, fh)
                fh.flush()
                os.fsync(fh.fileno())

        times: dict[str, list[float]] = {"hpcx": [], "torch_path": [], "torch_file": []}
        cases = {"hpcx": hpcx_save, "torch_path": torch_save_path, "torch_file": torch_save_file}
        for i in range(repeats + 1):  # round 0 is the warm-up
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                if i:
                    times[name].append(time.perf_counter() - t0)
                if name == "hpcx":
                    hpcx_rotation_done()
                else:
                    remove_plain()
        check = cp.load(restore=False)
        if check is None or not torch.equal(check.state["layer0.weight"], state["layer0.weight"]):
            raise RuntimeError("the hpcx checkpoint did not load back what was saved")
        written_mb = sum(p.stat().st_size for p in cp.save(0, state).iterdir()) / 2**20
        torch_save_path()
        blob = plain_path.read_bytes()
        hash_s = c.repeat(lambda: hashlib.sha256(blob).digest(), 3, warmup=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {name: c.stats(samples)["median"] for name, samples in times.items()}
    baseline = min(("torch_path", "torch_file"), key=med.__getitem__)
    base_desc = {
        "torch_path": "torch.save(state, path) + os.fsync",
        "torch_file": 'torch.save(state, open(path, "wb")) + os.fsync',
    }
    mb = round(state_bytes(state) / 2**20)
    return [
        c.result(
            NAME,
            round(med["hpcx"] / med[baseline], 3),
            "ratio",
            f"Checkpointer.save (sync, sha256, manifest, latest, keep=3) / {base_desc[baseline]}, {mb} MiB state "
            "(medians; baseline: the faster plain variant)",
            TARGET,
        ),
        c.timing_row(
            "hpcx_save_ms", times["hpcx"], "Checkpointer(root, keep=3).save(step, state), one process"
        ),
        c.timing_row("torch_save_path_fsync_ms", times["torch_path"], base_desc["torch_path"]),
        c.timing_row("torch_save_file_fsync_ms", times["torch_file"], base_desc["torch_file"]),
        c.timing_row(
            "rotation_delete_ms",
            deletes[3:],  # keep=3: the 4th save (3rd timed round) is the first that drops a step
            f"deleting the step rotation dropped ({mb} MiB), in a thread after save() returned: not in hpcx_save_ms",
        ),
        c.timing_row(
            "sha256_ms", hash_s, f"hashlib.sha256 of the {mb} MiB file in memory (the cost hpcx hides)"
        ),
        c.result("state_mb", mb, "MiB", "tensor bytes in the saved state"),
        c.result("hpcx_step_dir_mb", round(written_mb, 1), "MiB", "bytes in one step directory (all files)"),
    ]


if __name__ == "__main__":
    sys.exit(c.main(NAME, run, __doc__))
