"""hpcx ui in a real headless Chromium (issue 15, item 4): the pages load with a quiet console and show the runs;
a running job's curve grows while the page is watched, without a reload; the token and the runs root are
enforced (403, 404); strings a run supplies are shown as text and never run; the docs' screenshots."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.browser.conftest import (
    ACC,
    HTTP_S,
    IMG,
    NOTE,
    PARAM_NAME,
    SCRIPT,
    SECRET,
    SWEEP_LRS,
    WAIT_S,
    cli,
    make_driver,
    start_ui,
    stop_ui,
)

GROWTH_S = 5  # new points appear within this, without reloading the page
# The pages name an empty icon in <head>: without it Chromium asks for /favicon.ico, which the server answers 404,
# a console error on every page (test_no_page_asks_for_a_favicon_the_server_lacks).
FAVICON_404 = "/favicon.ico - Failed to load resource: the server responded with a status of 404"


def _wait(driver, condition, timeout_s: float = WAIT_S, message: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(condition, message)


def _wait_equal(driver, value, expected, message: str, timeout_s: float = WAIT_S) -> None:
    """Wait until ``value(driver) == expected``; on timeout fail showing both."""
    from selenium.common.exceptions import TimeoutException

    try:
        _wait(driver, lambda d: value(d) == expected, timeout_s)
    except TimeoutException:
        assert value(driver) == expected, f"{message} (after {timeout_s} s)"


def _noise(driver) -> list[dict]:
    """The console's warnings and errors since the last call (reading the log empties it)."""
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def _load(driver, url: str) -> None:
    """Open ``url`` and wait until its script has started and refreshed once."""
    driver.get(url)
    _wait(driver, lambda d: d.execute_script("return document.documentElement.dataset.hpcx") == "ready")
    _wait(driver, lambda d: _text(d, "#updated").startswith("updated "), message="no refresh")


def _text(driver, css: str) -> str:
    return driver.execute_script(
        f"var e = document.querySelector({json.dumps(css)}); return e ? e.textContent : ''"
    )


def _texts(driver, css: str) -> list[str]:
    script = f"return Array.from(document.querySelectorAll({json.dumps(css)}), e => e.textContent)"
    return driver.execute_script(script)


def _points(driver, metric: str) -> int:
    css = f".plot[data-metric={json.dumps(metric)}]"
    value = driver.execute_script(
        f"var e = document.querySelector({json.dumps(css)}); return e && e.dataset.points"
    )
    return int(value or 0)


# ---------------------------------------------------------------------------------------------- (a) the pages


def test_the_pages_load_with_a_quiet_console_and_show_the_runs(browser, clean, clean_ui):
    _noise(browser)
    _load(browser, clean_ui.page("/"))
    _wait(browser, lambda d: {clean.run, clean.sweep} <= set(_texts(d, "#runs tbody tr td.id a")))
    assert _text(browser, f'#runs tbody tr[data-run="{clean.run}"] td:nth-child(2)') == "train-toy"
    assert _noise(browser) == []

    _load(browser, clean_ui.page(f"/run/{clean.run}"))
    _wait(browser, lambda d: _points(d, "loss") == 40 and _points(d, "acc") == 40, message="curves")
    _wait(browser, lambda d: len(_texts(d, "#timelines .plot")) >= 2, message="timelines")
    assert clean.run in _text(browser, "#title") and _text(browser, "#cards")
    assert _noise(browser) == []

    _load(browser, clean_ui.page(f"/run/{clean.sweep}"))
    _wait(browser, lambda d: len(_texts(d, "#tasks tbody tr")) == 3, message="tasks table")
    _wait(browser, lambda d: _points(d, "loss") == 3 * 20, message="the tasks' curves")
    assert _noise(browser) == []

    _load(browser, clean_ui.page(f"/sweep/{clean.sweep}"))
    _wait(browser, lambda d: len(_texts(d, "#best tbody tr")) == 3, message="best tasks")
    _wait(browser, lambda d: _texts(d, "#scatter .plot .gtitle") == ["lr"], message="scatter")
    assert clean.sweep in _text(browser, "#title")
    assert _noise(browser) == []


