"""HTML building blocks of a report page: numbers formatted as the CLI prints them, escaped tables, and the one
self-contained page (CSS, the vendored uPlot library, the chart glue and the data inlined: it works from a
``file://`` URL, offline).

Charts are uPlot (https://github.com/leeoniya/uPlot, MIT, 51 kB minified, vendored in ``viz/vendor``): zoom by
dragging, hover read-outs, log scales, bars; small enough to inline into every report without a CDN.
``report.js`` turns the page's JSON chart specs into uPlot charts.

Example:
    >>> fmt_int(52810), fmt_pct(0.951), fmt_loss(0.38241)
    ('52,810', '95.10%', '0.3824')
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

VENDOR = Path(__file__).parent / "vendor"
GLUE = Path(__file__).parent / "report.js"

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;
color:#1f2328;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.05em;margin:1em 0 .3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}td,th{border:1px solid #d0d7de;padding:3px 9px;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.88em}
.pass{color:#1a7f37;font-weight:600}.warn{color:#9a6700;font-weight:600}.fail{color:#cf222e;font-weight:600}.skip{color:#6e7781}.info{color:#0969da}
.status{padding:.15em .6em;border-radius:1em;background:#ddf4ff;font-size:.85em}
.status.running{background:#fff8c5}.status.stopped{background:#ffebe9}
.status.failed{background:#cf222e;color:#fff;font-weight:600}
.verdict{padding:.1em .5em;border-radius:.8em;font-weight:600;font-size:.9em;white-space:nowrap}
.verdict.pass{background:#dafbe1;color:#116329}.verdict.fail{background:#ffebe9;color:#a40e26}
.verdict.inconclusive{background:#fff8c5;color:#7d4e00}.verdict.unstable{background:#fbefff;color:#6e40c9}
.verdict.error{background:#eaeef2;color:#24292f}
tr.failed td{background:#fff5f5}tr.best td{background:#dafbe1}
.u-legend{font-size:.78em;line-height:1.15}.u-legend .u-series{padding:0 .2em}.u-legend .u-series>*{padding:1px 2px}
.u-legend th{font-weight:500}
.chart{position:relative}.log-toggle{position:absolute;top:2px;right:4px;font-size:.75em;padding:1px 6px;
border:1px solid #d0d7de;border-radius:4px;background:#f6f8fa;cursor:pointer}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{flex:1 1 480px;min-width:320px}
.hists{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:8px}
mark{background:#fff3b0}nav a{margin-right:1em}.muted{color:#656d76;font-size:.9em}
img{max-width:100%}details{margin:.5em 0}
"""


class Raw(str):
    """Markup that :func:`cell` inserts as it is (everything else is escaped)."""


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def cell(value) -> str:
    return value if isinstance(value, Raw) else esc(value)


def fmt_int(value) -> str:
    """``52810`` -> ``52,810`` (as the CLI prints parameter counts)."""
    return "-" if value is None else f"{int(value):,}"


def fmt_pct(value, digits: int = 2) -> str:
    """``0.951`` -> ``95.10%`` (as the CLI prints accuracies)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):  # None, or text an older file holds
        return "-"
    return f"{100 * value:.{digits}f}%"


def fmt_loss(value) -> str:
    """A loss with four decimals (``0.3824``), or ``-``; very small or large values in scientific notation."""
    if value is None or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.3e}"


def fmt_seconds(value) -> str:
    return "-" if value is None else f"{value:,.1f} s"


def table(headers: list[str], rows: list[list], numeric: set[int] = frozenset(), row_class=None) -> str:
    """An HTML table; columns whose index is in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f" class='{esc(row_class(i))}'" if row_class and row_class(i) else ""
        cells = "".join(f"<td{' class=n' if j in numeric else ''}>{cell(v)}</td>" for j, v in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def key_values(rows: list[tuple[str, object]]) -> str:
    """A two-column table of labelled values."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{cell(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def status(value: str) -> Raw:
    return Raw(f"<span class='{esc(value)}'>{esc(value)}</span>")


def link(href: str, text: str) -> Raw:
    return Raw(f"<a href='{esc(href)}'>{esc(text)}</a>")


_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def json_for_script(data) -> str:
    """JSON to embed in a ``<script>`` element: ``<``, ``>`` and ``&`` are written as ``\\u003c``, ``\\u003e``,
    ``\\u0026`` (the same string to a JSON parser), so no value (``</script>``, ``<!--<script>``) can end the
    element or switch the HTML parser into another state, whatever a grid value, metric key or layer name holds."""
    text = json.dumps(data, allow_nan=False, default=str)
    return text.translate(_SCRIPT_SAFE)  # non-ASCII is already escaped by json.dumps (ensure_ascii)


def render(title: str, body: str, charts: dict) -> str:
    """The whole page: ``body`` (HTML) plus the chart specs in ``charts`` (drawn by ``report.js``)."""
    css = (VENDOR / "uPlot.min.css").read_text(encoding="utf-8")
    lib = (VENDOR / "uPlot.iife.min.js").read_text(encoding="utf-8")
    glue = GLUE.read_text(encoding="utf-8")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{esc(title)}</title>
<style>{css}</style><style>{STYLE}</style></head><body>
{body}
<script type="application/json" id="trainwell-data">{json_for_script(charts)}</script>
<script>{lib}</script>
<script>{glue}</script>
</body></html>
"""


def static(title: str, body: str) -> str:
    """A page without charts (the lab's pages): the same style, no script, works from ``file://``."""
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width,initial-scale=1\"><title>{esc(title)}</title><style>{STYLE}</style>"
            f"</head><body>\n{body}\n</body></html>\n")


def finite(values) -> list:
    """Values for a chart: non-finite numbers become null (a gap in the curve)."""
    out = []
    for v in values:
        out.append(v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None)
    return out
