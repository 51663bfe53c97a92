"""report.html of a folder of runs: a sweep (one row per member, mean ± std over seeds for each setting, every
member's curves coloured by setting) or a prune/lottery folder (one row per round, accuracy against the
fraction of weights left with percentage ticks, every round's curves).

Read from what ``trainwell sweep`` and ``trainwell prune`` write (results.json, metrics.jsonl, member-*/ and
round-*/ run directories); nothing here trains.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from trainwell.errors import TrainwellError
from trainwell.rundir import atomic_write_text, read_jsonl
from trainwell.viz import page, runfiles
from trainwell.viz.configview import config_html, config_overrides, read_config, read_json
from trainwell.viz.page import Raw, esc, fmt_loss, fmt_pct, fmt_seconds
from trainwell.viz.report import build_fit_report

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def build(path: str | Path, kind: str) -> Path:
    """Write ``<path>/report.html`` for a ``sweep`` or ``lottery`` folder; return its path."""
    path = Path(path)
    rows = read_json(path / "results.json")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise TrainwellError(f"{path / 'results.json'}: missing or unreadable; the {_label(kind)} has not finished "
                             f"(its runs have their own reports in {path}/*/report.html)")
    rows = runfiles.result_rows(rows, path / "results.json")
    title, body, charts = (_sweep if kind == "sweep" else _prune)(path, rows)
    atomic_write_text(path / "report.html", page.render(title, body, charts))
    return path / "report.html"


def _label(kind: str) -> str:
    return "sweep" if kind == "sweep" else "prune run"


def mean_std(values: list) -> tuple[float, float] | None:
    """Mean and sample standard deviation of the finite numbers in ``values`` (std 0 for one value); None if
    there are none."""
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _pm(values: list, fmt) -> str:
    """``95.10% ± 0.42%``."""
    ms = mean_std(values)
    return "-" if ms is None else f"{fmt(ms[0])} ± {fmt(ms[1])}"


def _curve_charts(runs: list[dict], prefix: str) -> list[dict]:
    """Val loss / val accuracy / train loss per epoch, one curve per run (``runs``: label, color, dash, history)."""
    length = max((len(r["history"]) for r in runs), default=0)
    if not length:
        return []
    xs = list(range(1, length + 1))
    charts = []
    for key, title, ylabel, yfmt in (("val_loss", "Validation loss per epoch", "val loss", "num"),
                                     ("val_acc", "Validation accuracy per epoch", "val accuracy", "pct"),
                                     ("train_loss", "Training loss per epoch", "train loss", "num")):
        series = []
        for r in runs:
            by_epoch = {h.get("epoch"): h.get(key) for h in r["history"]}
            series.append({"label": r["label"], "color": r["color"], "dash": r.get("dash", False),
                           "y": page.finite([by_epoch.get(e - 1) for e in xs])})
        if any(v is not None for s in series for v in s["y"]):
            charts.append({"id": f"{prefix}-{key}", "title": title, "xlabel": "epoch", "ylabel": ylabel,
                           "xfmt": "int", "yfmt": yfmt, "x": xs, "series": series})
    return charts


def _chart_divs(charts: list[dict]) -> str:
    return "<div class='charts'>" + "".join(f"<div class='chart' id='{esc(c['id'])}'></div>" for c in charts) + "</div>"


def _run_link(base: Path, folder: str) -> Raw | str:
    if (base / folder / "report.html").exists():
        return page.link(f"{folder}/report.html", folder)
    return page.link(f"{folder}/", folder) if (base / folder).is_dir() else folder


def _files(base: Path, names: list[str]) -> str:
    items = [f"<li>{page.link(n, n)}</li>" for n in names if (base / n).exists()]
    return f"<ul id='files'>{''.join(items)}</ul>"


def _config_section(base: Path) -> str:
    text = (base / "config.toml").read_text(encoding="utf-8") if (base / "config.toml").exists() else ""
    if not text:
        return ""
    return f"<section id='config-section'><h2>Config</h2>{config_html(text, config_overrides(text))}</section>"


def _fmt_value(v) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


# -- sweep --------------------------------------------------------------------------------------------------
def _sweep(base: Path, rows: list[dict]) -> tuple[str, str, dict]:
    summary = read_json(base / "summary.json", {}) or {}
    grid = summary.get("grid") or {}
    setting_keys = [k for k in rows[0] if k not in METRICS and k not in ("epochs", "stop_epoch", "history")]
    group_keys = [k for k in setting_keys if k != "train.seed"] or setting_keys
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(tuple(_fmt_value(r.get(k)) for k in group_keys), []).append(i)
    colour = {key: PALETTE[g % len(PALETTE)] for g, key in enumerate(groups)}
    member_colour = {i: colour[key] for key, members in groups.items() for i in members}

    history: dict[int, list[dict]] = {}
    for rec in runfiles.history_records(read_jsonl(base / "metrics.jsonl"), base / "metrics.jsonl"):
        if isinstance(rec.get("member"), int):
            history.setdefault(rec["member"], []).append(rec)

    def stop_text(r: dict) -> str:
        return "completed" if r.get("stop_epoch") is None else f"early stop after epoch {r['stop_epoch'] + 1}"

    for i in range(len(rows)):  # population members have run directories but no page of their own yet
        member = base / f"member-{i}"
        if (member / "summary.json").is_file() and not (member / "report.html").exists():
            build_fit_report(member, figures=())
    member_rows = []
    for i, r in enumerate(rows):
        swatch = Raw(f"<span style='color:{member_colour[i]}'>&#9632;</span> ") + _run_link(base, f"member-{i}")
        member_rows.append([Raw(swatch), *[_fmt_value(r.get(k)) for k in setting_keys],
                            *[fmt_pct(r.get(m)) if m.endswith("acc") else fmt_loss(r.get(m)) for m in METRICS],
                            r.get("epochs", "-"), stop_text(r)])
    members_html = page.table(["member", *setting_keys, *METRICS, "epochs", "stop"], member_rows,
                              numeric=set(range(1 + len(setting_keys), 1 + len(setting_keys) + len(METRICS) + 1)))
    setting_rows = []
    for key, members in groups.items():
        pick = [rows[i] for i in members]
        setting_rows.append([Raw(f"<span style='color:{colour[key]}'>&#9632;</span>"), *key, len(members),
                             _pm([r.get("val_acc") for r in pick], fmt_pct),
                             _pm([r.get("test_acc") for r in pick], fmt_pct),
                             _pm([r.get("val_loss") for r in pick], fmt_loss),
                             _pm([r.get("test_loss") for r in pick], fmt_loss)])
    settings_html = page.table(["", *group_keys, "seeds", "val acc", "test acc", "val loss", "test loss"],
                               setting_rows, numeric=set(range(1 + len(group_keys), 6 + len(group_keys))))

    def label(i: int) -> str:
        r = rows[i]
        text = ", ".join(f"{k.split('.')[-1]}={_fmt_value(r.get(k))}" for k in group_keys)
        return f"{i}: {text}" + (f" (seed {r['train.seed']})" if "train.seed" in r and group_keys != setting_keys
                                 else "")

    runs = [{"label": label(i), "color": member_colour[i], "history": history.get(i, [])} for i in range(len(rows))]
    charts = _curve_charts(runs, "sweep")
    name = _config_name(base) or base.name
    overview = page.key_values([
        ("members", len(rows)), ("mode", summary.get("mode", "-")), ("seeds per setting", summary.get("seeds", "-")),
        ("grid", "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in grid.items()) or "-"),
        ("best val accuracy", fmt_pct(summary.get("best_val_acc"))), ("wall time", fmt_seconds(summary.get("wall_s"))),
    ])
    body = f"""