def test_no_page_asks_for_a_favicon_the_server_lacks(clean_ui):
    from selenium.common.exceptions import TimeoutException

    driver = make_driver()  # a fresh profile: no favicon cached
    try:
        _load(driver, clean_ui.page("/"))
        seen: list[dict] = []
        try:
            _wait(driver, lambda d: seen.extend(_noise(d)) or seen, timeout_s=3)
        except TimeoutException:
            pass  # three quiet seconds after the page's first refresh
        assert [e for e in seen if FAVICON_404 in e["message"]] == []  # other noise fails the other tests
    finally:
        driver.quit()


# ------------------------------------------------------------------------------------- (b) a curve that grows


def test_a_running_jobs_curve_gains_points_without_a_reload(browser, job_file, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    hpcx = cli(root)
    run = hpcx.json("submit", "serial", "--", "python", str(job_file), "200", "0.2", "0.3")["run_id"]
    ui = None
    try:
        ui = start_ui(hpcx.env, root)
        _noise(browser)
        _load(browser, ui.page(f"/run/{run}"))
        browser.execute_script("window.__same_page = true")
        _wait(browser, lambda d: _points(d, "loss") > 0, message="no point of the running job")
        seen = _points(browser, "loss")
        _wait(
            browser, lambda d: _points(d, "loss") > seen, GROWTH_S, f"still {seen} points after {GROWTH_S} s"
        )
        assert browser.execute_script("return window.__same_page") is True  # the page was not reloaded
        assert _noise(browser) == []
    finally:
        if ui is not None:
            stop_ui(ui)
        hpcx("cancel", run, check=False)
        hpcx.wait_finished(run, timeout_s=30)


# ------------------------------------------------------------------------------------ (c) token and paths


def _urllib_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_S) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_request_without_the_right_token_gets_403(clean, clean_ui):
    for path in ("/", f"/run/{clean.run}", f"/api/run/{clean.run}/series", "/api/runs", "/static/app.js"):
        assert _urllib_status(clean_ui.base + path) == 403, path
        assert _urllib_status(clean_ui.base + path + "?token=" + "x" * len(clean_ui.token)) == 403, path
        assert clean_ui.get(path, {"Cookie": "hpcx_ui_token=wrong"}, token=False)[0] == 403, path
        assert _urllib_status(clean_ui.page(path)) == 200, path
    status, body = clean_ui.get("/api/runs", {"Cookie": f"hpcx_ui_token={clean_ui.token}"}, token=False)
    assert status == 200 and clean.run in body.decode()


def test_a_browser_without_the_token_gets_403(clean, clean_ui):
    driver = make_driver()
    try:
        for path in ("/", f"/run/{clean.run}"):
            driver.get(clean_ui.page(path, token=False))
            assert driver.find_element("tag name", "body").text.startswith(
                "403: this dashboard needs its token"
            )
            assert driver.execute_script("return document.getElementById('app')") is None
            assert any(" 403 " in e["message"] for e in _noise(driver)), path
    finally:
        driver.quit()


def test_dot_dot_and_symlinks_out_of_the_root_get_404(hostile, hostile_ui):
    paths = [
        "/run/..",
        "/run/..%2F..%2Fetc",
        "/run/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/sweep/..%2F..%2Fetc",
        "/api/run/../x",
        "/api/run/..%2F..%2Fetc/series",
        "/api/run/..",
        "/report/..%2Foutside%2Freport.html",
        "/static/..%2Fserver.py",
        f"/run/{hostile.linked}",
        f"/sweep/{hostile.linked}",
        f"/api/run/{hostile.linked}",
        f"/api/run/{hostile.linked}/series",
        f"/api/run/{hostile.linked}/timelines",
        f"/report/{hostile.linked}",
        f"/report/{hostile.trap}",  # its report.html is a symlink to a file outside the root
    ]
    for path in paths:
        status, body = hostile_ui.get(path)
        assert (status, SECRET.encode() in body) == (404, False), path
    assert hostile_ui.get(f"/run/{hostile.trap}")[0] == 200  # the same routes answer what is inside
    assert hostile_ui.get(f"/report/{hostile.run}")[0] == 200


