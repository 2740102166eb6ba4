"""The dashboard's HTTP server: the standard library's threading server, GET only, every answer computed from the
runs root when asked (nothing is pushed; the pages poll).

Routes (every one needs the token; hpcx.ui.access):
  /                       the runs list          /api/runs                    its rows
  /run/RUN                a run's page           /api/run/RUN                 its state, tasks, report headline
                                                 /api/run/RUN/series          new curve points since a cursor
                                                 /api/run/RUN/timelines       node and rank timelines
  /sweep/RUN              a sweep's page         /api/sweep/RUN               tasks, parameters, metric
  /study/RUN              a tuning study's page  /api/study/RUN               trials, best so far, Pareto front
  /report/RUN[?task=N]    the job's report.html, sandboxed (no script of a run directory's runs here)
  /static/NAME            the pages' script and style, and plotly.js from the plotly package

Answers that ask the scheduler (the runs list, a run's state) are kept for CACHE_S so that several open pages
cost one query; curve points are never cached (a refresh reads only what files gained).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hpcx.ui import access, data, pages, series

CACHE_S = 2.0
STATIC = Path(__file__).with_name("static")
OWN_STATIC = {"app.js": "text/javascript", "ui.css": "text/css"}
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# A report.html from a run directory is shown as a document with no script and no origin of its own.
REPORT_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"


class Dashboard(ThreadingHTTPServer):
    """The server and what its handlers share: the runs root, the token, the scheduler answers' cache."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], root: Path, token: str, plotly_js: Path) -> None:
        super().__init__(address, Handler)
        self.root = root
        self.token = token
        self.plotly_js = plotly_js
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
        value = make()
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value


class NotFound(Exception):
    """The answer is 404: what was asked for is not inside the runs root."""


class BadRequest(Exception):
    """The answer is 400, with this message."""


class Handler(BaseHTTPRequestHandler):
    server: Dashboard
    server_version = "hpcx-ui"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a dashboard polled every few seconds would flood the terminal."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        given = (query.get("token") or [""])[0]
        cookie = access.cookie_token(self.headers.get("Cookie"))
        if not access.token_matches(self.server.token, given or cookie):
            self._send(
                HTTPStatus.FORBIDDEN, b"403: this dashboard needs its token (the URL hpcx ui printed)\n"
            )
            return
        extra = {"Set-Cookie": access.set_cookie(self.server.token)} if given else {}
        try:
            self._route([p for p in url.path.split("/")[1:] if p != ""], query, extra)
        except NotFound:
            self._send(HTTPStatus.NOT_FOUND, b"404: not found in this runs root\n")
        except BadRequest as exc:
            self._send(HTTPStatus.BAD_REQUEST, f"400: {exc}\n".encode())

    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"405: the dashboard is read-only\n", {"Allow": "GET"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def _route(self, parts: list[str], query: dict[str, list[str]], extra: dict[str, str]) -> None:
        head, rest = (parts[0] if parts else ""), parts[1:]
        if head == "" and not rest:
            self._page(pages.runs_page(), extra)
        elif head in ("run", "sweep", "study") and len(rest) == 1:
            self._run_dir(rest[0])
            page = {"run": pages.run_page, "sweep": pages.sweep_page, "study": pages.study_page}[head]
            self._page(page(rest[0]), extra)
        elif head == "report" and len(rest) == 1:
            self._report(rest[0], _task(query))
        elif head == "static" and len(rest) == 1:
            self._static(rest[0])
        elif head == "api":
            self._json(self._api(rest, query), extra)
        else:
            raise NotFound

    def _api(self, parts: list[str], query: dict[str, list[str]]) -> Any:
        root = self.server.root
        if parts == ["runs"]:
            return self.server.cached("runs", lambda: data.runs_doc(root))
        if len(parts) < 2 or parts[0] not in ("run", "sweep", "study") or len(parts) > 3:
            raise NotFound
        run_dir = self._run_dir(parts[1])
        what = parts[2] if len(parts) == 3 else ""
        if parts[0] == "study" and not what:
            study = data.study_doc(root, run_dir)
            if study is None:
                raise NotFound
            return study
        if parts[0] == "sweep" and not what:
            return self.server.cached("sweep/" + parts[1], lambda: data.sweep_doc(root, run_dir))
        if parts[0] == "run" and not what:
            return self.server.cached("run/" + parts[1], lambda: data.run_doc(root, run_dir))
        if parts[0] == "run" and what == "series":
            return _series(root, run_dir, query)
        if parts[0] == "run" and what == "timelines":
            return data.timelines_doc(root, run_dir, _task(query))
        raise NotFound

    def _run_dir(self, run_id: str) -> Path:
        found = access.run_dir(self.server.root, run_id)
        if found is None:
            raise NotFound
        return found

    def _report(self, run_id: str, task: int | None) -> None:
        from hpcx.rundir.layout import report_file

        path = report_file(self._run_dir(run_id), task, ".html")
        if not access.contained(self.server.root, path):
            raise NotFound
        body = path.read_bytes()
        self._send(
            HTTPStatus.OK, body, {"Content-Security-Policy": REPORT_POLICY}, "text/html; charset=utf-8"
        )

    def _static(self, name: str) -> None:
        if name == "plotly.min.js":
            path, kind = self.server.plotly_js, "text/javascript"
        elif name in OWN_STATIC:
            path, kind = STATIC / name, OWN_STATIC[name]
        else:
            raise NotFound
        headers = {"Cache-Control": "max-age=3600"}
        self._send(HTTPStatus.OK, path.read_bytes(), headers, f"{kind}; charset=utf-8")

    def _page(self, text: str, extra: dict[str, str]) -> None:
        headers = {"Content-Security-Policy": PAGE_POLICY, **extra}
        self._send(HTTPStatus.OK, text.encode("utf-8"), headers, "text/html; charset=utf-8")

    def _json(self, doc: Any, extra: dict[str, str]) -> None:
        body = json.dumps(doc, allow_nan=False, default=str).encode("utf-8")
        self._send(HTTPStatus.OK, body, extra, "application/json")

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        headers: dict[str, str] | None = None,
        kind: str = "text/plain; charset=utf-8",
    ) -> None:
        self.send_response(status)
        merged = {"Cache-Control": "no-store", **(headers or {})}
        for name, value in {
            "Content-Type": kind,
            "Content-Length": str(len(body)),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            **merged,
        }.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _task(query: dict[str, list[str]]) -> int | None:
    value = (query.get("task") or [""])[0]
    if value == "":
        return None
    if not value.isdigit():
        raise BadRequest(f"task {value!r} is not a task number")
    return int(value)


