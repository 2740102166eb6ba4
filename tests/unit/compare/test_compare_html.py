"""`hpcx compare --out DIR`: compare.html is one self-contained file (no network, the plots inlined as SVG)
whose replicate table traces every number to its run, task and file; run parameters are HTML-escaped; the
plots are deterministic vector files with units, intervals and every replicate; Chromium renders the page."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from hpcx.fsutil import atomic_write, atomic_write_json
from hpcx.rundir.records import read_records
from hpcx.runs import create_run
from hpcx.submit.sweep_submit import task_table
from hpcx.submit.sweeps import expand, parse_spec
from tests.unit.compare.test_compare import _log

pytest.importorskip("numpy")
pytest.importorskip("matplotlib")

# A parameter value with everything HTML (and Markdown tables, and XML comments in the SVG) must escape.
NASTY = "a<b & \"c\" 'd' |e| --> <script>x</script>"
# Final step times per (lr, repeat), in seconds: a logged metric whose unit the name tells (_s).
TIMES = {0.01: [5.2, 5.5, 5.0, 5.3], 0.1: [3.1, 3.5, 3.0, 3.2]}
STYLE_URLS = re.compile(r"url\((?!#)|@import|@font-face", re.I)
FETCHING = {"src", "href", "xlink:href", "action", "formaction", "poster", "data", "srcset", "background"}


def _sweep(runs_root, monkeypatch):
    """A 2 lr x 1 tag x 4 repeats sweep, each task logging step_time_s through hpcx.runtime.log."""
    spec = parse_spec(
        {
            "name": "scan",
            "command": ["python", "train.py", "--lr", "{lr}"],
            "parameters": {"grid": {"lr": list(TIMES), "tag": [NASTY]}, "repeats": 4},
        }
    )
    run = create_run(runs_root)
    tasks = expand(spec)
    atomic_write(run.dir / "tasks.jsonl", task_table(tasks))
    atomic_write_json(run.dir / "manifest.json", {"variables": {}, "resources": {}})
    seen = dict.fromkeys(TIMES, 0)
    for task in tasks:
        lr = task.params["lr"]
        final = TIMES[lr][seen[lr]]
        seen[lr] += 1
        _log_time(monkeypatch, run.dir, task.id, [(1, final + 1.0), (2, final)])
    return run, tasks


def _log_time(monkeypatch, run_dir, task, points):
    """As tests/unit/compare/test_compare.py's _log (rank 0 of a task, a fresh writer), logging step_time_s."""
    from hpcx.runtime import metrics

    _log(monkeypatch, run_dir, task, [])
    for step, value in points:
        metrics.log(step, step_time_s=value)


