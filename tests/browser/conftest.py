"""The dashboard in a real headless Chromium: Debian's chromium and chromedriver driven by selenium (nothing is
downloaded: the driver's path is given, so Selenium Manager never runs), runs made by the real CLI on the local
backend, and `hpcx ui` as a user starts it, always terminated.

Two runs roots: a clean one (a finished run with its report, a sweep) for the pages and the screenshots, and a
hostile one: copies of those run directories rewritten by hand as another user could (HTML and script in the run
name, the metric names and the sweep's parameters), plus symlinks that lead out of the root."""

from __future__ import annotations

import http.client
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import REPO, Hpcx, _base_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 1000)
WAIT_S = 30  # every wait in the browser; the pages poll every 2-3 s
START_S = 30  # `hpcx ui` prints its URL within this

IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"
# what plotly would draw, were it given as markup: a link, a line break, bold type
MARKUP = '<a href="https://example.org/">a link</a><br><b>bold</b>'

# A job that declares its length, argv[1] steps, and logs `loss` and `acc` every argv[2] seconds (rate argv[3]).
JOB = """
import sys, time
import hpcx.runtime
steps, interval, lr = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
hpcx.runtime.progress(steps)
for step in range(steps):
    hpcx.runtime.log(step, loss=1.0 / (1.0 + lr * step) + 0.02 * (step % 3), acc=1.0 - 1.0 / (1.0 + lr * step))
    time.sleep(interval)
"""

SWEEP = """
name: lr-scan
kind: serial
resources: {{time: "00:05:00"}}
command: [python, train.py, "20", "0.1", "{{lr}}"]
parameters:
  grid: {{lr: {lrs}}}
"""
SWEEP_LRS = [0.05, 0.2, 0.8]  # task N has SWEEP_LRS[N]


def _skip_without_a_browser() -> None:
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    pytest.importorskip("plotly", reason="hpcx ui needs the plotly package (pip install -e '.[ui]')")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            pytest.skip(f"{path} is missing: apt-get install {package}")


def make_driver():
    """A fresh headless Chromium (a new profile: no cookie) whose console the test reads."""
    _skip_without_a_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    options.add_argument("--hide-scrollbars")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    # the viewport itself WINDOW (the window's size would include what a headed window draws around it)
    metrics = {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    return driver


@pytest.fixture(scope="session")
def browser():
    driver = make_driver()
    try:
        yield driver
    finally:
        driver.quit()


HTTP_S = 10  # a plain HTTP request's timeout


@dataclass
class Dashboard:
    """A running `hpcx ui`: its process, the URL it printed, its runs root."""

    proc: subprocess.Popen
    url: str
    root: Path

    @property
    def base(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def token(self) -> str:
        return urlsplit(self.url).query.removeprefix("token=")

    def page(self, path: str, token: bool = True) -> str:
        return self.base + path + (f"?token={self.token}" if token else "")

    def get(self, path: str, headers: dict[str, str] | None = None, token: bool = True) -> tuple[int, bytes]:
        """GET ``path`` (with ``?token=``) exactly as written: nothing normalises its ``..`` or escapes."""
        where = urlsplit(self.url)
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=HTTP_S)
        try:
            conn.request("GET", path + (f"?token={self.token}" if token else ""), headers=headers or {})
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()


def _first_line(proc: subprocess.Popen, timeout_s: float) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            raise AssertionError(f"hpcx ui printed nothing in {timeout_s} s")
    return proc.stdout.readline()


def _terminate(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def stop_ui(ui: Dashboard) -> None:
    _terminate(ui.proc)


def start_ui(env: dict[str, str], root: Path) -> Dashboard:
    """`hpcx --json ui --port 0 --root ROOT`; the caller stops it (stop_ui) whatever happens."""
    _skip_without_a_browser()
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hpcx", "--json", "ui", "--port", "0", "--root", str(root)],
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=REPO,
        )
        try:
            return Dashboard(proc, json.loads(_first_line(proc, START_S))["url"], root)
        except (AssertionError, ValueError, KeyError):
            _terminate(proc)
            errors.seek(0)
            raise AssertionError(f"hpcx ui did not print its URL: {errors.read()}") from None


@pytest.fixture(scope="session")
def job_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("job") / "train.py"  # submitted from its folder: `python train.py ...`
    path.write_text(JOB)
    return path


def cli(root: Path) -> Hpcx:
    env = _base_env(root)
    env["HPCX_SITE"] = "local"
    return Hpcx(env)


@dataclass
class Runs:
    """A runs root and what is in it."""

    root: Path
    hpcx: Hpcx
    run: str  # a finished run with its report
    sweep: str  # a finished sweep of 3 tasks


@pytest.fixture(scope="session")
def clean(tmp_path_factory, job_file) -> Runs:
    _skip_without_a_browser()
    root = tmp_path_factory.mktemp("clean") / "runs"
    root.mkdir()
    hpcx = cli(root)
    here = job_file.parent
    run = hpcx.json(
        "submit", "serial", "--name", "train-toy", "--", "python", "train.py", "40", "0.15", "0.3", cwd=here
    )
    spec = root.parent / "sweep.yaml"
    spec.write_text(SWEEP.format(lrs=json.dumps(SWEEP_LRS)))
    sweep = hpcx.json("sweep", str(spec), cwd=here)
    for doc in (run, sweep):
        row = hpcx.wait_finished(doc["run_id"], timeout_s=90)
        assert row["state"] == "COMPLETED", hpcx("logs", doc["run_id"], check=False).stdout
    hpcx("report", run["run_id"], timeout_s=60)
    return Runs(root, hpcx, run["run_id"], sweep["run_id"])


@pytest.fixture(scope="session")
def clean_ui(clean):
    ui = start_ui(clean.hpcx.env, clean.root)
    try:
        yield ui
    finally:
        stop_ui(ui)


# ---------------------------------------------------------------- what another user could write in the root
ACC = SCRIPT + MARKUP
METRIC_NAMES = {"loss": IMG, "acc": ACC}
PARAM_NAME = SCRIPT  # the sweep's parameter, renamed
NOTE = IMG + MARKUP  # a second, string-valued parameter


def _rewrite_jsonl(path: Path, change: Callable[[dict], dict]) -> None:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(change(rec)) + "\n" for rec in lines))


