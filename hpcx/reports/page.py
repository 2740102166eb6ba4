"""The page kit: what every hpcx HTML page is built from (report.html, compare.html, the dashboard's pages).

One stylesheet, one escaping rule, one table, one SVG inliner and one document shell, so the pages look alike
and keep the same promises: self-contained (the style, any script and every plot inline; nothing fetched, no
font, no url() but in-page anchors) and every value from a run escaped (a parameter or name with HTML in it
is data, shown as text). Pure string functions, stdlib only.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;
padding:0 16px 48px;color:#1d2430;background:#fff}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;
padding-bottom:3px}
.sub{color:#5a6475;margin:0 0 12px}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));
gap:8px}
.card{border:1px solid #d8dde6;border-radius:6px;padding:8px 10px}.card b{display:block;font-size:17px}
.card span{color:#5a6475;font-size:12px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}th,td{padding:3px 9px;border-bottom:1px solid #e6e9ef;
text-align:left;vertical-align:top}
th{background:#f3f5f8;cursor:default}th.sortable{cursor:pointer}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.id{white-space:nowrap}
td.id,td.file{font:12px ui-monospace,Menlo,Consolas,monospace}tbody.group:nth-of-type(even) td{background:#fafbfc}
.advice li{margin:4px 0}.na{color:#8a93a3}.bad{color:#b42318}p.note{color:#7a4b00}
figure{margin:8px 0}figure svg{max-width:100%;height:auto}figure.plot svg{width:min(100%,40em)}
figcaption{font-size:13px;color:#444}footer{margin-top:2em;font-size:12px;color:#666}
code,pre{font:12px ui-monospace,monospace}pre{background:#f3f5f8;padding:8px;overflow-x:auto}
"""


class Raw(str):
    """HTML that is already safe (built from escaped parts): a table cell given as Raw is not escaped again."""


def esc(value: Any) -> str:
    """``value`` as HTML text, quotes included (safe in an attribute too); None as nothing."""
    return html.escape("" if value is None else str(value), quote=True)


def cell(value: Any, cls: str = "") -> str:
    """One ``<td>``: text escaped; Raw as it is; a number right-aligned; ``(text, number)`` shows the text and
    sorts by the number (``data-v``, what sortable tables read)."""
    attrs = f' class="{cls}"' if cls else ""
    if isinstance(value, Raw):
        return f"<td{attrs}>{value}</td>"
    if isinstance(value, tuple):
        text, key = value
        return f'<td class="num" data-v="{esc(key)}">{esc(text)}</td>'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num">{esc(value)}</td>'
    return f"<td{attrs}>{esc(value)}</td>"


def row(values: Sequence[Any], classes: Sequence[str] = ()) -> str:
    """A ``<tr>`` of cells; ``classes`` gives each column's class (num, id, file or "")."""
    return (
        "<tr>"
        + "".join(cell(v, classes[i] if i < len(classes) else "") for i, v in enumerate(values))
        + "</tr>"
    )


def _head(head: Sequence[str]) -> str:
    return "<thead><tr>" + "".join(f'<th scope="col">{esc(h)}</th>' for h in head) + "</tr></thead>"


def _opening(cls: Sequence[str]) -> str:
    names = " ".join(c for c in cls if c)
    return f'<table class="{names}">' if names else "<table>"


def table(
    head: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    classes: Sequence[str] = (),
    sortable: bool = False,
    cls: str = "",
) -> str:
    """A table: ``head`` the column names, each row's cells as :func:`cell` takes them, ``classes`` per
    column; ``sortable`` lets a click on a header sort the rows (with :data:`SORT_JS` on the page)."""
    body = "\n".join(row(r, classes) for r in rows)
    opening = _opening([cls, "sort" if sortable else ""])
    return f"{opening}\n{_head(head)}\n<tbody>\n{body}\n</tbody>\n</table>"


def grouped_table(
    head: Sequence[str],
    groups: Iterable[tuple[str, Iterable[Sequence[Any]]]],
    *,
    classes: Sequence[str] = (),
    cls: str = "",
) -> str:
    """A table whose rows come in groups, each a ``<tbody class="group" id=...>`` a link can point at."""
    bodies = [
        f'<tbody class="group" id="{esc(anchor)}">\n'
        + "\n".join(row(r, classes) for r in rows)
        + "\n</tbody>"
        for anchor, rows in groups
    ]
    return f"{_opening([cls])}\n{_head(head)}\n" + "\n".join(bodies) + "\n</table>"


def pairs_table(pairs: Iterable[tuple[Any, Any]], *, cls: str = "") -> str:
    """Name-value rows, the name a row header (a page's settings or provenance)."""
    body = "\n".join(f'<tr><th scope="row">{esc(k)}</th>{cell(v)}</tr>' for k, v in pairs)
    return f"{_opening([cls])}\n<tbody>\n{body}\n</tbody>\n</table>"


def inline_svg(text: str, prefix: str) -> str:
    """A matplotlib SVG file as an element inside HTML: the XML prolog, DOCTYPE and RDF metadata dropped (they
    name URLs, though none is fetched), every id prefixed with ``prefix`` so two plots' ids cannot clash."""
    body = text[text.index("<svg") :]
    body = re.sub(r"\s*<metadata>.*?</metadata>", "", body, flags=re.S)
    body = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', body)
    body = body.replace('href="#', f'href="#{prefix}-').replace("url(#", f"url(#{prefix}-")
    return body.replace("<svg ", f'<svg role="img" aria-label="{esc(prefix)} plot" ', 1).rstrip() + "\n"


def figure(svg_text: str, name: str, caption: str = "", *, cls: str = "", anchor: str = "") -> str:
    """An inline SVG plot (its ids prefixed with ``name``) in a ``<figure>`` whose id is ``anchor`` (default
    ``plot-NAME``), with an escaped caption when given."""
    attrs = f' class="{cls}"' if cls else ""
    under = f"<figcaption>{esc(caption)}</figcaption>\n" if caption else ""
    return f'<figure id="{esc(anchor or "plot-" + name)}"{attrs}>{inline_svg(svg_text, name)}{under}</figure>'


# Makes the tables of class "sort" sortable by a click on a column header; nothing else runs.
SORT_JS = """
(function(){
  function key(td){var t=td.getAttribute('data-v');if(t===null)t=td.textContent;var x=parseFloat(t);
    return isNaN(x)?t:x;}
  document.querySelectorAll('table.sort').forEach(function(table){
    table.querySelectorAll('thead th').forEach(function(th,col){
      th.classList.add('sortable');
      th.addEventListener('click',function(){
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows),up=th.dataset.dir!=='up';
        rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
          return (x<y?-1:x>y?1:0)*(up?1:-1);});
        th.dataset.dir=up?'up':'down';rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
  document.documentElement.setAttribute('data-hpcx','ready');
})();
"""


def document(title: str, body: Iterable[str], *, script: str = "", head: str = "") -> str:
    """The whole page: doctype, UTF-8, the viewport, the escaped ``title``, the kit's stylesheet inline, ``head``
    (links that belong in <head>, already HTML), the ``body`` parts (already HTML; empty ones left out) one per
    line, and an inline ``script`` when given."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head>\n<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>",
        head,
        "</head>\n<body>",
        *(part for part in body if part),
        f"<script>{script}</script>" if script else "",
        "</body>\n</html>\n",
    ]
    return "\n".join(p for p in parts if p)
