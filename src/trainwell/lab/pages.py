"""One page per lab experiment (``<out>/<name>/report.html``): the claim and its source, every seed's verdict,
each criterion's measured effect and interval beside its threshold with the part that decided it, the numbers
as a table (one column per seed), every seed's figures, the control's verdict if one was run, and the published
number (LITERATURE) where the experiment has one.

Every value is escaped; only PNGs under the experiment's own ``figures/`` are embedded
(:func:`trainwell.lab.summaries.figure_file`), whatever a summary says.
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

from trainwell.lab.summaries import STATUSES, figure_file, shown
from trainwell.rundir import atomic_write_text
from trainwell.viz import page
from trainwell.viz.page import Raw, esc

PAGE = "report.html"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # an experiment folder the lab may write a page into
SKIP = ("criteria", "literature")  # evidence keys shown elsewhere on the page
MAX_LIST = 12  # list items shown in a numbers cell


def badge(verdict) -> Raw:
    """A verdict's status as a coloured label (``inconclusive (quick size)``)."""
    if verdict is None:  # only the experiment's control was run
        return Raw("<span class='muted'>not run</span>")
    verdict = verdict if isinstance(verdict, dict) else {}
    status = verdict.get("status")
    cls = status if status in STATUSES else "error"
    return Raw(f"<span class='verdict {cls}'>{esc(shown(verdict))}</span>")


def fmt(value) -> str:
    """A measured value as the page shows it: numbers to 4 significant digits, long lists shortened."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        items = ", ".join(fmt(v) for v in value[:MAX_LIST])
        return f"[{items}{f', ... ({len(value)} values)' if len(value) > MAX_LIST else ''}]"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def flatten(evidence, prefix: str = "") -> list[tuple[str, object]]:
    """``{"width 3": {"train_acc": 0.58}}`` -> ``[("width 3 / train_acc", 0.58)]`` (criteria and literature are
    shown in their own sections)."""
    if not isinstance(evidence, dict):
        return [(prefix or "value", evidence)]
    out = []
    for key, value in evidence.items():
        if not prefix and key in SKIP:
            continue
        name = f"{prefix} / {key}" if prefix else str(key)
        out.extend(flatten(value, name) if isinstance(value, dict) and value else [(name, value)])
    return out


def numbers_table(per_seed: list[dict]) -> str:
    """The evidence of every seed as one table: a row per measured quantity, a column per seed."""
    columns = [dict(flatten(p.get("verdict", {}).get("evidence"))) for p in per_seed]
    keys = list(dict.fromkeys(k for c in columns for k in c))
    if not keys:
        return "<p class='muted'>No numbers recorded.</p>"
    rows = [[k, *[fmt(c.get(k)) if k in c else "" for c in columns]] for k in keys]
    return page.table(["quantity", *[f"seed {p.get('seed')}" for p in per_seed]], rows,
                      numeric=set(range(1, 1 + len(per_seed))))


def why(c: dict) -> str:
    """Which part of a criterion decided it: where its interval lies against its threshold."""
    effect, lo, hi, t, status = (c.get(k) for k in ("effect", "lo", "hi", "threshold", "status"))
    if c.get("method") == "exact":
        return "holds" if status == "pass" else f"measured {fmt(effect)}, expected {fmt(t)}"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi)):
        n = c.get("n")
        return (f"no interval ({'n = ' + str(n) if n is not None else 'not estimated'}): one measurement cannot "
                f"decide" if status == "inconclusive" else f"no interval; status {status}")
    if status == "pass":
        return f"the whole interval lies above {fmt(t)}"
    if status == "fail":
        if hi < t:
            return f"the whole interval lies below {fmt(t)}: upper end {fmt(hi)} < {fmt(t)}"
        return f"no part of the interval lies above {fmt(t)}: upper end {fmt(hi)} = {fmt(t)}"
    if status == "inconclusive":
        return f"the interval contains {fmt(t)}: lower end {fmt(lo)} <= {fmt(t)} < upper end {fmt(hi)}"
    return str(status)


def criteria_table(per_seed: list[dict]) -> str:
    """Each seed's criteria: the measured effect and its interval beside the threshold, and why it is what it is."""
    rows, failed = [], []
    for p in per_seed:
        crit = (p.get("verdict", {}).get("evidence") or {})
        crit = crit.get("criteria") if isinstance(crit, dict) else None
        for c in crit if isinstance(crit, list) else []:
            if not isinstance(c, dict):
                continue
            interval = "-" if c.get("lo") is None and c.get("hi") is None else \
                f"[{fmt(c.get('lo'))}, {fmt(c.get('hi'))}]"
            threshold = fmt(c.get("threshold")) if c.get("method") == "exact" else f"> {fmt(c.get('threshold'))}"
            rows.append([c.get("name"), p.get("seed"), fmt(c.get("effect")), interval, threshold,
                         "-" if c.get("n") is None else c.get("n"), c.get("method"), badge(c), why(c)])
            failed.append(c.get("status") == "fail")
    if not rows:
        return ""
    return page.table(["criterion", "seed", "measured", "95% interval", "threshold", "n", "method", "status",
                       "why"], rows, numeric={2, 5}, row_class=lambda i: "failed" if failed[i] else "")


