"""I/O cross-check on the real test cluster: a plain Python program (it imports nothing of hpcx) reads a 128 MiB
file made before the job and dropped from the page cache, writes a 256 MiB checkpoint with fsync, and exits.
hpcx's bytes for its rank are within 5% of the known sizes and of sacct's TotalDiskRead/TotalDiskWrite for the
step that ran it (the fs/disk entries of TRESUsageInTot/TRESUsageOutTot in Slurm 22.05's sacct): `hpcx submit
serial` runs the program in the batch step, whose Slurm figures are the same kernel counters (jobacct_gather/linux
sums rchar and wchar of /proc/PID/io over the step's processes)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm
MIB = 2**20
READ_MIB, WRITE_MIB = 128, 256
# Slurm's jobacct_gather polls the step every JobAcctGatherFrequency (5 s here) and keeps what its last poll
# saw: I/O after that poll, or a step shorter than one period (this one's I/O takes about a second), is lost to
# sacct. The program stays HOLD_S after its I/O so that a poll sees all of it; hpcx counts it either way (its
# sample after the reap, which the unit tests check on a program that exits right after writing).
HOLD_S = 12
PROGRAM = """\
import os, sys, time
src, dst, hold_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
chunk = 8 << 20
fd = os.open(src, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # read from the storage, not the page cache
got = 0
while True:
    block = os.read(fd, chunk)
    if not block:
        break
    got += len(block)
os.close(fd)
buf = memoryview(b"\\xa5" * chunk)
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for _ in range({write_mib} * 2**20 // chunk):
    done = 0
    while done < chunk:
        done += os.write(fd, buf[done:])
os.fsync(fd)
os.close(fd)
print("read", got, "wrote", os.path.getsize(dst), flush=True)
time.sleep(hold_s)
"""


def _dropped_file(path: Path, mib: int) -> None:
    """A file of ``mib`` MiB on disk and out of the page cache, so the job's read reaches the storage."""
    block = os.urandom(MIB)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(mib):
            os.write(fd, block)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _storage_counted(where: Path) -> bool:
    """Whether the filesystem under ``where`` counts the storage layer's bytes (a block device does; tmpfs and
    some network filesystems do not): 4 MiB written and fsynced here must show in our own write_bytes."""
    probe = where / "probe.bin"
    before = _own_io()["write_bytes"]
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"\0" * 4 * MIB)
        os.fsync(fd)
    finally:
        os.close(fd)
        probe.unlink()
    return _own_io()["write_bytes"] - before >= 4 * MIB


def _own_io() -> dict[str, int]:
    text = Path("/proc/self/io").read_text()
    return {k: int(v) for k, v in (line.split(":") for line in text.splitlines())}


def _sacct_disk(step: str, timeout_s: float = 90) -> tuple[int, int]:
    """Slurm's TotalDiskRead and TotalDiskWrite of job step ``step`` (e.g. ``42.batch``) in bytes, once
    slurmdbd has them: in Slurm 22.05's sacct, the ``fs/disk`` entries of TRESUsageInTot and TRESUsageOutTot
    (there is no TotalDiskRead field; MaxDiskRead is the largest task's, AveDiskRead the mean)."""
    job = step.split(".")[0]
    fields = "JobID,TRESUsageInTot,TRESUsageOutTot"
    argv = ["sacct", "-j", job, "--noheader", "--parsable2", "--noconvert", "-o", fields]
    deadline = time.monotonic() + timeout_s
    out = ""
    while time.monotonic() < deadline:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines():
            jobid, tres_in, tres_out = line.split("|")
            disk = _fs_disk(tres_in), _fs_disk(tres_out)
            if jobid == step and None not in disk:
                return disk  # type: ignore[return-value]
        time.sleep(2)
    raise AssertionError(f"sacct has no fs/disk usage for {step} after {timeout_s} s:\n{out}")


def _fs_disk(tres: str) -> int | None:
    """The ``fs/disk`` bytes of a TRES list as sacct prints it (``cpu=00:00:01,fs/disk=3206342,mem=...``)."""
    for item in tres.split(","):
        name, _, value = item.partition("=")
        if name == "fs/disk" and value:
            return _bytes(value)
    return None


def _bytes(text: str) -> int:
    """sacct's figure in bytes (--noconvert prints plain bytes; a unit suffix is read as binary units)."""
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:].upper(), 1)
    return round(float(text.rstrip("KMGTkmgt")) * scale)