def test_a_metrics_file_symlinked_out_of_the_root_is_not_served(hostile, hostile_ui):
    status, body = hostile_ui.get(f"/api/run/{hostile.trap}/series")
    assert status == 200 and SECRET.encode() not in body
    assert json.loads(body)["series"] == {}
    status, body = hostile_ui.get(f"/api/run/{hostile.run}/series")
    assert status == 200 and IMG in json.loads(body)["series"][""]  # the same route serves a file inside


# ------------------------------------------------------------------------------------------ (d) hostile input


def _harmless(driver) -> None:
    """No script of the run ran, no alert opened, no element was made from its strings, the console is quiet."""
    from selenium.common.exceptions import NoAlertPresentException

    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 (the property raises when no alert is open)
    made = "img[src='x'], main script, .plot svg a, .plot svg tspan[style*='bold']"
    assert driver.execute_script(f"return document.querySelectorAll({json.dumps(made)}).length") == 0
    assert _noise(driver) == []


def test_the_runs_list_shows_a_hostile_name_and_metric_as_text(browser, hostile, hostile_ui):
    _noise(browser)
    _load(browser, hostile_ui.page("/"))
    row = f'#runs tbody tr[data-run="{hostile.run}"]'
    _wait(browser, lambda d: _text(d, f"{row} td:nth-child(2)") == IMG + SCRIPT, message="the name as text")
    assert _text(browser, f"{row} td:nth-child(6)").startswith(IMG + "=")
    _harmless(browser)


def test_a_run_page_shows_a_hostile_name_and_metric_names_as_text(browser, hostile, hostile_ui):
    _noise(browser)
    _load(browser, hostile_ui.page(f"/run/{hostile.run}"))
    _wait(browser, lambda d: _text(d, "#title").startswith(IMG + SCRIPT), message="the name as text")
    _wait(browser, lambda d: _points(d, IMG) == 40 and _points(d, ACC) == 40, message="the curves")
    assert sorted(_texts(browser, "#curves .gtitle")) == sorted([IMG, ACC])
    _harmless(browser)


def test_a_sweeps_run_page_shows_hostile_parameters_as_text(browser, hostile, hostile_ui):
    _noise(browser)
    _load(browser, hostile_ui.page(f"/run/{hostile.sweep}"))
    _wait(browser, lambda d: len(_texts(d, "#tasks tbody tr")) == 3, message="tasks table")
    params = [
        f"{PARAM_NAME}={json.dumps(lr)}, note={json.dumps(f'{NOTE} {t}')}" for t, lr in enumerate(SWEEP_LRS)
    ]
    assert _texts(browser, "#tasks tbody td:nth-child(3)") == params  # the parameters alone, no brackets
    legend = sorted(f"task {t} ({p})" for t, p in enumerate(params))
    _wait_equal(
        browser, lambda d: sorted(_texts(d, "#curves .legendtext")), sorted(legend * 2), "the legends"
    )
    _harmless(browser)


def test_a_sweep_page_shows_hostile_parameters_as_text(browser, hostile, hostile_ui):
    _noise(browser)
    _load(browser, hostile_ui.page(f"/sweep/{hostile.sweep}"))
    _wait(browser, lambda d: len(_texts(d, "#best tbody tr")) == 3, message="best tasks")
    assert _text(browser, "#title") == f"{IMG}{SCRIPT}  {hostile.sweep}"
    assert _texts(browser, "#best thead th") == ["task", IMG, "step", "state", PARAM_NAME, "note"]
    notes = _texts(browser, "#best tbody td:nth-child(6)")
    assert sorted(notes) == sorted(json.dumps(f"{NOTE} {t}") for t in range(3))
    _wait_equal(
        browser, lambda d: sorted(_texts(d, "#scatter .gtitle")), sorted([PARAM_NAME, "note"]), "plots"
    )
    assert {f"{NOTE} {t}" for t in range(3)} <= set(_texts(browser, "#scatter .xtick"))
    _harmless(browser)


# ----------------------------------------------------------------------------------------- (e) screenshots