<h1>trainwell sweep: {esc(name)}</h1>
<p><span class='status'>finished: {len(rows)} members</span></p>
<nav><a href='#settings'>settings</a><a href='#members'>members</a><a href='#curves'>curves</a>
<a href='#config-section'>config</a><a href='#files-section'>files</a></nav>
<section id='overview'><h2>Overview</h2>{overview}</section>
<section id='settings'><h2>Settings (mean ± std over seeds)</h2>{settings_html}</section>
<section id='members'><h2>Members</h2>{members_html}</section>
<section id='curves'><h2>Curves of every member</h2><p class='muted'>One colour per setting; drag to zoom,
double-click to reset.</p>{_chart_divs(charts)}</section>
{_config_section(base)}
<section id='files-section'><h2>Files</h2>{_files(base, ['results.csv', 'results.json', 'metrics.jsonl',
                                                          'summary.json', 'config.toml'])}</section>
"""
    return f"trainwell sweep: {name}", body, {"lines": charts, "hists": []}


def _config_name(base: Path) -> str | None:
    path = base / "config.toml"
    return read_config(path.read_text(encoding="utf-8")).get("name") if path.exists() else None


# -- prune --------------------------------------------------------------------------------------------------
def _prune(base: Path, rows: list[dict]) -> tuple[str, str, dict]:
    table_rows = []
    for r in rows:
        folder = Path(str(r.get("run_dir", ""))).name
        table_rows.append([r.get("round"), r.get("kind"), fmt_pct(r.get("density")), fmt_pct(r.get("test_acc")),
                           fmt_pct(r.get("val_acc")), "-" if r.get("early_stop_step") is None
                           else f"{r['early_stop_step']:,}", _run_link(base, folder)])
    results_html = page.table(["round", "kind", "weights left", "test acc", "val acc", "best-val step", "run"],
                              table_rows, numeric={0, 2, 3, 4, 5})
    densities = sorted({r["density"] for r in rows if isinstance(r.get("density"), (int, float))})
    kinds = [k for k in ("ticket", "reinit", "random") if any(r.get("kind") == k for r in rows)]
    series = []
    for k, kind in enumerate(kinds):
        # the dense round 0 is the starting point of every curve
        by_density = {r["density"]: r.get("test_acc") for r in rows if r.get("kind") == kind or r.get("round") == 0}
        series.append({"label": f"{kind} (test accuracy)", "color": PALETTE[k], "dash": kind != "ticket",
                       "points": True, "y": page.finite([by_density.get(d) for d in densities])})
    density_chart = {"id": "chart-density", "title": "Test accuracy vs weights remaining",
                     "xlabel": "weights remaining", "ylabel": "test accuracy", "xfmt": "density", "yfmt": "pct",
                     "xlog": True, "xrev": True, "xsplits": densities, "x": densities, "series": series, "height": 320}
    runs = []
    for r in rows:
        folder = Path(str(r.get("run_dir", ""))).name
        runs.append({"label": f"round {r.get('round')} {r.get('kind')} ({fmt_pct(r.get('density'), 1)})",
                     "color": PALETTE[int(r.get("round") or 0) % len(PALETTE)], "dash": r.get("kind") != "ticket",
                     "history": runfiles.history_records(read_jsonl(base / folder / "metrics.jsonl"),
                                                         base / folder / "metrics.jsonl") if folder else []})
    charts = _curve_charts(runs, "rounds")
    name = _config_name(base / "round-0") or base.name
    body = f"""
<h1>trainwell prune (lottery tickets): {esc(name)}</h1>
<p><span class='status'>finished: {sum(r.get('kind') == 'ticket' for r in rows) - 1} pruning rounds</span></p>
<nav><a href='#results'>results</a><a href='#density'>accuracy vs density</a><a href='#curves'>curves</a>
<a href='#files-section'>files</a></nav>
<section id='results'><h2>Rounds</h2>{results_html}</section>
<section id='density'><h2>Accuracy vs weights remaining</h2><p class='muted'>Log scale, from the dense network
(100%) to the sparsest; ticks at the measured densities.</p>{_chart_divs([density_chart])}</section>
<section id='curves'><h2>Curves of every round</h2><p class='muted'>One colour per round; controls dashed.</p>
{_chart_divs(charts)}</section>
<section id='files-section'><h2>Files</h2>{_files(base, ['results.csv', 'results.json',
                                                          'accuracy_vs_density.png'])}</section>
"""
    return f"trainwell prune: {name}", body, {"lines": [density_chart, *charts], "hists": []}
