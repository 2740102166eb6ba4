"""The dashboard's server over real HTTP: the token, the path rule, read-only, the routes' documents, the
headers that keep a run's strings from running as code."""

from __future__ import annotations

import http.client
import json
import os
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcx.rundir.layout import LOGS_DIR, metrics_dir, profile_dir, rank_file, report_file
from hpcx.rundir.records import FORMAT_VERSION
from hpcx.ui import access, server

HOSTILE = '<img src=x onerror="window.__pwned=1">'


def _metric(step: int, **values) -> str:
    return (
        json.dumps({"type": "metric", "t": 100.0 + step, "rank": 0, "attempt": 0, "step": step, **values})
        + "\n"
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    r1 = root / "20261208-000000-aaaaaa"
    r1.mkdir(parents=True)
    manifest = {
        "kind": {"value": "serial"},
        "resources": {"name": {"value": HOSTILE}},
        "command": ["python", "x.py"],
    }
    (r1 / "manifest.json").write_text(json.dumps(manifest))
    (r1 / "job.json").write_text(json.dumps({"scheduler": "local", "job_id": "local-1"}))
    (r1 / LOGS_DIR).mkdir()
    (r1 / LOGS_DIR / "local-1.exit").write_text("0\n")  # the local backend's record of how the job ended
    path = rank_file(metrics_dir(r1), 0)
    path.parent.mkdir(parents=True)
    path.write_text(_metric(1, loss=2.0) + _metric(2, loss=1.0))
    report = report_file(r1, None)
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"line": "done", "summary": {"wall_s": 3.5}, "advice": ["ok"]}))
    report_file(r1, None, ".html").write_text("<html><script>window.x=1</script>report</html>")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.html").write_text("secret report")
    r2 = root / "20261208-000000-bbbbbb"
    report_file(r2, None).parent.mkdir(parents=True)
    os.symlink(outside / "report.html", report_file(r2, None, ".html"))
    os.symlink(outside, root / "20261208-000000-cccccc")
    return root


