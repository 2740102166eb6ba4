"""ui_refresh_vs_tensorboard: CPU seconds to pick up 100 new points in each of 1,000 runs, hpcx ui's refresh
over TensorBoard's reload of the same metrics (exported with ``hpcx export --tensorboard``); target <= 0.2.

Set-up, in a temporary directory: a runs root with 1,000 runs made as hpcx makes them
(hpcx.runs.create_run, then record_job with a local-backend job record, so ``hpcx runs`` lists them), each
with a rank-0 metrics file of 1,000 steps of two metrics written by ``hpcx.runtime.log`` itself, in a job
process (HPCX_RUN_DIR set per run, as ``python -m hpcx.run`` sets it). Every run is then exported with hpcx's
own export (hpcx.runs.export.export_tensorboard) into one TensorBoard logdir, a TensorBoard run per hpcx run.

hpcx side: a real ``python -m hpcx --json ui --root ROOT --port 0`` server. The client (standing in for the
browser: its CPU is not counted) first fetches every run's ``/api/run/RUN/series`` with an empty cursor (a
page's first load), keeping the cursor each answer returns. Each round, the job process appends 100 steps to
every run's file with ``hpcx.runtime.log``, then the client fetches every run's series with its cursor, one
request per run as each open run page polls. Counted: the server process's user + system CPU seconds
(/proc/PID/stat) over that round; every answer is checked to hold exactly the 100 new points of each metric.

TensorBoard side, in this process: TensorBoard's own EventMultiplexer over the logdir, built as the
``tensorboard`` program builds it (its data ingester's size guidance, one reload thread) except that scalars
keep every point (``--samples_per_plugin scalars=0``), as the dashboard does, so both sides deliver the same
points and the counts can be checked. First AddRunsFromDirectory and Reload (its first load). Each round the
same 100 new points of every run are appended as new events with the writer the export uses
(tensorboard.summary.Writer), then ``time.process_time()`` of the multiplexer's Reload(), checked to have
picked up every new point of every run. TensorBoard's own reload loop also re-walks the logdir before each
Reload (AddRunsFromDirectory); that walk is timed separately and shown as the full reload cycle.

ratio = median over rounds of (hpcx server CPU s / TensorBoard Reload CPU s). Extra rows: each side's first
load, the full TensorBoard cycle, wall times, and bytes read (rchar of /proc/PID/io: the server's, and this
process's during Reload).
"""

from __future__ import annotations

import datetime as _dt
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

NAME = "ui_refresh_vs_tensorboard"
METRICS = ("loss", "acc")
NEW_POINTS = 100
TARGET = 0.2
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The job: hpcx.runtime.log for each run in turn. HPCX_RUN_DIR names the run, as python -m hpcx.run sets it;
# closing the records makes the next record open the next run's file (ProcessRecords.close).
JOB = """
import os, sys
from hpcx import runtime
from hpcx.runtime import metrics
run_dirs = open(sys.argv[1]).read().split()
first, count = int(sys.argv[2]), int(sys.argv[3])
for index, run_dir in enumerate(run_dirs):
    os.environ["HPCX_RUN_DIR"] = run_dir
    for step in range(first, first + count):
        loss = 1.0 / (1.0 + 0.01 * step) + 0.001 * index
        runtime.log(step, loss=loss, acc=1.0 - loss / 2.0)
    metrics._records.close()
"""


def values(index: int, step: int) -> dict[str, float]:
    """What the job logs for run ``index`` at ``step`` (the same arithmetic as JOB)."""
    loss = 1.0 / (1.0 + 0.01 * step) + 0.001 * index
    return {"loss": loss, "acc": 1.0 - loss / 2.0}


# ---------------------------------------------------------------- set-up


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "SLURM_", "SBATCH_"))}
    env["PYTHONPATH"] = str(c.REPO)
    return env