def _rename_metrics(record: dict) -> dict:
    if record.get("type") != "metric":
        return record
    return {METRIC_NAMES.get(k, k): v for k, v in record.items()}


def _hostile_params(row: dict) -> dict:
    return {**row, "params": {PARAM_NAME: row["params"]["lr"], "note": f"{NOTE} {row['task']}"}}


def hostile_copy(source: Path, target: Path) -> Path:
    """``source`` (a run directory the CLI made) copied to ``target`` and rewritten: its name, its metric names
    and, for a sweep, its parameters hold HTML and script."""
    shutil.copytree(source, target, symlinks=True)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["resources"]["name"]["value"] = IMG + SCRIPT
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    for path in (target / "metrics").rglob("rank-*.jsonl"):
        _rewrite_jsonl(path, _rename_metrics)
    if (target / "tasks.jsonl").is_file():
        _rewrite_jsonl(target / "tasks.jsonl", _hostile_params)
    return target


@dataclass
class Hostile:
    """The hostile root: hand-written copies, and the ways out of the root."""

    root: Path
    env: dict[str, str]
    run: str  # a run whose name and metric names hold HTML and script
    sweep: str  # a sweep whose parameters do too
    linked: str  # a run directory that is a symlink to one outside the root
    trap: str  # a run whose report.html and metrics file are symlinks to files outside the root


SECRET = "secret_outside_the_root"


def _traps(clean: Runs, root: Path, outside: Path) -> None:
    shutil.copytree(clean.root / clean.run, outside / "elsewhere", symlinks=True)
    (root / "20260101-000000-linked").symlink_to(outside / "elsewhere", target_is_directory=True)
    trap = shutil.copytree(clean.root / clean.run, root / "20260101-000000-trap", symlinks=True)
    (outside / "report.html").write_text(f"<html><body>{SECRET}</body></html>")
    (trap / "report" / "report.html").unlink()
    (trap / "report" / "report.html").symlink_to(outside / "report.html")
    metrics = trap / "metrics" / "rank-00000.jsonl"
    record = {"v": 2, "type": "metric", "t": time.time(), "rank": 0, "attempt": 0, "step": 1, SECRET: 1.0}
    (outside / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    metrics.unlink()
    metrics.symlink_to(outside / "metrics.jsonl")


@pytest.fixture(scope="session")
def hostile(clean, tmp_path_factory) -> Hostile:
    base = tmp_path_factory.mktemp("hostile")
    root, outside = base / "runs", base / "outside"
    root.mkdir()
    outside.mkdir()
    hostile_copy(clean.root / clean.run, root / "20260101-000000-evilrun")
    hostile_copy(clean.root / clean.sweep, root / "20260101-000000-evilsweep")
    _traps(clean, root, outside)
    return Hostile(
        root,
        clean.hpcx.env,
        "20260101-000000-evilrun",
        "20260101-000000-evilsweep",
        "20260101-000000-linked",
        "20260101-000000-trap",
    )


@pytest.fixture(scope="session")
def hostile_ui(hostile):
    ui = start_ui(hostile.env, hostile.root)
    try:
        yield ui
    finally:
        stop_ui(ui)
