"""The sampler's sources against real files and processes: a powercap tree the test writes (reading and
wrap-around), a denied energy_uj, NVML absent, /proc/net/dev, and ``python -m hpcx.run`` leaving records
that a report reads after a normal exit and after ``kill -9``."""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from hpcx.profiling.sources import (
    Network,
    NodeMemory,
    Nvml,
    ProcessTree,
    Rapl,
    SourceUnavailable,
    children_files_work,
    parse_net_dev,
    tree_pids,
)
from hpcx.reports.ranks import summarize_rank, summarize_ranks
from hpcx.rundir.records import node_series, read_nodes, read_records

MAX_UJ = 1_000_000


def _zone(root: Path, key: str, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    zone = root / key
    zone.mkdir(parents=True)
    (zone / "name").write_text(name + "\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    _set(zone, energy_uj)
    return zone


def _set(zone: Path, energy_uj: int) -> None:
    """Replace the counter atomically, as the kernel's file never shows a half-written number."""
    tmp = zone / "energy_uj.tmp"
    tmp.write_text(f"{energy_uj}\n")
    os.replace(tmp, zone / "energy_uj")


def test_rapl_sums_packages_and_dram_and_survives_a_wrap(tmp_path):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", 900_000)
    dram = _zone(tmp_path, "intel-rapl:0:0", "dram", 10, max_uj=10**9)
    _zone(tmp_path, "intel-rapl-mmio:0", "package-0", 5)  # the same package over MMIO: never counted twice
    rapl = Rapl(str(tmp_path))
    desc = rapl.open()
    assert desc["zones"] == {"intel-rapl:0": "package-0", "intel-rapl:0:0": "dram"}
    _set(pkg, 950_000)
    assert rapl.read(edge=False) is None  # read every interval, reported only at edges
    _set(pkg, 100_000)  # past max_energy_range_uj: 950000 -> 1000000 -> 0 -> 100000 is 150000 uJ more
    _set(dram, 2_000_010)
    first = rapl.read(edge=True)
    assert first["package_j"] == pytest.approx(0.2) and first["wraps"] == 1
    assert first["dram_j"] == pytest.approx(2.0)
    assert first["energy_j"] == {"intel-rapl:0": pytest.approx(0.2), "intel-rapl:0:0": pytest.approx(2.0)}


def test_rapl_missing_is_unavailable_with_the_reason(tmp_path):
    with pytest.raises(SourceUnavailable, match="no RAPL zones under"):
        Rapl(str(tmp_path)).open()


def test_rapl_permission_denied_is_unavailable_with_the_reason():
    root = Path(tempfile.mkdtemp(prefix="hpcx-powercap-"))  # pytest's tmp_path is private to root
    try:
        root.chmod(0o755)
        (_zone(root, "intel-rapl:0", "package-0", 1) / "energy_uj").chmod(0o400)
        message = _open_as_nobody(root) if os.geteuid() == 0 else _open_message(root)
    finally:
        shutil.rmtree(root)
    assert "permission denied" in message and "root-only since Linux 5.10" in message, message


def _open_message(root: Path) -> str:
    try:
        Rapl(str(root)).open()
    except SourceUnavailable as exc:
        return str(exc)
    return "opened"


def _open_as_nobody(root: Path) -> str:
    """As root the kernel grants every read: drop to nobody in a forked child, as a user's job runs."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_fd, _open_message(root).encode())
        except BaseException as exc:  # the child must never return into pytest
            os.write(write_fd, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    return os.read(read_fd, 4096).decode()


def test_nvml_without_the_library_is_unavailable_with_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with pytest.raises(SourceUnavailable, match="nvidia-ml-py is not installed"):
        Nvml().open()


@pytest.mark.skipif(
    ctypes.util.find_library("nvidia-ml") is not None, reason="this node has an NVIDIA driver"
)
def test_nvml_without_a_driver_is_unavailable_with_the_reason():
    with pytest.raises(SourceUnavailable, match="NVML did not start"):
        Nvml().open()


def test_without_psutil_the_rank_and_node_memory_are_unavailable_not_a_crash(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)
    for source in (ProcessTree(os.getpid()), NodeMemory()):
        with pytest.raises(SourceUnavailable, match="psutil is not installed"):
            source.open()


def test_net_dev_leaves_out_loopback_unless_it_is_all_there_is(tmp_path):
    head = "Inter-|   Receive ...\n face |bytes packets ...\n"
    lo = "    lo: 100 1 0 0 0 0 0 0 200 2 0 0 0 0 0 0\n"
    eth = "  eth0: 1000 5 0 0 0 0 0 0 3000 7 0 0 0 0 0 0\n"
    assert parse_net_dev(head + lo + eth) == {"eth0": (1000, 3000)}
    assert parse_net_dev(head + lo) == {"lo": (100, 200)}
    (tmp_path / "dev").write_text(head + lo + eth)
    net = Network(str(tmp_path / "dev"))
    assert net.open()["interfaces"] == ["eth0"]
    assert net.read(edge=False) == {"rx_bytes": 1000, "tx_bytes": 3000}


@pytest.mark.parametrize("children_files", [True, False], ids=["children-files", "proc-scan"])
def test_process_tree_counts_children(children_files):
    if children_files and not children_files_work():
        pytest.skip("this kernel has no /proc/PID/task/TID/children")
    child = subprocess.Popen([sys.executable, "-c", "import time; x = b'1' * (50 * 2**20); time.sleep(30)"])
    try:
        tree = ProcessTree(os.getpid(), children_files=children_files)
        assert tree.open()["tree"] == ("task children files" if children_files else "scan of /proc")
        deadline = time.monotonic() + 10
        while (usage := tree.read(edge=False))["rss_mb"] < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert usage["rss_mb"] >= 50 and usage["threads"] >= 2 and usage["cpu_s"] > 0
    finally:
        child.kill()
        child.wait()


def _wait_for(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def test_tree_from_children_files_follows_new_and_reaped_grandchildren_like_the_scan(tmp_path):
    if not children_files_work():
        pytest.skip("this kernel has no /proc/PID/task/TID/children")
    # A child whose worker thread (not its main thread) starts a grandchild, as a DataLoader or a subprocess
    # call from a thread does; the grandchild's pid arrives in a file.
    pidfile = tmp_path / "grandchild"
    code = (
        "import subprocess, sys, threading, time, pathlib\n"
        "def start():\n"
        "    p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        f"    pathlib.Path({str(pidfile)!r}).write_text(str(p.pid))\n"
        "    p.wait()\n"
        "threading.Thread(target=start).start()\ntime.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        assert _wait_for(lambda: pidfile.exists() and pidfile.read_text()), "no grandchild within 10 s"
        grandchild = int(pidfile.read_text())
        scan = {p.pid for p in psutil.Process(child.pid).children(recursive=True)}
        assert set(tree_pids(child.pid)) == {child.pid, grandchild} == {child.pid, *scan}
        fast, slow = ProcessTree(child.pid, children_files=True), ProcessTree(child.pid, children_files=False)
        fast.open(), slow.open()
        assert fast.read(False)["threads"] == slow.read(False)["threads"] >= 3
        os.kill(grandchild, signal.SIGKILL)  # the child's thread reaps it: it leaves the tree
        assert _wait_for(lambda: tree_pids(child.pid) == [child.pid])
        assert fast.read(False)["threads"] == slow.read(False)["threads"] == 1  # the thread has ended
    finally:
        child.kill()
        child.wait(timeout=10)
    gone = ProcessTree(child.pid, children_files=True)
    with pytest.raises(SourceUnavailable, match="is gone"):
        gone.open()


def _hpcx_run(profile: Path, code: str, env: dict[str, str], **kw) -> subprocess.Popen:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "SLURM_", "HPCX_"))},
        **env,
    }
    argv = [
        sys.executable,
        "-m",
        "hpcx.run",
        "--interval",
        "0.1",
        "--profile-dir",
        str(profile),
        "--",
        sys.executable,
        "-c",
        code,
    ]
    return subprocess.Popen(argv, env=env, **kw)


def test_rapl_through_the_sampler_gives_counter_energy_over_the_window(tmp_path):
    powercap = tmp_path / "powercap"
    zone = _zone(powercap, "intel-rapl:0", "package-0", 0)
    # The job itself moves the fake counter: +500000 uJ, then across the wrap to 100000 (+600000 uJ).
    code = (
        f"import os, time, pathlib\nz = pathlib.Path({str(zone)!r})\n"
        "def put(v):\n    (z / 't').write_text(str(v)); os.replace(z / 't', z / 'energy_uj')\n"
        "time.sleep(0.5); put(500000); time.sleep(0.5); put(100000); time.sleep(0.5)\n"
    )
    proc = _hpcx_run(tmp_path / "profile", code, {"HPCX_POWERCAP_ROOT": str(powercap)})
    assert proc.wait(timeout=60) == 0
    (path,) = (tmp_path / "profile").glob("node-*.jsonl")
    node = node_series(read_records(path))
    assert node["sources"]["rapl"]["status"] == "measured"
    energy = node["energy"]["cpu_package"]
    assert energy["status"] == "measured" and energy["method"] == "counter"
    assert energy["energy_j"] == pytest.approx(1.1) and 0.5 < energy["coverage"] <= 1  # start-up is outside
    assert node["energy"]["dram"] == {"status": "unavailable", "reason": "no dram zone under RAPL"}
    assert node["samples"][-1]["rapl"]["wraps"] == 1


def test_missing_sensors_are_recorded_unavailable_never_zero(tmp_path):
    proc = _hpcx_run(tmp_path / "profile", "pass", {"HPCX_POWERCAP_ROOT": str(tmp_path / "none")})
    assert proc.wait(timeout=60) == 0
    (node,) = read_nodes(tmp_path / "profile").values()
    assert (
        node["sources"]["rapl"]["status"] == "unavailable"
        and "no RAPL zones" in node["sources"]["rapl"]["reason"]
    )
    assert node["energy"]["cpu_package"]["status"] == "unavailable"
    assert "energy_j" not in node["energy"]["cpu_package"]
    assert node["energy"]["gpu"]["status"] == "unavailable" and node["energy"]["gpu"]["reason"]
    assert node["sources"]["memory"]["status"] == "measured"
    assert {"memory.used_mb", "network.rx_bytes"} <= set(node["series"])


def test_records_are_readable_after_kill_9(tmp_path):
    code = "import time; x = b'1' * (80 * 2**20); time.sleep(60)"
    proc = _hpcx_run(tmp_path / "profile", code, {}, start_new_session=True)
    rank_path = tmp_path / "profile" / "rank-00000.jsonl"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if rank_path.exists() and sum(1 for r in read_records(rank_path) if r["type"] == "sample") >= 5:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the wrapper and the rank, as a node failure or OOM kill would
    proc.wait(timeout=10)
    rank = summarize_rank(read_records(rank_path))
    assert not rank["finished"] and rank["samples"] >= 5 and rank["peak_rss_mb"] >= 80
    (merged,) = summarize_ranks(tmp_path / "profile")  # the report's reading of the same file
    assert (merged["rank"], merged["finished"], merged["exit_code"]) == (0, False, None)
    assert [p[1] for p in merged["timeline"]]
    assert all(json.loads(line) for line in rank_path.read_text().splitlines()[:-1])


def test_format_1_files_still_read(tmp_path):
    path = tmp_path / "rank-00000.jsonl"
    lines = [
        {"v": 1, "type": "start", "t": 10.0, "rank": 0, "node": "n1"},
        {"v": 1, "type": "sample", "t": 11.0, "rank": 0, "rss_mb": 20.0, "cpu_s": 1.0},
        {
            "v": 1,
            "type": "end",
            "t": 12.0,
            "rank": 0,
            "exit_code": 0,
            "wall_s": 2.0,
            "cpu_s": 1.5,
            "peak_rss_mb": 25.0,
            "samples": 1,
        },
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    rank = summarize_rank(read_records(path))
    assert (rank["peak_rss_mb"], rank["cpu_s"], rank["finished"]) == (25.0, 1.5, True)
    assert [(r["rank"], [p[1] for p in r["timeline"]]) for r in summarize_ranks(tmp_path)] == [(0, [20.0])]


class _FakeNvml:
    """A stand-in for pynvml with two GPUs (minor numbers 4 and 7); GPU 1 has no energy counter and no
    utilisation. Only the NVML calls hpcx makes, so a rename in the source fails here before an H100."""

    NVML_CLOCK_SM = 1

    class NVMLError(Exception):
        pass

    def __init__(self) -> None:
        self.energy_mj = [1_000_000, None]

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetMinorNumber(self, h: int) -> int:
        return (4, 7)[h]

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        if self.energy_mj[h] is None:
            raise self.NVMLError("Not Supported")
        return self.energy_mj[h]

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return 250_500

    def nvmlDeviceGetMemoryInfo(self, h: int):
        return type("Mem", (), {"used": 3 * 2**30})()

    def nvmlDeviceGetUtilizationRates(self, h: int):
        if h == 1:
            raise self.NVMLError("Not Supported")
        return type("Util", (), {"gpu": 87})()

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        return 1980

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        return 4


def test_nvml_reads_gauges_every_interval_and_energy_only_at_edges(monkeypatch):
    fake = _FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("SLURM_JOB_GPUS", "4,7")
    nvml = Nvml()
    desc = nvml.open()
    assert desc["gpus"] == [0, 1] and desc["no_energy_counter"] == [1]
    gauges = nvml.read(edge=False)
    assert gauges[0] == {
        "index": 0,
        "power_w": 250.5,
        "mem_used_mb": 3072.0,
        "util_pct": 87,
        "sm_mhz": 1980,
        "throttle": 4,
    }
    assert gauges[1]["util_pct"] is None and "energy_j" not in gauges[1]
    fake.energy_mj[0] += 12_345
    edge = nvml.read(edge=True)
    assert edge[0]["energy_j"] == pytest.approx(12.345) and "energy_j" not in edge[1]
    monkeypatch.setenv("SLURM_JOB_GPUS", "7")
    assert Nvml().open()["gpus"] == [1]  # only the job's GPU, matched by minor number


def test_a_stalled_sampler_takes_one_sample_on_resume_not_a_burst(tmp_path):
    """A suspended job (scontrol suspend: SIGSTOP to every process) resumes with one sample, not one for
    every interval it missed written back to back."""
    proc = _hpcx_run(tmp_path / "profile", "import time; time.sleep(6)", {})
    rank_path = tmp_path / "profile" / "rank-00000.jsonl"
    try:
        _wait_for_start(rank_path)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGSTOP)  # the wrapper (its sampler thread) misses 20 intervals of 0.1 s
        time.sleep(2.0)
        os.kill(proc.pid, signal.SIGCONT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    times = [r["t"] for r in read_records(rank_path) if r["type"] == "sample"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) >= 1.8, gaps  # the stall is in the records, as a gap
    assert sum(g < 0.05 for g in gaps) <= 1, gaps  # at most the closing sample falls close to another


def _wait_for_start(rank_path: Path) -> None:
    """Until the rank's start record is on disk (written at once; samples reach the disk every 5 s)."""
    deadline = time.monotonic() + 20
    while not (rank_path.exists() and any(r["type"] == "start" for r in read_records(rank_path))):
        assert time.monotonic() < deadline, "no start record in 20 s"
        time.sleep(0.05)


def test_a_signal_after_the_command_exited_keeps_its_exit_code_and_end_record(tmp_path):
    """The wrapper is held (stopped) while its command exits 3; the SIGCONT that resumes it is forwarded to a
    child that is gone. The wrapper still reaps it, exits 3 and writes the end record (it used to crash on a
    child reaped by the forwarding, exit 1, no end record)."""
    proc = _hpcx_run(
        tmp_path / "profile",
        "import sys, time; time.sleep(1); sys.exit(3)",
        {},
        stderr=subprocess.PIPE,
        text=True,
    )
    rank_path = tmp_path / "profile" / "rank-00000.jsonl"
    try:
        _wait_for_start(rank_path)
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(2.5)  # the command exits meanwhile
        os.kill(proc.pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 3, err
    end = [r for r in read_records(rank_path) if r["type"] == "end"]
    assert len(end) == 1 and end[0]["exit_code"] == 3 and "Traceback" not in err
