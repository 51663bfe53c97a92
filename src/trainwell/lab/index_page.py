"""The lab's index page: ``index.json`` and a self-contained ``index.html`` of the experiments' summaries."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from trainwell.lab.summaries import _number, _reusable_any, figure_file, shown
from trainwell.rundir import atomic_write_json, atomic_write_text

COLORS = {"pass": "#17803d", "fail": "#b3261e", "inconclusive": "#b26b00", "unstable": "#8a3ffc", "error": "#555"}


def _evidence_html(evidence) -> str:
    return f"<pre>{html.escape(json.dumps(evidence, indent=1, default=str))}</pre>"


def _esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _seconds(value) -> str:
    return f"{value:.1f} s" if _number(value) else "-"


def _badge(verdict: dict) -> str:
    st = verdict.get("status")
    return f'<b style="color:{COLORS.get(st, "#000")}">{_esc(shown(verdict))}</b>'


def _criteria_html(verdict: dict) -> str:
    """Each criterion of an interval verdict: effect [lo, hi] against its threshold."""
    crit = (verdict.get("evidence") or {}).get("criteria") if isinstance(verdict.get("evidence"), dict) else None
    if not isinstance(crit, list):
        return ""

    def num(v):
        return f"{v:.4g}" if _number(v) else _esc(v)

    items = "".join(f"<li>{_esc(c.get('name'))}: {num(c.get('effect'))} [{num(c.get('lo'))}, {num(c.get('hi'))}] "
                    f"vs {num(c.get('threshold'))} ({_esc(c.get('method'))}) &rarr; {_esc(c.get('status'))}</li>"
                    for c in crit if isinstance(c, dict))
    return f"<ul>{items}</ul>"


def _control_of(folder: Path) -> dict | None:
    """The control's summary in ``folder/control``, if it holds a valid one."""
    ctrl = folder / "control"
    if not _reusable_any(ctrl):
        return None
    return json.loads((ctrl / "summary.json").read_text(encoding="utf-8"))


def write_index(summaries: list[dict], out: Path) -> Path:
    """Write ``index.json`` and a self-contained ``index.html`` (figures embedded) for ``summaries``.

    Every value on the page is escaped, and only PNGs under each experiment's own ``figures/`` are embedded
    (:func:`figure_file`), whatever a summary says."""
    atomic_write_json(out / "index.json", [{k: s.get(k) for k in ("name", "claim", "size", "seeds", "verdict",
                                                                   "wall_s", "figures")} for s in summaries])
    counts = {}
    for s in summaries:
        counts[s["verdict"]["status"]] = counts.get(s["verdict"]["status"], 0) + 1
    rows, sections = [], []
    for s in summaries:
        name = s["name"]
        badge = _badge(s["verdict"])
        ctrl = _control_of(out / name)
        ctrl_badge = _badge(ctrl["verdict"]) if ctrl else "-"
        rows.append(f'<tr><td><a href="#{_esc(name)}">{_esc(name)}</a></td>'
                    f'<td>{_esc(s.get("claim"))}</td><td>{badge}</td><td>{ctrl_badge}</td>'
                    f'<td>{_seconds(s.get("wall_s"))}</td></tr>')
        ctrl_html = "" if not ctrl else (
            f'<h3>Control: {ctrl_badge}</h3><p>{_esc(ctrl.get("control"))} ({_esc(ctrl.get("size"))} size; a control '
            f'should never pass)</p><ul>'
            + "".join(f"<li>seed {_esc(p.get('seed'))}: {_badge(p.get('verdict', {}))}</li>"
                      for p in ctrl.get("per_seed", []))
            + f'</ul>{_evidence_html(ctrl["verdict"].get("evidence"))}')
        imgs = []
        for rel in s.get("figures", []):
            path = figure_file(out / name, rel)
            if path is not None:
                data = base64.b64encode(path.read_bytes()).decode()
                imgs.append(f'<img alt="{_esc(rel)}" src="data:image/png;base64,{data}">')
        seeds = "".join(f"<li>seed {_esc(p.get('seed'))}: {_badge(p.get('verdict', {}))} "
                        f"({_seconds(p.get('wall_s'))}){_criteria_html(p.get('verdict', {}))}</li>"
                        for p in s.get("per_seed", []))
        sections.append(
            f'<h2 id="{_esc(name)}">{_esc(name)}: {badge}</h2>'
            f'<p>{_esc(s.get("claim"))}</p><p><i>{_esc(s.get("paper", ""))}</i></p>'
            f'<p>Threshold: {_esc(s["verdict"].get("threshold", ""))}</p>'
            f'<p>{_esc(s.get("size"))} size, {_seconds(s.get("wall_s"))}</p><ul>{seeds}</ul>'
            f'{_evidence_html(s["verdict"].get("evidence"))}{"".join(imgs)}{ctrl_html}')
    tally = ", ".join(f"{v} {_esc(k)}" for k, v in sorted(counts.items()))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>trainwell lab</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;"
        "vertical-align:top}img{max-width:100%}pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:85%}"
        "</style></head><body>"
        f"<h1>trainwell lab</h1><p>{len(summaries)} experiments: {tally}</p>"
        "<table><tr><th>experiment</th><th>claim</th><th>verdict</th><th>control</th><th>time</th></tr>"
        f"{''.join(rows)}</table>{''.join(sections)}</body></html>"
    )
    atomic_write_text(out / "index.html", page)
    return out / "index.html"
