"""report.html of a folder of runs: a sweep (mean ± std over seeds for each setting with the best marked, one
curve per setting with a band over its seeds, one row per member) or a prune/lottery folder (one row per round,
accuracy against the fraction of weights left with percentage ticks, every round's curves).

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
from trainwell.viz.configview import config_html, config_overrides, read_config
from trainwell.viz.page import Raw, esc, fmt_loss, fmt_pct, fmt_seconds
from trainwell.viz.report import build_fit_report, with_toggles

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def build(path: str | Path, kind: str) -> Path:
    """Write ``<path>/report.html`` for a ``sweep`` or ``lottery`` folder; return its path."""
    path = Path(path)
    rows = runfiles.read_json(path / "results.json")
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
SEED = "train.seed"


def setting_keys(rows: list[dict], grid: dict) -> tuple[list[str], bool]:
    """The grid's keys (the settings a sweep varies, seeds apart) and whether the rows carry a seed. Without a
    summary.json grid, the config keys (dotted names) of the rows: never ``failed``, ``error`` or a metric."""
    keys = [k for k in grid if k != SEED and any(k in r for r in rows)]
    if not grid:
        keys = [k for k in dict.fromkeys(k for r in rows for k in r) if "." in k and k != SEED]
    return keys, any(SEED in r for r in rows)


def short_labels(keys: list[str]) -> dict[str, str]:
    """``optim.lr`` -> ``lr`` where the last part names one key only, else the full key."""
    last = [k.split(".")[-1] for k in keys]
    return {k: short if last.count(short) == 1 else k for k, short in zip(keys, last, strict=True)}


def best_group(groups: dict[tuple, list[int]], rows: list[dict]) -> tuple | None:
    """The setting with the highest mean validation accuracy (or, without accuracies, the lowest mean
    validation loss); None when no member has either."""
    def score(members):
        acc = mean_std([rows[i].get("val_acc") for i in members])
        loss = mean_std([rows[i].get("val_loss") for i in members])
        return (acc[0], 0.0) if acc else (-math.inf, -loss[0]) if loss else None

    scored = [(score(m), key) for key, m in groups.items() if score(m) is not None]
    return max(scored)[1] if scored else None


def _band_charts(groups: dict[tuple, list[int]], labels: dict, colour: dict, history: dict[int, list[dict]],
                 prefix: str) -> list[dict]:
    """Val loss / val accuracy / train loss per epoch: one curve per setting (the mean over its seeds) with a
    band from the lowest to the highest seed."""
    length = max((len(h) for h in history.values()), default=0)
    xs = list(range(1, length + 1))
    charts = []
    for key, title, ylabel, yfmt in (("val_loss", "Validation loss per epoch", "val loss", "num"),
                                     ("val_acc", "Validation accuracy per epoch", "val accuracy", "pct"),
                                     ("train_loss", "Training loss per epoch", "train loss", "num")):
        series, bands = [], []
        for group, members in groups.items():
            per_epoch = [[v for i in members for h in history.get(i, []) if h.get("epoch") == e - 1
                          for v in [h.get(key)] if isinstance(v, (int, float)) and math.isfinite(v)] for e in xs]
            series.append({"label": labels[group], "color": colour[group],
                           "y": [statistics.fmean(v) if v else None for v in per_epoch], "width": 2})
            if len(members) > 1:
                n = len(series)
                series.append({"label": "", "color": colour[group], "band": True,
                               "y": [max(v) if v else None for v in per_epoch]})
                series.append({"label": "", "color": colour[group], "band": True,
                               "y": [min(v) if v else None for v in per_epoch]})
                bands.append({"series": [n + 1, n + 2], "fill": colour[group] + "26"})
        if any(v is not None for s in series for v in s["y"]):
            charts.append({"id": f"{prefix}-{key}", "title": title, "xlabel": "epoch", "ylabel": ylabel,
                           "xfmt": "int", "yfmt": yfmt, "x": xs, "series": series, "bands": bands})
    return charts


def _member_status(r: dict) -> str:
    if r.get("error"):
        return f"error: {r['error']}"
    if r.get("failed"):
        return "failed"
    return "completed" if r.get("stop_epoch") is None else f"early stop after epoch {r['stop_epoch'] + 1}"


def _members_table(base: Path, rows: list[dict], group_keys: list[str], seeded: bool, member_colour: dict) -> str:
    """One row per member: its settings and seed, final metrics, epochs and status (failed members marked)."""
    member_rows = []
    for i, r in enumerate(rows):
        swatch = Raw(f"<span style='color:{member_colour[i]}'>&#9632;</span> ") + _run_link(base, f"member-{i}")
        member_rows.append([Raw(swatch), *[_fmt_value(r.get(k)) for k in group_keys],
                            *([r.get(SEED, "-")] if seeded else []),
                            *[fmt_pct(r.get(m)) if m.endswith("acc") else fmt_loss(r.get(m)) for m in METRICS],
                            r.get("epochs", "-"), _member_status(r)])
    first_metric = 1 + len(group_keys) + seeded
    members_html = page.table(["member", *group_keys, *(["seed"] if seeded else []), *METRICS, "epochs", "status"],
                              member_rows, numeric=set(range(first_metric, first_metric + len(METRICS) + 1)),
                              row_class=lambda i: "failed" if rows[i].get("failed") or rows[i].get("error") else "")
    return members_html


def _settings_table(rows: list[dict], groups: dict[tuple, list[int]], group_keys: list[str], colour: dict,
                    best: tuple | None) -> str:
    """One row per setting: mean ± std over its seeds, how many failed; the best setting marked."""
    setting_rows = []
    for key, members in groups.items():
        pick = [rows[i] for i in members]
        mark = Raw(f"<span style='color:{colour[key]}'>&#9632;</span>" + (" <b>★ best</b>" if key == best else ""))
        setting_rows.append([mark, *key, len(members), sum(bool(r.get("failed") or r.get("error")) for r in pick),
                             _pm([r.get("val_acc") for r in pick], fmt_pct),
                             _pm([r.get("test_acc") for r in pick], fmt_pct),
                             _pm([r.get("val_loss") for r in pick], fmt_loss),
                             _pm([r.get("test_loss") for r in pick], fmt_loss)])
    order = list(groups)
    settings_html = page.table(["", *group_keys, "seeds", "failed", "val acc", "test acc", "val loss", "test loss"],
                               setting_rows, numeric=set(range(1 + len(group_keys), 7 + len(group_keys))),
                               row_class=lambda i: "best" if order[i] == best else "")
    return settings_html


def _shared_classes(summary: dict) -> list[tuple[str, str]]:
    """The class names and label notes every member shares (a table's text labels), as a fit's overview shows them."""
    names = summary.get("class_names")
    rows = [("classes", f"{len(names)}: " + ", ".join(f"{i} = {n}" for i, n in enumerate(names)))] if names else []
    return rows + [("label note", str(note)) for note in summary.get("label_notes") or []]


def _sweep(base: Path, rows: list[dict]) -> tuple[str, str, dict]:
    summary = runfiles.read_json(base / "summary.json", {}) or {}
    grid = summary.get("grid") or {}
    group_keys, seeded = setting_keys(rows, grid)
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(tuple(_fmt_value(r.get(k)) for k in group_keys), []).append(i)
    colour = {key: PALETTE[g % len(PALETTE)] for g, key in enumerate(groups)}
    member_colour = {i: colour[key] for key, members in groups.items() for i in members}
    best = best_group(groups, rows) if len(groups) > 1 else None
    short = short_labels(group_keys)
    labels = {key: ("★ " if key == best else "") + (", ".join(f"{short[k]}={v}" for k, v in zip(group_keys, key,
                                                                                                 strict=True))
                                                    or "all members") for key in groups}

    history: dict[int, list[dict]] = {}
    for rec in runfiles.history_records(read_jsonl(base / "metrics.jsonl"), base / "metrics.jsonl"):
        if isinstance(rec.get("member"), int):
            history.setdefault(rec["member"], []).append(rec)

    for i in range(len(rows)):  # population members have run directories but no page of their own yet
        member = base / f"member-{i}"
        if (member / "summary.json").is_file() and not (member / "report.html").exists():
            build_fit_report(member, figures=())
    members_html = _members_table(base, rows, group_keys, seeded, member_colour)
    settings_html = _settings_table(rows, groups, group_keys, colour, best)
    charts = with_toggles(_band_charts(groups, labels, colour, history, "sweep"))
    name = _config_name(base) or base.name
    failed = sum(bool(r.get("failed") or r.get("error")) for r in rows)
    overview = page.key_values([
        ("members", len(rows)), ("mode", summary.get("mode", "-")), ("seeds per setting", summary.get("seeds", "-")),
        ("grid", "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in grid.items()) or "-"),
        ("best setting (by mean val accuracy)", labels[best].lstrip("★ ") if best is not None else "-"),
        ("best val accuracy", fmt_pct(summary.get("best_val_acc"))), ("failed members", failed),
        ("wall time", fmt_seconds(summary.get("wall_s"))), *_shared_classes(summary),
    ])
    status = (f"<span class='status failed'>finished: {failed} of {len(rows)} members failed</span>" if failed
              else f"<span class='status'>finished: {len(rows)} members</span>")
    body = f"""
<h1>trainwell sweep: {esc(name)}</h1>
<p>{status}</p>
<nav><a href='#settings'>settings</a><a href='#curves'>curves</a><a href='#members'>members</a>
<a href='#config-section'>config</a><a href='#files-section'>files</a></nav>
<section id='overview'><h2>Overview</h2>{overview}</section>
<section id='settings'><h2>Settings (mean ± std over seeds)</h2>{settings_html}</section>
<section id='curves'><h2>Curves by setting</h2><p class='muted'>One colour per setting: the mean over its seeds,
the shaded band from the lowest to the highest seed; ★ marks the best setting. Drag to zoom, double-click to reset;
click a legend entry to hide it.</p>{_chart_divs(charts)}</section>
<section id='members'><h2>Members</h2>{members_html}</section>
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
    charts = with_toggles(_curve_charts(runs, "rounds"))
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
