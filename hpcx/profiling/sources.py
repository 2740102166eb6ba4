"""What the sampler reads: one class per source, each opened once and then read every interval.

A source either opens (and says which fields it gives, each with its method: ``counter`` for a value the
hardware or kernel accumulates, ``sampled`` for a gauge read now, ``derived`` for one computed from others) or
raises :class:`SourceUnavailable` with a reason a person can act on. Missing hardware, a missing library or a
permission the kernel withholds are facts to record, never zeros and never a crash.

Rank scope (every rank): :class:`ProcessTree`. Node scope (only the lowest local rank of a node, so nothing is
counted twice): :class:`NodeMemory`, :class:`Network`, :class:`Rapl`, :class:`Nvml`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MEASURED, UNAVAILABLE = "measured", "unavailable"
COUNTER, SAMPLED = "counter", "sampled"
POWERCAP_ROOT = "/sys/class/powercap"
MB = 2**20
# The rank's I/O from /proc/PID/io, each field named as the sample record names it (its kernel name).
IO_FIELDS = {
    "rchar": "B",  # bytes passed to read()-like calls (read, pread, readv, sendfile...): page cache hits too
    "wchar": "B",  # bytes passed to write()-like calls: counted when written to the page cache
    "syscr": "1",  # read()-like calls
    "syscw": "1",  # write()-like calls
    "read_bytes": "B",  # bytes the storage layer fetched for the process: page cache hits are not
    "write_bytes": "B",  # bytes of page cache the process dirtied for the storage layer
}
_IO_KEYS = {field: field.encode() for field in IO_FIELDS}
IO_NOTE = (
    "rchar/wchar: bytes of every read()/write() call (files, pipes, sockets, page cache hits; what Slurm's "
    "TotalDiskRead/Write count); syscr/syscw: those calls; read_bytes/write_bytes: the storage layer's bytes "
    "(block devices; partial or 0 on network filesystems and tmpfs); access through mmap is in none of them"
)


class SourceUnavailable(Exception):
    """A source that cannot be read on this node; the message is the reason recorded."""


class Source:
    """A source: :meth:`open` once (returns its description), then :meth:`read` every interval.

    ``edge`` is true at window edges (the first and last reading and every few seconds between): expensive
    counters (NVML's total energy costs milliseconds per read) are read only then.
    """

    name = ""

    def open(self) -> dict[str, Any]:
        """``{"fields": {field: [method, unit]}, ...}``; raises SourceUnavailable with the reason."""
        raise NotImplementedError

    def read(self, edge: bool) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`open` took (NVML's handle); most sources hold nothing."""


def _psutil() -> Any:
    try:
        import psutil
    except ImportError as exc:
        raise SourceUnavailable("psutil is not installed (pip install 'hpcx[runtime]')") from exc
    return psutil


def children_files_work(pid: int | None = None) -> bool:
    """Whether this kernel lists a thread's children in ``/proc/PID/task/TID/children`` (CONFIG_PROC_CHILDREN,
    on in the distributions' kernels since 4.2)."""
    pid = os.getpid() if pid is None else pid
    return os.path.exists(f"/proc/{pid}/task/{pid}/children")


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants from ``/proc/PID/task/*/children`` (every thread's: a child belongs to
    the thread that forked it). Costs a few reads per process of the tree, however many processes the node
    has. A process that exits while it is walked is left out."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def children(pid: int) -> list[int]:
    """``pid``'s direct children, from every thread's ``/proc/PID/task/TID/children`` (a child belongs to the
    thread that forked it); none once the process is gone."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as fh:
                out.extend(int(c) for c in fh.read().split())
        except OSError:
            continue  # the thread (or the process) ended between the listing and the read
    return out


class ProcessTree(Source):
    """The rank: RSS, peak, CPU time, threads and I/O counters (:data:`IO_FIELDS`) of ``pid`` and its
    descendants.

    The descendants come from the kernel's per-thread children lists (:func:`tree_pids`), so a sample costs
    the same on a node with 300 processes as on an idle one; a kernel without them falls back to psutil's
    scan of all of /proc (``children_files=False`` forces it). Either way every sample finds the tree anew:
    a child started or reaped since the last sample is in or out of the next one. Its I/O counters stay
    counted: the kernel adds a reaped process's counters to its parent's, which is in the tree.
    """

    name = "process"

    def __init__(self, pid: int, children_files: bool | None = None) -> None:
        self.pid = pid
        self.children_files = children_files

    def open(self) -> dict[str, Any]:
        psutil = _psutil()
        try:
            self._root = psutil.Process(self.pid)
        except psutil.NoSuchProcess as exc:
            raise SourceUnavailable(f"process {self.pid} is gone") from exc
        if self.children_files is None:
            self.children_files = children_files_work(self.pid)
        # Our own child: once reaped, the kernel adds its counters (and its reaped children's) to ours.
        self._own_child = _ppid(self.pid) == os.getpid()
        self._own = _own_counters()
        self._last: dict[str, Any] | None = None
        return {
            "fields": {
                "rss_mb": [SAMPLED, "MB"],
                "hwm_mb": [COUNTER, "MB"],
                "cpu_s": [COUNTER, "s"],
                "threads": [SAMPLED, "1"],
                **{field: [COUNTER, unit] for field, unit in IO_FIELDS.items()},
            },
            "tree": "task children files" if self.children_files else "scan of /proc",
            "note": "rss_mb: the tree now; hwm_mb: the largest process's VmHWM; " + IO_NOTE,
        }

    def _pids(self) -> list[int] | None:
        """The tree's pids, the root first; None once the root has exited."""
        if self.children_files:
            return tree_pids(self.pid) if os.path.exists(f"/proc/{self.pid}") else None
        import psutil

        try:
            return [self.pid, *(c.pid for c in self._root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return None

    def read(self, edge: bool) -> dict[str, Any] | None:
        """The tree's figures now. Once the rank's process has exited and been reaped by this process (the
        wrapper that started it), one last sample: its final counters, which the kernel added to this
        process's own (:meth:`_reaped`); None after that, and at once for a process that was not our child."""
        pids = self._pids()
        if pids is None:
            return self._reaped()
        rss = cpu = hwm = 0.0
        threads = 0
        io = [0] * len(IO_FIELDS)
        for pid in pids:
            usage = _proc_usage(pid)
            if usage is None:
                continue  # a child that exited between listing and reading
            rss += usage[0]
            cpu += usage[1]
            threads += usage[2]
            hwm = max(hwm, usage[3])
            io = [a + b for a, b in zip(io, usage[4])]
        self._own = _own_counters()  # after the tree's reads: those are ours, not the rank's
        self._last = {
            "rss_mb": round(rss / MB, 2),
            "hwm_mb": round(hwm, 2),
            "cpu_s": round(cpu, 3),
            "threads": threads,
            **dict(zip(IO_FIELDS, io)),
        }
        return self._last

    def _reaped(self) -> dict[str, Any] | None:
        """The tree's final figures after the reap (once): what our own CPU time of reaped children and I/O
        counters grew by since the last sample is the reaped tree's whole, up to the moment it exited, so I/O
        between the last sample and the exit is counted. Includes this process's own reads and writes since
        that sample (its sampler reading /proc and writing records: a few kB, tens of calls)."""
        if not self._own_child:
            return None
        own, before = _own_counters(), self._own
        self._own_child = False  # one final sample only
        if own is None or before is None:
            return None
        return {
            "rss_mb": 0.0,
            "hwm_mb": (self._last or {}).get("hwm_mb", 0.0),
            "threads": 0,
            "cpu_s": round(own[0] - before[0], 3),
            **{f: own[1][i] - before[1][i] for i, f in enumerate(IO_FIELDS)},
            "reaped": True,
        }


_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc_usage(pid: int) -> tuple[float, float, int, float, list[int]] | None:
    """One process from /proc (three reads, what psutil would read in five): RSS bytes, CPU seconds (user +
    system, incl. reaped children), threads, VmHWM in MB, its I/O counters in :data:`IO_FIELDS` order (0
    where the kernel withholds /proc/PID/io). None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        with open(f"/proc/{pid}/status", "rb") as fh:
            status = fh.read()
    except OSError:
        return None
    f = stat[stat.rindex(b")") + 2 :].split()  # the fields after the command name, from field 3 (state)
    cpu = (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / _TICKS
    i = status.find(b"VmHWM:")
    hwm = int(status[i + 6 : status.index(b"kB", i)]) / 1024 if i >= 0 else 0.0
    return int(f[21]) * _PAGE, cpu, int(f[17]), hwm, read_io(pid) or [0] * len(IO_FIELDS)


def read_io(pid: int | str) -> list[int] | None:
    """``/proc/PID/io`` as its counters in :data:`IO_FIELDS` order; None where the kernel withholds it (another
    user's process) or the process is gone. A process's counters include those of its reaped children."""
    try:
        with open(f"/proc/{pid}/io", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    values = dict(line.split(b":", 1) for line in text.splitlines() if b":" in line)
    return [int(values.get(_IO_KEYS[field], 0)) for field in IO_FIELDS]


def _ppid(pid: int) -> int | None:
    """The parent of ``pid``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def _own_counters() -> tuple[float, list[int]] | None:
    """This process's CPU seconds of reaped children (cutime + cstime) and its I/O counters, which include
    those of the children it reaped."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    io = read_io("self")
    if io is None:
        return None
    f = stat[stat.rindex(b")") + 2 :].split()
    return (int(f[13]) + int(f[14])) / _TICKS, io


class NodeMemory(Source):
    """The node's memory in use (total minus available, as `free` counts it) and available."""

    name = "memory"

    def open(self) -> dict[str, Any]:
        psutil = _psutil()
        return {
            "fields": {"used_mb": [SAMPLED, "MB"], "available_mb": [SAMPLED, "MB"]},
            "total_mb": round(psutil.virtual_memory().total / MB, 1),
        }

    def read(self, edge: bool) -> dict[str, float]:
        import psutil

        vm = psutil.virtual_memory()
        return {
            "used_mb": round((vm.total - vm.available) / MB, 1),
            "available_mb": round(vm.available / MB, 1),
        }


def parse_net_dev(text: str) -> dict[str, tuple[int, int]]:
    """``/proc/net/dev`` as ``{interface: (rx_bytes, tx_bytes)}``, without loopback unless it is all there is
    (loopback traffic is the node talking to itself, e.g. two ranks over TCP on one host)."""
    ifaces: dict[str, tuple[int, int]] = {}
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        cols = rest.split()
        if len(cols) >= 9:
            ifaces[name.strip()] = (int(cols[0]), int(cols[8]))
    external = {k: v for k, v in ifaces.items() if k != "lo"}
    return external or ifaces


class Network(Source):
    """Bytes received and sent by the node, summed over its interfaces (kernel counters since boot)."""

    name = "network"

    def __init__(self, path: str = "/proc/net/dev") -> None:
        self.path = path

    def open(self) -> dict[str, Any]:
        try:
            ifaces = parse_net_dev(Path(self.path).read_text())
        except OSError as exc:
            raise SourceUnavailable(f"cannot read {self.path}: {exc.strerror}") from exc
        if not ifaces:
            raise SourceUnavailable(f"no interfaces in {self.path}")
        return {
            "fields": {"rx_bytes": [COUNTER, "B"], "tx_bytes": [COUNTER, "B"]},
            "interfaces": sorted(ifaces),
        }

    def read(self, edge: bool) -> dict[str, int]:
        ifaces = parse_net_dev(Path(self.path).read_text())
        return {
            "rx_bytes": sum(v[0] for v in ifaces.values()),
            "tx_bytes": sum(v[1] for v in ifaces.values()),
        }


class _RaplZone:
    """One powercap zone's counter, accumulated across wrap-arounds at ``max_energy_range_uj``."""

    def __init__(self, path: Path, name: str, max_uj: int, first_uj: int) -> None:
        self.path, self.name, self.max_uj = path, name, max_uj
        self.last_uj, self.total_uj, self.wraps = first_uj, 0, 0

    def update(self) -> None:
        now = int((self.path / "energy_uj").read_text())
        delta = now - self.last_uj
        if delta < 0:  # the counter passed max_energy_range_uj and started again from 0
            delta += self.max_uj
            self.wraps += 1
        self.total_uj += delta
        self.last_uj = now


class Rapl(Source):
    """CPU package and DRAM energy from RAPL's powercap counters, read every interval (so no wrap-around is
    missed: some counters wrap within a minute) and reported at window edges.

    ``root`` defaults to ``$HPCX_POWERCAP_ROOT``, else /sys/class/powercap. MMIO zones mirror the MSR ones
    and are skipped so a package is not counted twice.
    """

    name = "rapl"

    def __init__(self, root: str | None = None) -> None:
        self.root = Path(root or os.environ.get("HPCX_POWERCAP_ROOT") or POWERCAP_ROOT)
        self.zones: dict[str, _RaplZone] = {}

    def open(self) -> dict[str, Any]:
        paths = sorted(p for p in self.root.glob("*/energy_uj") if "mmio" not in p.parent.name)
        if not paths:
            raise SourceUnavailable(f"no RAPL zones under {self.root} (not an Intel/AMD CPU, or a VM)")
        for energy in paths:
            zone = energy.parent
            try:
                first = int(energy.read_text())
                max_uj = int((zone / "max_energy_range_uj").read_text())
                name = (zone / "name").read_text().strip()
            except PermissionError as exc:
                raise SourceUnavailable(
                    f"permission denied reading {energy}: energy_uj is root-only since Linux 5.10; "
                    "an admin can grant read access with a udev rule"
                ) from exc
            except (OSError, ValueError) as exc:
                raise SourceUnavailable(f"cannot read {zone}: {exc}") from exc
            self.zones[zone.name] = _RaplZone(zone, name, max_uj, first)
        return {
            "fields": {"energy_j": [COUNTER, "J"], "package_j": [COUNTER, "J"], "dram_j": [COUNTER, "J"]},
            "zones": {k: z.name for k, z in self.zones.items()},
            "note": "package_j: package-* zones (incl. core, uncore); dram_j: dram",
        }

    def read(self, edge: bool) -> dict[str, Any] | None:
        for zone in self.zones.values():
            zone.update()
        if not edge:
            return None
        zones = self.zones.values()
        return {
            "energy_j": {k: round(z.total_uj / 1e6, 3) for k, z in self.zones.items()},
            "package_j": round(sum(z.total_uj for z in zones if z.name.startswith("package")) / 1e6, 3),
            "dram_j": round(sum(z.total_uj for z in zones if z.name == "dram") / 1e6, 3),
            "wraps": sum(z.wraps for z in zones),
        }


class Nvml(Source):
    """Each GPU of the node once: power, memory used, utilisation, SM clock and throttle reasons every
    interval; the total-energy counter (mJ since driver load) only at window edges, since a read costs
    milliseconds on an H100.

    Under Slurm only the job's GPUs (``SLURM_JOB_GPUS``, matched by minor number) are read.
    """

    name = "nvml"

    def open(self) -> dict[str, Any]:
        try:
            import pynvml
        except ImportError as exc:
            raise SourceUnavailable("nvidia-ml-py is not installed (pip install 'hpcx[runtime]')") from exc
        self.nv = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise SourceUnavailable(f"NVML did not start ({exc}): no NVIDIA driver on this node") from exc
        self.gpus = self._job_gpus()
        if not self.gpus:
            self.close()
            raise SourceUnavailable("NVML found no GPU for this job on this node")
        self.first_mj: dict[int, int | None] = {i: self._energy_mj(h) for i, h in self.gpus}
        no_counter = [i for i, mj in self.first_mj.items() if mj is None]
        return {
            "fields": {
                "power_w": [SAMPLED, "W"],
                "mem_used_mb": [SAMPLED, "MB"],
                "util_pct": [SAMPLED, "%"],
                "sm_mhz": [SAMPLED, "MHz"],
                "throttle": [SAMPLED, "bitmask"],
                "energy_j": [COUNTER, "J"],
            },
            "gpus": [i for i, _ in self.gpus],
            "no_energy_counter": no_counter,
        }

    def _job_gpus(self) -> list[tuple[int, Any]]:
        nv = self.nv
        handles = [(i, nv.nvmlDeviceGetHandleByIndex(i)) for i in range(nv.nvmlDeviceGetCount())]
        wanted = os.environ.get("SLURM_JOB_GPUS", "")
        if not wanted or not all(x.isdigit() for x in wanted.split(",")):
            return handles
        minors = {int(x) for x in wanted.split(",")}
        return [(i, h) for i, h in handles if nv.nvmlDeviceGetMinorNumber(h) in minors]

    def _energy_mj(self, handle: Any) -> int | None:
        try:
            return int(self.nv.nvmlDeviceGetTotalEnergyConsumption(handle))
        except self.nv.NVMLError:
            return None  # before Volta, or not supported on this board: recorded as unavailable per GPU

    def _field(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self.nv.NVMLError:
            return None

    def read(self, edge: bool) -> list[dict[str, Any]]:
        nv, out = self.nv, []
        # NVML 12 renamed "throttle reasons" to "clocks event reasons"; older bindings have only the old name.
        throttle = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
        throttle = throttle or nv.nvmlDeviceGetCurrentClocksThrottleReasons
        for i, h in self.gpus:
            power = self._field(nv.nvmlDeviceGetPowerUsage, h)
            mem = self._field(nv.nvmlDeviceGetMemoryInfo, h)
            util = self._field(nv.nvmlDeviceGetUtilizationRates, h)
            row: dict[str, Any] = {
                "index": i,
                "power_w": None if power is None else power / 1000,
                "mem_used_mb": None if mem is None else round(mem.used / MB, 1),
                "util_pct": None if util is None else util.gpu,
                "sm_mhz": self._field(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
                "throttle": self._field(throttle, h),
            }
            first = self.first_mj.get(i)
            if edge and first is not None:
                now = self._energy_mj(h)
                row["energy_j"] = None if now is None else (now - first) / 1000
            out.append(row)
        return out

    def close(self) -> None:
        try:
            self.nv.nvmlShutdown()
        except self.nv.NVMLError:
            pass


def node_sources() -> list[Source]:
    """The node-level sources, in the order they are read."""
    return [NodeMemory(), Network(), Rapl(), Nvml()]