def _figures(folder: Path, summary: dict) -> str:
    """Every seed's figures, embedded (only the experiment's own figures/*.png)."""
    per_seed = summary.get("per_seed") or []
    out = []
    for k, p in enumerate(per_seed):
        rels = p.get("figures") if isinstance(p.get("figures"), list) else (summary.get("figures", []) if k == 0
                                                                              else [])
        imgs = []
        for rel in rels:
            path = figure_file(folder, rel)
            if path is not None:
                data = base64.b64encode(path.read_bytes()).decode()
                imgs.append(f"<img alt='{esc(rel)}' src='data:image/png;base64,{data}'>")
        if imgs:
            out.append(f"<h3>Seed {esc(p.get('seed'))}</h3>{''.join(imgs)}")
    return "".join(out) or "<p class='muted'>No figures.</p>"


def _seeds(per_seed: list[dict]) -> str:
    rows = [[p.get("seed"), badge(p.get("verdict")), page.fmt_seconds(p.get("wall_s"))
             if isinstance(p.get("wall_s"), (int, float)) else "-"] for p in per_seed]
    errors = [f"<details><summary>seed {esc(p.get('seed'))}: {esc((p['verdict'].get('evidence') or {}).get('error'))}"
              f"</summary><pre>{esc(p['verdict'].get('traceback'))}</pre></details>"
              for p in per_seed if isinstance(p.get("verdict"), dict) and p["verdict"].get("status") == "error"]
    return page.table(["seed", "verdict", "time"], rows) + "".join(errors)


def _control(ctrl: dict | None) -> str:
    if not ctrl:
        return ""
    per_seed = ctrl.get("per_seed") or []
    return (f"<section id='control'><h2>Control: {badge(ctrl.get('verdict'))}</h2>"
            f"<p>{esc(ctrl.get('control'))} ({esc(ctrl.get('size'))} size; a control should never pass)</p>"
            f"{_seeds(per_seed)}{criteria_table(per_seed)}</section>")


def literature(summary: dict) -> str | None:
    """The published number the experiment compares with, if it has one."""
    if isinstance(summary.get("literature"), str):
        return summary["literature"]
    for p in summary.get("per_seed") or []:
        ev = p.get("verdict", {}).get("evidence") if isinstance(p.get("verdict"), dict) else None
        if isinstance(ev, dict) and isinstance(ev.get("literature"), str):
            return ev["literature"]
    return None


def write_page(summary: dict, folder: Path, control: dict | None = None) -> Path | None:
    """Write ``folder/report.html`` for one experiment's ``summary`` (and its ``control``); None when ``folder``
    is not an experiment folder the lab may write into (a name that is not a plain name, a link)."""
    if not SAFE_NAME.fullmatch(folder.name) or folder.is_symlink() or not folder.is_dir():
        return None
    per_seed = [p for p in summary.get("per_seed") or [] if isinstance(p, dict)]
    verdict = summary.get("verdict") if isinstance(summary.get("verdict"), dict) else {}
    lit = literature(summary)
    overview = page.key_values([
        ("source", summary.get("paper") or "-"),
        ("size", summary.get("size")), ("seeds", ", ".join(map(str, summary.get("seeds") or [])) or "-"),
        ("time", page.fmt_seconds(summary.get("wall_s")) if isinstance(summary.get("wall_s"), (int, float)) else "-"),
        ("versions", f"trainwell {summary.get('trainwell_version', '-')}, torch {summary.get('torch_version', '-')}"),
    ])
    config = summary.get("config")
    config_html = "" if not isinstance(config, dict) else (
        "<details><summary>Config (first seed)</summary>"
        + page.key_values([(k, fmt(v)) for k, v in config.items()]) + "</details>")
    headline = badge(None if summary.get("verdict") is None else verdict)  # None: only the control was run
    crit = criteria_table(per_seed)
    body = f"""
<p><a href='../index.html'>&larr; all experiments</a></p>
<h1>{esc(summary.get('name'))}: {headline}</h1>
<p>{esc(summary.get('claim'))}</p>
<section id='overview'><h2>Overview</h2>{overview}{config_html}</section>
<section id='seeds'><h2>Verdict of every seed</h2>{_seeds(per_seed)}</section>
<section id='criteria'><h2>Threshold and measured values</h2><p>{esc(verdict.get('threshold'))}</p>
{crit or "<p class='muted'>This verdict has no criteria with intervals; its numbers are below.</p>"}</section>
{f"<section id='literature'><h2>Literature</h2><p>{esc(lit)}</p></section>" if lit else ""}
<section id='numbers'><h2>Numbers</h2>{numbers_table(per_seed)}</section>
<section id='figures'><h2>Figures</h2>{_figures(folder, summary)}</section>
{_control(control)}
<section id='files-section'><h2>Files</h2><ul>{''.join(f"<li>{page.link(n, n)}</li>" for n in
                                                  ('summary.json', 'result.json') if (folder / n).is_file())}</ul>
</section>
"""
    atomic_write_text(folder / PAGE, page.static(f"trainwell lab: {summary.get('name')}", body))
    return folder / PAGE