def make_runs(root: Path, n_runs: int) -> list[Any]:
    """``n_runs`` run directories as hpcx creates them, each with a local-backend job record."""
    from hpcx.runs import create_run, list_runs, record_job

    runs = []
    for i in range(n_runs):
        run = create_run(root)
        submitted = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        record_job(run, {"scheduler": "local", "job_id": str(100_000 + i), "submitted_at": submitted})
        runs.append(run)
    if len(list_runs(root)) != n_runs:
        raise RuntimeError(f"hpcx lists {len(list_runs(root))} runs under {root}, not {n_runs}")
    return runs


def job_log(work: Path, runs: Sequence[Any], first: int, count: int) -> None:
    """Steps ``first`` .. ``first + count - 1`` of every run, logged by hpcx.runtime.log in a job process."""
    listing = work / "run-dirs.txt"
    listing.write_text("\n".join(str(r.dir) for r in runs) + "\n")
    argv = [sys.executable, "-c", JOB, str(listing), str(first), str(count)]
    proc = subprocess.run(argv, env=_clean_env(), capture_output=True, text=True, timeout=1200, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the job's hpcx.runtime.log failed: {proc.stderr[-2000:]}")


def export_all(runs: Sequence[Any], logdir: Path, n_steps: int) -> None:
    """Every run exported with hpcx's own export; each must hold every step of every metric."""
    from hpcx.runs.export import export_tensorboard

    for run in runs:
        doc = export_tensorboard(run, logdir)
        if doc["runs"][0]["points"] != n_steps * len(METRICS):
            raise RuntimeError(f"export of {run.id} wrote {doc['runs'][0]['points']} points")


def tb_append(runs: Sequence[Any], logdir: Path, first: int, count: int) -> None:
    """The same new points of every run as new events, with the writer hpcx export uses."""
    from tensorboard.summary import Writer

    from hpcx.runs.export import export_dir

    now = time.time()
    for index, run in enumerate(runs):
        writer = Writer(str(export_dir(run, logdir)))
        try:
            for step in range(first, first + count):
                for name, value in values(index, step).items():
                    writer.add_scalar(name, value, step, wall_time=now)
        finally:
            writer.close()


# ---------------------------------------------------------------- the hpcx ui server and its client


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads, finished ones included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rchar(pid: int | str) -> int:
    """Bytes process ``pid`` read with read() and its kind (files and sockets)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


@contextmanager
def ui_server(root: Path) -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    """A running ``hpcx --json ui --root ROOT --port 0``: (process, port, token); stopped on the way out."""
    argv = [sys.executable, "-m", "hpcx", "--json", "ui", "--root", str(root), "--port", "0"]
    proc = subprocess.Popen(argv, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"hpcx ui printed no URL: {proc.stderr.read() if proc.stderr else ''}")
        url = urllib.parse.urlsplit(json.loads(line)["url"])
        token = urllib.parse.parse_qs(url.query)["token"][0]
        yield proc, int(url.port or 0), token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fetch_series(port: int, token: str, run_id: str, cursor: dict[str, int]) -> dict[str, Any]:
    """One poll of a run page: GET /api/run/RUN/series?cursor=... with the page's cookie."""
    query = urllib.parse.urlencode({"cursor": json.dumps(cursor, separators=(",", ":"))})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", f"/api/run/{run_id}/series?{query}", headers={"Cookie": f"hpcx_ui_token={token}"})
        answer = conn.getresponse()
        body = answer.read()
    finally:
        conn.close()
    if answer.status != 200:
        raise RuntimeError(f"series of {run_id}: HTTP {answer.status}: {body[:200]!r}")
    doc: dict[str, Any] = json.loads(body)
    return doc


def check_points(doc: dict[str, Any], index: int, first: int, count: int) -> None:
    """The answer holds exactly steps ``first`` .. ``first + count - 1`` of every metric, with its values."""
    series = doc["series"].get("", {})
    if sorted(series) != sorted(METRICS) or doc["reset"]:
        raise RuntimeError(f"run {index}: metrics {sorted(series)}, reset {doc['reset']}")
    for name, points in series.items():
        expected = [[s, values(index, s)[name]] for s in range(first, first + count)]
        if points != expected:
            raise RuntimeError(f"run {index} {name}: {len(points)} points, steps {points[:1]}..{points[-1:]}")


# ---------------------------------------------------------------- TensorBoard


def tb_multiplexer() -> Any:
    """TensorBoard's multiplexer as the ``tensorboard`` program makes it, every scalar point kept."""
    from tensorboard.backend.event_processing import data_ingester
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    tensor_guidance = {**data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE, "scalars": 0}
    return EventMultiplexer(
        size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance=tensor_guidance,
        purge_orphaned_data=True,
        max_reload_threads=1,
    )


def tb_check(mux: Any, runs: Sequence[Any], last_step: int) -> None:
    """Every run's every metric holds steps 0 .. ``last_step``, each once, the newest with its value."""
    for index, run in enumerate(runs):
        for name in METRICS:
            events = mux.Tensors(run.id, name)
            steps = [e.step for e in events]
            if steps != list(range(last_step + 1)):
                raise RuntimeError(f"TensorBoard run {run.id} {name}: {len(steps)} points, last {steps[-1:]}")
            got = float(events[-1].tensor_proto.float_val[0])
            if abs(got - values(index, last_step)[name]) > 1e-6:
                raise RuntimeError(f"TensorBoard run {run.id} {name}: last value {got}")


def timed_in_process(fn: Any) -> tuple[float, float, int]:
    """(CPU s, wall s, bytes read) of ``fn()`` in this process."""
    rchar, cpu, wall = proc_rchar("self"), time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall, proc_rchar("self") - rchar


# ---------------------------------------------------------------- rounds


def hpcx_round(
    server: tuple[Any, int, str],
    runs: Sequence[Any],
    cursors: dict[str, dict[str, int]],
    first: int,
    count: int,
) -> dict[str, float]:
    """Every run's series fetched with its cursor; the server's CPU s and bytes read, the client's wall s.
    The answers are checked and their cursors kept for the next round."""
    proc, port, token = server
    cpu, rchar, wall = proc_cpu_s(proc.pid), proc_rchar(proc.pid), time.perf_counter()
    docs = [fetch_series(port, token, run.id, cursors[run.id]) for run in runs]
    wall = time.perf_counter() - wall
    time.sleep(0.2)  # the last handler thread closes its socket
    cpu, rchar = proc_cpu_s(proc.pid) - cpu, proc_rchar(proc.pid) - rchar
    for index, (run, doc) in enumerate(zip(runs, docs)):
        check_points(doc, index, first, count)
        cursors[run.id] = doc["cursor"]
    return {"cpu_s": cpu, "wall_s": wall, "bytes": rchar}


def tb_round(mux: Any, logdir: Path, runs: Sequence[Any], last_step: int) -> dict[str, float]:
    """TensorBoard's reload cycle: the logdir walk (AddRunsFromDirectory), then Reload(), timed apart."""
    walk_cpu, _, _ = timed_in_process(lambda: mux.AddRunsFromDirectory(str(logdir)))
    cpu, wall, read = timed_in_process(mux.Reload)
    tb_check(mux, runs, last_step)
    return {"cpu_s": cpu, "wall_s": wall, "bytes": read, "walk_cpu_s": walk_cpu}


def measure(work: Path, n_runs: int, n_initial: int, rounds: int) -> dict[str, list[dict[str, float]]]:
    """Set up the runs and the logdir, take both first loads, then ``rounds`` rounds of 100 new points."""
    root, logdir = work / "runs", work / "tensorboard"
    runs = make_runs(root, n_runs)
    job_log(work, runs, 0, n_initial)
    export_all(runs, logdir, n_initial)
    mux = tb_multiplexer()
    out: dict[str, list[dict[str, float]]] = {"hpcx": [], "tb": []}
    with ui_server(root) as server:
        cursors: dict[str, dict[str, int]] = {run.id: {} for run in runs}
        first_hpcx = hpcx_round(server, runs, cursors, 0, n_initial)
        first_tb = tb_round(mux, logdir, runs, n_initial - 1)
        for r in range(rounds):
            first = n_initial + r * NEW_POINTS
            job_log(work, runs, first, NEW_POINTS)
            tb_append(runs, logdir, first, NEW_POINTS)
            out["hpcx"].append(hpcx_round(server, runs, cursors, first, NEW_POINTS))
            out["tb"].append(tb_round(mux, logdir, runs, first + NEW_POINTS - 1))
    out["first"] = [first_hpcx, first_tb]
    return out


RELOAD = "TensorBoard EventMultiplexer.Reload()"
DETAIL = (  # metric, side, measure, unit, what it is
    (
        "hpcx_ui_refresh_cpu_s",
        "hpcx",
        "cpu_s",
        "s",
        "hpcx ui server CPU, one series poll per run with its cursor",
    ),
    ("tensorboard_reload_cpu_s", "tb", "cpu_s", "s", RELOAD),
    (
        "tensorboard_walk_cpu_s",
        "tb",
        "walk_cpu_s",
        "s",
        "TensorBoard AddRunsFromDirectory (its re-walk of the logdir)",
    ),
    ("hpcx_ui_refresh_wall_s", "hpcx", "wall_s", "s", "client-observed, one request per run in turn"),
    ("tensorboard_reload_wall_s", "tb", "wall_s", "s", RELOAD),
    ("hpcx_ui_refresh_read_mib", "hpcx", "bytes", "MiB", "server rchar (files and sockets)"),
    ("tensorboard_reload_read_mib", "tb", "bytes", "MiB", "rchar of this process during Reload"),
)


def _median(samples: Sequence[dict[str, float]], key: str) -> float:
    value = c.stats([s[key] for s in samples])["median"]
    return round(value / 2**20, 2) if key == "bytes" else round(value, 3)


def rows(got: dict[str, list[dict[str, float]]], n_runs: int, rounds: int) -> list[dict[str, Any]]:
    """The ratio (median over rounds, and the worst round), then each side's numbers."""
    hpcx, tb = got["hpcx"], got["tb"]
    ratios = [h["cpu_s"] / t["cpu_s"] for h, t in zip(hpcx, tb)]
    cycles = [h["cpu_s"] / (t["cpu_s"] + t["walk_cpu_s"]) for h, t in zip(hpcx, tb)]
    s = c.stats(ratios)
    what = f"{RELOAD} CPU s, same points ({n_runs} runs x {NEW_POINTS} new steps x {len(METRICS)} metrics)"
    out = [
        c.result(NAME, round(s["median"], 4), "x", what, TARGET, iqr=round(s["iqr"], 4), n=rounds),
        c.result(f"{NAME}_worst_round", round(max(ratios), 4), "x", "the highest round's ratio", n=rounds),
        c.result(
            f"{NAME}_cycle",
            round(c.stats(cycles)["median"], 4),
            "x",
            "over the logdir walk + Reload",
            n=rounds,
        ),
    ]
    for metric, side, key, unit, text in DETAIL:
        out.append(c.result(metric, _median(got[side], key), unit, text, n=rounds))
    return out + first_rows(got["first"])


def first_rows(first: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Each side's first load: every point of every run."""
    hpcx, tb = first
    return [
        c.result("hpcx_ui_first_load_cpu_s", round(hpcx["cpu_s"], 3), "s", "server CPU, empty cursors", n=1),
        c.result(
            "tensorboard_first_load_cpu_s",
            round(tb["cpu_s"] + tb["walk_cpu_s"], 3),
            "s",
            "first AddRunsFromDirectory + Reload",
            n=1,
        ),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    try:
        import tensorboard  # noqa: F401
    except ImportError as exc:
        raise c.Skip(f"tensorboard is not installed ({exc}): pip install 'hpcx[tensorboard]'") from None
    n_runs, rounds = (100, 2) if quick else (1000, 5)
    with tempfile.TemporaryDirectory(prefix="hpcx-ui-bench-") as tmp:
        got = measure(Path(tmp), n_runs, 1000, rounds)
    return rows(got, n_runs, rounds)


if __name__ == "__main__":
    sys.exit(c.main(NAME, run, __doc__))