def _shoot(driver, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert driver.save_screenshot(str(path)), name
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("HPCX_UI_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / name)


def test_screenshots_of_the_three_pages(browser, clean, clean_ui, tmp_path):
    _noise(browser)
    _load(browser, clean_ui.page("/"))
    _wait(browser, lambda d: len(_texts(d, "#runs tbody tr")) == 2, message="runs")
    _shoot(browser, tmp_path, "ui-runs.png")

    _load(browser, clean_ui.page(f"/run/{clean.run}"))
    _wait(browser, lambda d: _points(d, "loss") == 40 and _points(d, "acc") == 40, message="curves")
    _wait(browser, lambda d: len(_texts(d, "#timelines .plot .main-svg")) >= 2, message="timelines")
    _shoot(browser, tmp_path, "ui-run.png")

    _load(browser, clean_ui.page(f"/sweep/{clean.sweep}"))
    _wait(browser, lambda d: len(_texts(d, "#scatter .plot .main-svg")) >= 1, message="scatter")
    _wait(browser, lambda d: len(_texts(d, "#best tbody tr")) == 3, message="best tasks")
    _shoot(browser, tmp_path, "ui-sweep.png")
    assert _noise(browser) == []


# ------------------------------------------------------------------------------------------ a tuning study


def test_a_study_page_shows_its_trials_and_their_rungs_with_hostile_parameters_as_text(browser, tmp_path):
    """A real (tiny) study run by a worker process from hpcx.tune, then its page: the trials table, a curve per
    trial at the rungs, the best so far; a parameter value holding HTML is shown as text."""
    import subprocess
    import sys

    from hpcx.rundir.layout import STUDY_FILE
    from hpcx.tune.spec import parse_study, spec_digest
    from hpcx.tune.store import TrialFiles

    root = tmp_path / "runs"
    run = root / "20261208-000000-eeeeee"
    (run / "trials").mkdir(parents=True)
    (tmp_path / "t.py").write_text(
        "import sys, time\nfrom hpcx import runtime\nfor s in range(1, 10):\n"
        "    time.sleep(0.01)\n    runtime.log(s, loss=float(sys.argv[1]) / s + (sys.argv[2] == 'b'))\n"
    )
    spec = parse_study(
        {
            "name": "tune",
            "kind": "serial",
            "command": ["python", str(tmp_path / "t.py"), "{lr}", "{kind}"],
            "space": {"lr": {"float": [0.1, 1.0]}, "kind": {"choice": ["a", "b", SCRIPT]}},
            "objectives": {"metric": "loss"},
            "budget": {"trials": 6, "resource": {"min": 1, "max": 9}},
            "sampler": "random",
            "stopping": "asha",
        }
    )
    (run / STUDY_FILE).write_text(
        json.dumps({"format": 1, "digest": spec_digest(spec), "spec": spec.to_dict()})
    )
    env = {**cli(root).env, "HPCX_RUN_DIR": str(run), "HPCX_TASK_ID": "0", "HPCX_CONTROL_INTERVAL_S": "0.05"}
    subprocess.run(
        [sys.executable, "-m", "hpcx.tune.worker"], env=env, check=True, timeout=120, capture_output=True
    )
    trials = TrialFiles(run).trials()
    written = json.loads((run / STUDY_FILE).read_text())  # then someone puts HTML into its name by hand
    written["spec"]["name"] = f"tune{IMG}"
    (run / STUDY_FILE).write_text(json.dumps(written))
    ui = start_ui(cli(root).env, root)
    try:
        _noise(browser)
        _load(browser, ui.page(f"/study/{run.name}"))
        _wait(browser, lambda d: len(_texts(d, "#trials tbody tr")) == 6, message="trials table")
        assert _text(browser, "#title") == f"tune{IMG}  {run.name}"
        states = _texts(browser, "#trials tbody td:nth-child(2)")
        assert states == [trials[n].state for n in range(6)]
        _wait_equal(
            browser,
            lambda d: d.find_element("css selector", "#rung-curves").get_attribute("data-trials"),
            str(sum(1 for t in trials.values() if t.rungs)),
            "one curve per trial that reached a rung",
        )
        shown = " ".join(_texts(browser, "#trials tbody td:nth-child(5)"))
        if any(t.params["kind"] == SCRIPT for t in trials.values()):
            assert json.dumps(SCRIPT) in shown
        _harmless(browser)
    finally:
        stop_ui(ui)