def test_every_byte_of_a_plain_program_agrees_with_sacct_and_the_known_sizes(slurm_hpcx, runs_root):
    src, dst, program = runs_root / "input.bin", runs_root / "checkpoint.pt", runs_root / "io_program.py"
    program.write_text(PROGRAM.format(write_mib=WRITE_MIB))
    _dropped_file(src, READ_MIB)
    storage = _storage_counted(runs_root)
    doc = slurm_hpcx.json(
        "submit", "serial", "--mem", "1000", "--", "python", str(program), str(src), str(dst), str(HOLD_S)
    )
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=240)
    logs = slurm_hpcx("logs", doc["run_id"]).stdout
    assert (row["state"], row["exit_code"]) == ("COMPLETED", 0), logs
    assert f"read {READ_MIB * MIB} wrote {WRITE_MIB * MIB}" in logs, logs

    report = slurm_hpcx.json("report", doc["run_id"], "--no-html")["report"]
    (rank,) = report["ranks"]
    io = rank["io"]
    assert io["to_exit"], io  # counted up to the exit: the sample after the reap
    ours_read, ours_write = io["read_bytes"], io["write_bytes"]
    sacct_read, sacct_write = _sacct_disk(f"{doc['job_id']}.batch")
    print(
        f"hpcx: read {ours_read} B in {io['read_calls']} calls, wrote {ours_write} B in {io['write_calls']} "
        f"calls; storage read {io['storage_read_bytes']} B, written {io['storage_write_bytes']} B "
        f"(counted by this filesystem: {storage}); sacct {doc['job_id']}.batch: TotalDiskRead {sacct_read} B, "
        f"TotalDiskWrite {sacct_write} B; known: read {READ_MIB * MIB} B, written {WRITE_MIB * MIB} B"
    )
    assert ours_read == pytest.approx(READ_MIB * MIB, rel=0.05), io
    assert ours_write == pytest.approx(WRITE_MIB * MIB, rel=0.05), io
    # Slurm's step also holds the batch shell and hpcx.run itself (its imports, its records): a little more.
    assert ours_read == pytest.approx(sacct_read, rel=0.05), (io, sacct_read)
    assert ours_write == pytest.approx(sacct_write, rel=0.05), (io, sacct_write)
    assert io["write_calls"] >= WRITE_MIB // 8 and io["read_calls"] >= READ_MIB // 8, io
    if storage:
        assert io["storage_read_bytes"] == pytest.approx(READ_MIB * MIB, rel=0.05), io
        assert io["storage_write_bytes"] == pytest.approx(WRITE_MIB * MIB, rel=0.05), io

    process = report["io"]["process"]
    assert process["total"]["write_bytes"] == ours_write and process["partial"] == []
    assert process["ranks"][0]["write_mb_per_s"] == pytest.approx(ours_write / MIB / rank["wall_s"])
    text = slurm_hpcx("report", doc["run_id"], "--no-html").stdout
    assert (
        "  I/O of the ranks' processes: read 1" in text and "(every read()/write(), /proc counters)" in text
    )


CHECKPOINTS = """\
import os, torch
from hpcx.runtime.checkpoint import Checkpointer
ckpt = Checkpointer(os.path.join(os.environ["HPCX_RUN_DIR"], "checkpoints"))
for step in (1, 2):
    ckpt.save(step, {"w": torch.full((16 * 2**20,), float(step))})  # 64 MiB of float32 each
"""


def test_checkpoint_writes_show_as_such_among_the_ranks_writes(slurm_hpcx, runs_root):
    """A job that checkpoints with hpcx.runtime.checkpoint: the report names its steps, when each was committed
    (within the rank's life), their bytes, and their share of the rank's writes."""
    program = runs_root / "checkpoints.py"
    program.write_text(CHECKPOINTS)
    doc = slurm_hpcx.json("submit", "serial", "--mem", "1500", "--", "python", str(program))
    row = slurm_hpcx.wait_finished(doc["run_id"], timeout_s=240)
    assert (row["state"], row["exit_code"]) == ("COMPLETED", 0), slurm_hpcx("logs", doc["run_id"]).stdout

    report = slurm_hpcx.json("report", doc["run_id"], "--no-html")["report"]
    (rank,) = report["ranks"]
    ckpt, process = report["io"]["checkpoints"], report["io"]["process"]
    assert [s["step"] for s in ckpt["steps"]] == [1, 2], ckpt
    assert all(64 * MIB <= s["bytes"] < 65 * MIB and s["ranks"] == {"0": s["bytes"]} for s in ckpt["steps"])
    assert all(rank["start_t"] <= s["t"] <= rank["start_t"] + rank["wall_s"] for s in ckpt["steps"]), ckpt
    written = process["ranks"][0]["write_bytes"]
    assert process["ranks"][0]["checkpoint_bytes"] == ckpt["bytes"] <= written, (ckpt, process)
    print(f"checkpoints {ckpt['bytes']} B of {written} B written by the rank")
    text = slurm_hpcx("report", doc["run_id"], "--no-html").stdout
    assert "    checkpoints: 128.0 MiB in 2 committed steps on disk, " in text, text