def _series(root: Path, run_dir: Path, query: dict[str, list[str]]) -> dict[str, Any]:
    """New points since the page's cursor: ``?cursor=`` a JSON object (file key -> byte offset), ``?tasks=``
    a comma-separated list of a sweep's tasks (absent for a run's own curves)."""
    try:
        cursor = json.loads((query.get("cursor") or ["{}"])[0] or "{}")
    except ValueError as exc:
        raise BadRequest(f"cursor is not JSON: {exc}") from None
    if not isinstance(cursor, dict):
        raise BadRequest("cursor must be a JSON object of file keys to byte offsets")
    tasks = None
    if "tasks" in query:
        text = query["tasks"][0]
        if text and not all(t.isdigit() for t in text.split(",")):
            raise BadRequest(f"tasks {text!r}: give task numbers separated by commas, e.g. tasks=0,3,7")
        tasks = [int(t) for t in text.split(",")] if text else []
    files = {k: p for k, p in series.files_of(run_dir, tasks).items() if _readable(root, p)}
    return series.refresh(files, cursor)


def _readable(root: Path, path: Path) -> bool:
    """A metrics file the refresh may read: inside the root, or not written yet (then it is only stat'ed)."""
    return access.contained(root, path) or not path.exists() and not path.is_symlink()


def serve(root: Path, host: str, port: int, token: str, plotly_js: Path) -> Dashboard:
    """A bound server (``port`` 0 picks a free one); the caller runs ``serve_forever``."""
    return Dashboard((host, port), root, token, plotly_js)


def plotly_js() -> Path:
    """plotly.min.js as the ``plotly`` package installed it (the ``ui`` extra); UsageError naming the fix."""
    import importlib.util

    from hpcx.errors import UsageError

    spec = importlib.util.find_spec("plotly")
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    path = origin.with_name("package_data") / "plotly.min.js" if origin is not None else None
    if path is None or not path.is_file():
        raise UsageError(
            "hpcx ui draws its charts with plotly.js from the plotly package, which is not installed here",
            hint="pip install 'hpcx[ui]'",
        )
    return path