class Page(HTMLParser):
    """Every start tag with its attributes, the text, the comments, and the cells of each table row."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.style: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._stack.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        while self._stack and self._stack.pop() != tag:
            pass

    def handle_data(self, data):
        self.text.append(data)
        if self._stack and self._stack[-1] == "style":
            self.style.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _page(path):
    page = Page()
    page.feed(path.read_text())
    page.close()
    return page


def _compare(hpcx, run, out, *extra):
    return hpcx.json("compare", "--sweep", run.id, "--metric", "step_time_s", "--out", str(out), *extra)


def test_html_is_self_contained_and_traces_every_value(hpcx, runs_root, monkeypatch, tmp_path):
    run, tasks = _sweep(runs_root, monkeypatch)
    out = tmp_path / "cmp"
    doc = _compare(hpcx, run, out, "--ci", "percentile", "--resamples", "2000", "--seed", "7")
    assert sorted(p.name for p in out.iterdir()) == [
        "compare.html",
        "compare.json",
        "compare.md",
        "curves.pdf",
        "curves.svg",
        "differences.pdf",
        "differences.svg",
        "groups.pdf",
        "groups.svg",
    ]
    assert str(out / "compare.html") in doc["written"]
    html = (out / "compare.html").read_text()
    page = _page(out / "compare.html")

    # No network: nothing to fetch, no script, no stylesheet link, no CSS url() or font.
    names = [t for t, _ in page.tags]
    assert html.startswith("<!DOCTYPE html>") and "script" not in names and "link" not in names
    assert not {"img", "iframe", "object", "embed", "audio", "video"} & set(names)
    for tag, attrs in page.tags:
        for key, value in attrs.items():
            if key in FETCHING:
                assert value and value.startswith("#"), (tag, key, value)  # in-page anchors only
            if value and "http" in value:
                assert key.startswith("xmlns"), (tag, key, value)  # namespace names are never fetched
    assert page.style and not STYLE_URLS.search("".join(page.style))
    assert not re.search(r"<script|<link|src\s*=\s*[\"']?(https?:)?//", html, re.I)
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids))  # two inlined plots, no clashing ids
    for _, attrs in page.tags:  # every in-page reference resolves
        ref = attrs.get("href") or attrs.get("xlink:href")
        if ref:
            assert ref[1:] in ids, ref
    for value in re.findall(r"url\(#([^)]+)\)", html):
        assert value in ids

    # The plots are inline SVG, drawn: the groups plot holds one marker per replicate.
    assert names.count("svg") == 3 and html.count('<svg role="img"') == 3  # groups, differences, curves
    groups_svg = html[html.index('id="plot-groups"') : html.index('id="plot-differences"')]
    points = re.findall(
        r'<use xlink:href="#groups-[^"]+" x="[-\d.]+" y="[-\d.]+" style="fill: #808080"', groups_svg
    )
    assert len(points) == len(tasks)  # a grey (0.5) marker per replicate

    # The header: metric, how it was reduced, interval method, level, resamples, seed.
    settings = {r[0]: r[1] for r in page.rows if len(r) == 2}
    assert settings["metric"] == "step_time_s (s)" and settings["reduced"].startswith("last of rank 0's")
    assert settings["interval"].startswith("percentile") and settings["level"] == "0.95"
    assert settings["resamples"] == "2000" and settings["seed"] == "7"
    assert settings["correction"] == "holm over 1 comparison(s)" and settings["runs"] == run.id

    # The tables carry the document's numbers; the comparison has both tests, raw and corrected.
    group_name = f"lr=0.01,tag={NASTY}"
    (group_row,) = [r for r in page.rows if r[:2] == [group_name, "4"]]
    g = doc["groups"][0]
    assert group_row[2] == f"{g['mean']:.4g} [{g['ci']['low']:.4g}, {g['ci']['high']:.4g}]"
    head = next(r for r in page.rows if r[:3] == ["A", "B", "A - B"])
    assert head[4:11] == [
        "Welch p",
        "Welch p (holm)",
        "MWU p",
        "MWU p (holm)",
        "Cohen's d",
        "Cliff's delta",
        "seeds needed",
    ]
    (c,) = doc["comparisons"]
    row = page.rows[page.rows.index(head) + 1]
    assert row[0] == group_name and row[2] == f"{c['difference']:.4g}"
    ps = [c["welch"]["p"], c["p_adjusted"], c["mann_whitney"]["p"], c["mann_whitney"]["p_adjusted"]]
    assert c["welch"]["p"] < 1e-4 and row[4] == f"{c['welch']['p']:.2e}"  # the size of a tiny p, not "<1e-4"
    assert [float(cell) for cell in row[4:8]] == pytest.approx(ps, rel=0.01)
    assert row[8] == f"{c['cohens_d']:.3g}" and row[9] == "1" and row[10] == str(c["seeds_needed"]["n"])

    # Every replicate, traceable: its run id, task, seed and value, and the file its value is the last of.
    reps = [r for r in page.rows if len(r) == 8 and r[1] == run.id]
    assert len(reps) == len(tasks) == sum(g["n"] for g in doc["groups"])
    by_task = {t.id: t for t in tasks}
    for group, _run, task, seed, value, file, field, how in reps:
        t = by_task[int(task)]
        assert group == f"lr={t.params['lr']:g},tag={NASTY}" and seed == str(t.seed)
        assert file == f"metrics/task-{t.id:05d}/rank-00000.jsonl" and field == "step_time_s"
        logged = [r["step_time_s"] for r in read_records(run.dir / file) if "step_time_s" in r]
        assert float(value) == logged[-1] and how == "last of 2 logged step(s)"
    assert {float(r[4]) for r in reps} == {v for vs in TIMES.values() for v in vs}

    # Run parameters are escaped everywhere: shown as text, never markup.
    assert NASTY not in html and "<script>x" not in html
    assert "a&lt;b &amp; &quot;c&quot; &#x27;d&#x27; |e| --&gt; &lt;script&gt;x&lt;/script&gt;" in html
    assert sum(NASTY in t for t in page.text) >= len(tasks) + 3  # replicate rows, group rows, comparison


def test_markdown_carries_the_replicate_table(hpcx, runs_root, monkeypatch, tmp_path):
    run, tasks = _sweep(runs_root, monkeypatch)
    out = tmp_path / "cmp"
    doc = _compare(hpcx, run, out)
    md = (out / "compare.md").read_text()
    assert NASTY not in md and "<script>" not in md
    tag = "a&lt;b &amp; \"c\" 'd' \\|e\\| --&gt; &lt;script&gt;x&lt;/script&gt;"
    assert "| setting | value |" in md and "| metric | step_time_s (s) |" in md
    assert "| A | B | A - B | 95% CI | Welch p | Welch p (holm) | MWU p | MWU p (holm) |" in md
    assert "| group | run | task | seed | value | file | field | how |" in md
    for g in doc["groups"]:
        for r in g["replicates"]:
            line = (
                f"| lr={g['params']['lr']:g},tag={tag} | {run.id} | {r['task']} | {r['seed']} | "
                f"{r['value']!r} | metrics/task-{r['task']:05d}/rank-00000.jsonl | step_time_s |"
            )
            assert line in md
    # Every table row has as many cells as its head: the escaped pipes did not split a cell.
    for block in re.findall(r"(?:^\|.*\|$\n?)+", md, re.M):
        rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in block.strip().splitlines()]
        assert len({len(r) for r in rows}) == 1, block


def test_plots_are_labelled_vector_files_with_the_same_bytes_each_time(
    hpcx, runs_root, monkeypatch, tmp_path
):
    run, tasks = _sweep(runs_root, monkeypatch)
    first, second = tmp_path / "one", tmp_path / "two"
    _compare(hpcx, run, first)
    _compare(hpcx, run, second)
    for name in (
        "groups.svg",
        "differences.svg",
        "groups.pdf",
        "differences.pdf",
        "compare.html",
        "compare.md",
        "curves.pdf",
        "curves.svg",
    ):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    svg = (first / "groups.svg").read_text()
    # The text is drawn as glyph paths (no font needed); matplotlib names each text in a comment.
    assert "<text" not in svg and "<!-- step_time_s (s) -->" in svg and "<!-- replicate -->" in svg
    assert "<!-- mean, 95% t interval -->" in svg and "Date" not in svg
    diff = (first / "differences.svg").read_text()
    assert "<!-- difference of the mean: step_time_s (s) -->" in diff and "p (holm)" in diff
    pdf = (first / "groups.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"/Type3" not in pdf and b"/FontFile2" in pdf  # TrueType embedded
    assert b"/CreationDate" not in pdf
    # A different comparison draws different plots (the equality above is not vacuous).
    _compare(hpcx, run, second, "--level", "0.9")
    assert (first / "groups.svg").read_bytes() != (second / "groups.svg").read_bytes()


def _colours(png):
    import matplotlib.image
    import numpy as np

    pixels = (matplotlib.image.imread(str(png))[..., :3] * 255).round().astype(np.int64)
    flat = pixels.reshape(-1, 3)
    return pixels.shape, {tuple(c) for c in np.unique(flat, axis=0)}


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_chromium_renders_the_page_with_its_plots(hpcx, runs_root, monkeypatch, tmp_path):
    run, _ = _sweep(runs_root, monkeypatch)
    out = tmp_path / "cmp"
    _compare(hpcx, run, out)
    shot = tmp_path / "page.png"
    cmd = [
        shutil.which("chromium"),
        "--headless=new",
        "--disable-gpu",
        "--no-sandbox",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--no-first-run",
        "--disable-extensions",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        (out / "compare.html").as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    shape, colours = _colours(shot)
    assert shape[:2] == (2000, 1200)
    assert len(colours) > 50  # text, tables and plots, not a blank page
    # The plots were drawn: matplotlib's C0 blue (intervals) and the replicates' grey (0.5) are on screen.
    assert (31, 119, 180) in colours and (128, 128, 128) in colours
    json.loads((out / "compare.json").read_text())  # the page's numbers are beside it
