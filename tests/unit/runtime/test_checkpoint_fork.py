"""A process forked after a checkpoint save (multiprocessing's fork start method, a data loader's workers) can save
checkpoints of its own: the parent's hash thread is not copied into it, so it must not wait on that thread."""

import subprocess
import sys
import textwrap

CHILD_SAVES = textwrap.dedent(
    """
    import os, sys, tempfile, time
    import torch
    from hpcx.runtime.checkpoint import Checkpointer

    torch.set_num_threads(1)
    root = tempfile.mkdtemp()
    big = {"w": torch.zeros(1 << 20)}  # 4 MiB: hashed in the second thread
    Checkpointer(root + "/parent").save(1, big)
    pid = os.fork()
    if pid == 0:
        Checkpointer(root + "/child").save(1, big)
        os._exit(0 if os.path.isdir(root + "/child") else 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print("child exit", os.waitstatus_to_exitcode(status))
            sys.exit(0)
        time.sleep(0.1)
    os.kill(pid, 9)
    print("child still waiting after 30 s")
    """
)


def test_a_forked_child_saves_a_large_checkpoint():
    proc = subprocess.run([sys.executable, "-c", CHILD_SAVES], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "child exit 0", proc.stdout + proc.stderr