@pytest.fixture
def dash(root: Path) -> Iterator[server.Dashboard]:
    srv = server.serve(root.resolve(), "127.0.0.1", 0, access.new_token(), server.plotly_js())
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def get(dash: server.Dashboard, path: str, *, token: bool = True, method: str = "GET", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", dash.server_address[1], timeout=10)
    sent = dict(headers or {})
    if token:
        sent["Cookie"] = f"{access.COOKIE}={dash.token}"
    conn.request(method, path, headers=sent)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


R1 = "20261208-000000-aaaaaa"


@pytest.mark.parametrize(
    "path", ["/", f"/run/{R1}", f"/api/run/{R1}", "/api/runs", "/static/app.js", "/nope"]
)
def test_every_route_refuses_a_request_without_the_token(dash, path):
    resp, body = get(dash, path, token=False)
    assert resp.status == 403
    assert b"token" in body and HOSTILE.encode() not in body
    resp, _ = get(dash, path, token=False, headers={"Cookie": f"{access.COOKIE}=wrong"})
    assert resp.status == 403
    resp, _ = get(dash, path + ("&" if "?" in path else "?") + "token=wrong", token=False)
    assert resp.status == 403


def test_the_printed_url_sets_a_cookie_that_the_page_requests_carry(dash):
    resp, body = get(dash, f"/?token={dash.token}", token=False)
    assert resp.status == 200 and b'data-page="runs"' in body
    cookie = resp.getheader("Set-Cookie")
    assert cookie == access.set_cookie(dash.token)
    resp, _ = get(dash, "/api/runs", token=False, headers={"Cookie": cookie.split(";")[0]})
    assert resp.status == 200
    resp, _ = get(dash, "/")  # with the cookie alone: no new cookie
    assert resp.status == 200 and resp.getheader("Set-Cookie") is None


@pytest.mark.parametrize(
    "path",
    [
        "/run/..",
        "/run/..%2F..%2Fetc",
        "/api/run/../x",
        "/api/run/%2e%2e",
        "/api/run/20261208-000000-cccccc",  # a symlink to a directory outside the root
        "/run/20261208-000000-cccccc",
        "/report/20261208-000000-bbbbbb",  # report.html is a symlink to a file outside the root
        "/report/missing",
        "/static/..%2Fserver.py",
        "/static/server.py",
        f"/api/run/{R1}/other",
        "/api/nothing",
    ],
)
def test_nothing_outside_the_root_or_off_the_routes_is_served(dash, path):
    resp, body = get(dash, path)
    assert resp.status == 404, (path, body)
    assert b"secret" not in body


def test_the_dashboard_is_read_only(dash):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        resp, body = get(dash, "/api/runs", method=method)
        assert resp.status == 405 and b"read-only" in body
        assert resp.getheader("Allow") == "GET"


def test_pages_forbid_inline_and_foreign_script_and_say_nosniff(dash):
    resp, body = get(dash, f"/run/{R1}")
    policy = resp.getheader("Content-Security-Policy")
    assert (
        "script-src 'self'" in policy
        and "default-src 'none'" in policy
        and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    )
    assert resp.getheader("X-Content-Type-Options") == "nosniff"
    assert resp.getheader("Referrer-Policy") == "no-referrer"  # the token in the URL goes nowhere
    assert b"<script>" not in body  # the only scripts are /static's
    assert b'<script src="/static/plotly.min.js"></script>' in body and b'data-run="' + R1.encode() in body


def test_a_report_page_is_served_sandboxed_so_its_script_cannot_run(dash):
    resp, body = get(dash, f"/report/{R1}")
    assert resp.status == 200 and b"report" in body
    assert resp.getheader("Content-Security-Policy").startswith("sandbox;")
    assert "script-src" not in resp.getheader("Content-Security-Policy")


def test_plotly_and_the_pages_own_script_come_from_the_installed_packages(dash):
    resp, body = get(dash, "/static/plotly.min.js")
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/javascript")
    assert body == server.plotly_js().read_bytes()
    resp, body = get(dash, "/static/app.js")
    assert resp.status == 200 and body == (server.STATIC / "app.js").read_bytes()


def test_the_runs_list_and_a_run_come_as_json_with_the_run_strings_as_data(dash):
    resp, body = get(dash, "/api/runs")
    assert resp.status == 200 and resp.getheader("Cache-Control") == "no-store"
    runs = {r["run_id"]: r for r in json.loads(body)["runs"]}
    assert runs[R1]["name"] == HOSTILE and runs[R1]["step"] == 2
    assert runs[R1]["metric"] == {"name": "loss", "value": 1.0}
    assert "run_dir" not in runs[R1]
    resp, body = get(dash, f"/api/run/{R1}")
    doc = json.loads(body)
    assert doc["name"] == HOSTILE and doc["kind"] == "serial" and doc["command"] == ["python", "x.py"]
    assert doc["state"]["state"] == "COMPLETED" and doc["sweep"] is False
    assert doc["state"]["live"]["step"] == 2 and doc["state"]["live"]["main_value"] == 1.0
    assert doc["report"] == {"line": "done", "summary": {"wall_s": 3.5}, "advice": ["ok"], "html": True}


def test_series_answers_only_what_the_file_gained_since_the_cursor(dash, root):
    resp, body = get(dash, f"/api/run/{R1}/series?cursor=%7B%7D")
    first = json.loads(body)
    assert first["series"] == {"": {"loss": [[1, 2.0], [2, 1.0]]}}
    with open(rank_file(metrics_dir(root / R1), 0), "a", encoding="utf-8") as fh:
        fh.write(_metric(3, loss=0.5))
    cursor = json.dumps(first["cursor"])
    resp, body = get(dash, f"/api/run/{R1}/series?cursor={urllib.parse.quote(cursor)}")
    assert json.loads(body)["series"] == {"": {"loss": [[3, 0.5]]}}


def test_a_metrics_file_linked_out_of_the_root_is_not_read(dash, root, tmp_path):
    path = rank_file(metrics_dir(root / R1), 0)
    (tmp_path / "outside" / "m.jsonl").write_text(_metric(1, secret=1.0))
    path.unlink()
    os.symlink(tmp_path / "outside" / "m.jsonl", path)
    resp, body = get(dash, f"/api/run/{R1}/series")
    assert resp.status == 200 and json.loads(body) == {"cursor": {}, "series": {}, "reset": []}


@pytest.mark.parametrize(
    "query,word",
    [
        ("cursor=notjson", "cursor is not JSON"),
        ("cursor=%5B1%5D", "JSON object"),
        ("tasks=1,x", "tasks=0,3,7"),
    ],
)
def test_a_malformed_query_is_a_400_naming_the_fix(dash, query, word):
    resp, body = get(dash, f"/api/run/{R1}/series?{query}")
    assert resp.status == 400 and word.encode() in body
    resp, body = get(dash, f"/api/run/{R1}/timelines?task=-1")
    assert resp.status == 400 and b"not a task number" in body


def test_timelines_come_from_the_profile_records_of_the_last_attempt(dash, root):
    profile = profile_dir(root / R1)
    profile.mkdir(parents=True)
    node = [
        {"type": "start", "t": 10.0, "node": "n1"},
        {
            "type": "sample",
            "t": 11.0,
            "node": "n1",
            "memory": {"used_mb": 100.0},
            "network": {"rx_bytes": 0, "tx_bytes": 0},
        },
        {
            "type": "sample",
            "t": 12.0,
            "node": "n1",
            "memory": {"used_mb": 150.0},
            "network": {"rx_bytes": 2**20, "tx_bytes": 0},
        },
    ]
    (profile / "node-n1.jsonl").write_text(
        "".join(json.dumps({"v": FORMAT_VERSION, **r}) + "\n" for r in node)
    )
    rank = [
        {"type": "start", "t": 0.0, "rank": 0},
        {"type": "sample", "t": 1.0, "rank": 0, "rss_mb": 99.0, "cpu_s": 5.0},
        {"type": "start", "t": 20.0, "rank": 0},  # a requeued attempt: only its samples are drawn
        {"type": "sample", "t": 21.0, "rank": 0, "rss_mb": 10.0, "cpu_s": 1.0},
        {"type": "sample", "t": 23.0, "rank": 0, "rss_mb": 12.0, "cpu_s": 2.0},
    ]
    rank_file(profile, 0).write_text("".join(json.dumps({"v": FORMAT_VERSION, **r}) + "\n" for r in rank))
    resp, body = get(dash, f"/api/run/{R1}/timelines")
    doc = json.loads(body)
    assert [n["node"] for n in doc["nodes"]] == ["n1"]
    timeline = doc["nodes"][0]["timeline"]
    assert timeline["mem_used_mb"] == [100.0, 150.0] and timeline["net_rx_mb_s"] == [None, 1.0]
    assert doc["ranks"] == [{"rank": 0, "t": [0.0, 2.0], "rss_mb": [10.0, 12.0], "cpu_cores": [None, 0.5]}]


def _study(root: Path, objectives: list[dict]) -> Path:
    from hpcx.rundir.layout import STUDY_FILE
    from hpcx.tune.store import TrialFiles

    run = root / "20261208-000000-dddddd"
    run.mkdir()
    spec = {"name": "s", "space": {"lr": {}}, "objectives": objectives, "budget": {"trials": 9}}
    (run / STUDY_FILE).write_text(json.dumps({"format": 1, "digest": "x", "spec": spec}))
    files = TrialFiles(run)
    for n in range(4):
        files.create(n, {"params": {"lr": 0.1 * (n + 1)}, "created_at": 100.0 + n, "retry_of": None})
    return run


def test_a_study_page_gets_trials_best_so_far_and_its_pareto_front(dash, root):
    from hpcx.tune.store import TrialFiles

    run = _study(
        root, [{"metric": "loss", "direction": "minimize"}, {"metric": "ms", "direction": "minimize"}]
    )
    files = TrialFiles(run)
    files.record_rung(0, 3, [2.0, 5.0])
    files.finish(0, "complete", values=[1.0, 9.0])
    files.finish(1, "complete", values=[2.0, 1.0])
    files.finish(2, "complete", values=[3.0, 10.0])  # dominated by trial 0
    files.record_rung(3, 3, [9.0, 9.0])
    files.finish(3, "stopped", rung=3, reason="stopped at rung 3")
    resp, body = get(dash, f"/api/study/{run.name}")
    doc = json.loads(body)
    assert resp.status == 200 and doc["name"] == "s" and doc["params"] == ["lr"]
    assert [t["state"] for t in doc["trials"]] == ["complete", "complete", "complete", "stopped"]
    assert doc["trials"][3]["stopped_rung"] == 3 and doc["trials"][0]["rungs"] == [[3, [2.0, 5.0]]]
    assert doc["pareto"] == [0, 1]
    assert [p[1] for p in doc["best_over_time"]] == [1.0, 1.0, 1.0]  # trial 0 ended first and stays best
    assert doc["summary"]["states"] == {"complete": 3, "stopped": 1}
    resp, body = get(dash, f"/study/{run.name}")
    assert resp.status == 200 and b'data-page="study"' in body
    assert get(dash, f"/api/study/{R1}")[0].status == 404  # a run that is no study


def test_best_so_far_follows_the_direction():
    from hpcx.ui.data import best_over_time

    rows = [
        {"state": "complete", "values": [v], "ended_at": t, "created_at": 10.0}
        for v, t in ((0.5, 12.0), (0.9, 13.0), (0.2, 14.0))
    ]
    assert best_over_time(rows, "minimize") == [[2.0, 0.5], [3.0, 0.5], [4.0, 0.2]]
    assert best_over_time(rows, "maximize") == [[2.0, 0.5], [3.0, 0.9], [4.0, 0.9]]
