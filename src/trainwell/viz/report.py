"""report.html of a run directory: interactive, self-contained, rebuilt from the files of the run.

A fit run's page has the run's state and stop reason, final metrics, zoomable curves (loss per step, loss and
accuracy per epoch with the best epoch and the stop marked, learning rate, stopping-criterion values),
activation and gradient histograms over time (a slider over the monitor snapshots, one pair of charts per layer,
named by module name), the doctor's verdicts grouped by phase, the model summary, the first layer's weights, the
config with the user's overrides highlighted, and links to the run's files. It works on a finished run, on a
run in progress (the live report rewrites it every few epochs) and on an interrupted one.

:func:`trainwell.viz.build.build_report` chooses this page or a sweep's or prune's (:mod:`trainwell.viz.group_report`).
Epochs are shown 1-based, as users count them; the files keep the 0-based ``epoch`` field.
"""

from __future__ import annotations

import base64
import json
import math
import time
from pathlib import Path

from trainwell.errors import TrainwellError
from trainwell.rundir import RunDir, atomic_write_text, read_jsonl
from trainwell.viz import page, runfiles
from trainwell.viz.configview import config_html, config_overrides, read_config
from trainwell.viz.page import esc, fmt_int, fmt_loss, fmt_pct, fmt_seconds

PHASES = (("pre", "Pre-flight"), ("monitor", "In-flight (monitors)"), ("post", "Post-flight"))
KNOWN_METRICS = {"epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time", "reg_loss"}
STEPS_FILE = "steps.jsonl"
NO_MONITORS = "<p>No monitor snapshots (doctor.monitor_every = 0, or none yet).</p>"
MODEL_FILE = "model.json"
STARTED_FILE = "started.json"  # what is known when training starts: device, parameters, versions
LIVE_FILE = "report-live.js"  # the running page re-loads this every POLL_MS; a new stamp makes it reload itself
POLL_MS = 2000


# -- reading the run ----------------------------------------------------------------------------------------
def read_steps(run: Path, history: list[dict]) -> tuple[list[int], list[float]]:
    """Per-step training losses from ``steps.jsonl``, for the epochs ``metrics.jsonl`` has (after a resume the
    file may hold an epoch twice: the last record wins)."""
    epochs = {r.get("epoch") for r in history}
    by_epoch = {}
    for r in runfiles.step_records(read_jsonl(run / STEPS_FILE), run / STEPS_FILE):
        if r.get("epoch") in epochs and isinstance(r.get("losses"), list):
            by_epoch[r["epoch"]] = r
    xs, ys = [], []
    for epoch in sorted(by_epoch):
        r = by_epoch[epoch]
        first = int(r.get("first_step", 0))
        xs.extend(range(first + 1, first + 1 + len(r["losses"])))
        ys.extend(r["losses"])
    return xs, ys


def layer_titles(model_rows: list[dict]) -> dict[str, str]:
    """``{"3": "3 (ReLU) after 2 (Conv1d)"}``: each module named by its name and type, with the weighted layer
    that feeds it (the activation histograms are taken at the nonlinearities)."""
    titles, feeding = {}, None
    for r in model_rows:
        name, kind = str(r.get("name")), str(r.get("kind"))
        title = f"{name} ({kind})"
        titles[name] = f"{title} after {feeding}" if feeding and not r.get("params") else title
        if r.get("params"):
            feeding = title
    return titles


# -- sections -----------------------------------------------------------------------------------------------
def _state(summary: dict | None, history: list[dict], total: int | None, live: bool) -> tuple[str, str]:
    done = len(history)
    if summary is not None:
        if summary.get("failed"):
            return "failed", f"failed: {summary.get('stop_reason', '')}"
        return "finished", f"finished: {summary.get('stop_reason', '')}"
    if live:
        return "running", (f"running: {done} of {total} epochs done (as of {time.strftime('%H:%M:%S')}); this page "
                           f"updates itself while the run goes")
    return "stopped", (f"no summary.json: the run was interrupted (or is still running) after {done} of {total} "
                       f"epochs; `trainwell fit --resume` continues it")


def _overview(summary: dict | None, history: list[dict], cfg: dict, started: dict | None = None) -> str:
    s = summary or {**(started or {})}  # a running fit: what was known when it started
    train = cfg.get("train", {})
    best = s.get("best_epoch")
    rows = [
        ("dataset", s.get("dataset", cfg.get("data", {}).get("name"))),
        *_classes(s),
        ("model", s.get("model", cfg.get("model", {}).get("kind"))),
        ("parameters", fmt_int(s.get("params"))),
        ("epochs", f"{s.get('epochs', len(history))} of {train.get('epochs', '?')}"),
        ("steps", fmt_int(s.get("steps", history[-1]["step"] if history else 0))),
        ("stop reason", s.get("stop_reason", "-")),
        (f"best epoch (by {s.get('monitor', train.get('monitor', 'val_loss'))})", "-" if best is None else best + 1),
        ("seed", s.get("seed", train.get("seed"))),
        ("device", s.get("device", "-")),
        ("wall time", fmt_seconds(s.get("wall_s"))),
        ("training time", fmt_seconds(s.get("fit_s"))),
        ("pre-flight time", fmt_seconds(s.get("preflight_s")) if s.get("preflight_shared_from") is None else
         f"shared: the verdicts of {s['preflight_shared_from']} (the same model and examples)"),
        ("versions", f"trainwell {s.get('trainwell_version', '-')}, torch {s.get('torch_version', '-')}"),
    ]
    return page.key_values(rows)


def _classes(s: dict) -> list[tuple[str, str]]:
    """The overview's class rows: the count with the names text labels were numbered by (a data file's), and
    what stood out in the labels (1-based, a class only in the test split)."""
    if not s.get("classes"):
        return []
    names = s.get("class_names")
    text = str(s["classes"]) + (": " + ", ".join(f"{i} = {n}" for i, n in enumerate(names)) if names else "")
    return [("classes", text)] + [("label note", note) for note in s.get("label_notes") or []]


def _final(summary: dict | None, history: list[dict]) -> str:
    final = (summary or {}).get("final")
    if not final:
        if not history:
            return "<p>No epoch has finished yet.</p>"
        last = history[-1]
        final = {k: last.get(k) for k in ("train_loss", "train_acc", "val_loss", "val_acc")}
        note = f"<p class='muted'>From the last finished epoch ({last['epoch'] + 1}).</p>"
    else:
        note = ""
    rows = [[split, fmt_loss(final.get(f"{split}_loss")), fmt_pct(final.get(f"{split}_acc"))]
            for split in ("train", "val", "test") if final.get(f"{split}_loss") is not None]
    return page.table(["split", "loss", "accuracy"], rows, numeric={1, 2}) + note


def _doctor(verdicts: list[dict]) -> str:
    if not verdicts:
        return "<p>No verdicts yet (the doctor's pre-flight is off, or the run has not reached it).</p>"
    out = []
    for phase, title in PHASES:
        group = [v for v in verdicts if v.get("phase", "pre") == phase]
        if not group:
            continue
        counts = {s: sum(v.get("status") == s for v in group) for s in ("pass", "warn", "fail", "skip", "info")}
        tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        rows = [[v.get("check"), page.status(str(v.get("status"))), v.get("value"), v.get("expected"),
                 v.get("advice") or ""] for v in group]
        out.append(f"<h3 class='phase' data-phase='{esc(phase)}'>{esc(title)} <span class='muted'>({tally})</span>"
                   f"</h3>{page.table(['check', 'status', 'value', 'expected', 'advice'], rows)}")
    return "".join(out)


def _model(model_rows: list[dict]) -> str:
    if not model_rows:
        return "<p>No model summary (model.json is written when training starts).</p>"
    rows = [[r["name"], r["kind"], "x".join(map(str, r["output_shape"])), fmt_int(r["params"]),
             "x".join(map(str, r["receptive_field"])), fmt_int(r["mult_adds"])] for r in model_rows]
    rows.append(["total", "", "", fmt_int(sum(r["params"] for r in model_rows)), "",
                 fmt_int(sum(r["mult_adds"] for r in model_rows))])
    return page.table(["layer", "type", "output", "params", "receptive field", "mult-adds"], rows, numeric={3, 5})


def _files(run: Path) -> str:
    names = ["metrics.jsonl", "metrics.csv", "summary.json", "config.toml", "monitors.jsonl", "preflight.json",
             "steps.jsonl", "model.json", STARTED_FILE, "checkpoints/last.pt", "checkpoints/best.pt", "masks.pt",
             "sparsity.json", "tensorboard"]
    names += [f"figures/{p.name}" for p in sorted((run / "figures").glob("*.png"))]
    items = [f"<li>{page.link(n, n)}</li>" for n in names if (run / n).exists()]
    tb = ("<p class='muted'>TensorBoard: <code>tensorboard --logdir " + esc(run / "tensorboard") + "</code></p>"
          if (run / "tensorboard").exists() else "")
    return f"<ul id='files'>{''.join(items)}</ul>{tb}"


def _embedded_figure(path: Path, alt: str) -> str:
    if not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<p><img alt='{esc(alt)}' src='data:image/png;base64,{data}'></p>"


# -- charts -------------------------------------------------------------------------------------------------
def _epoch_charts(history: list[dict], summary: dict | None, steps: tuple[list, list]) -> list[dict]:
    charts = []
    xs = [r["epoch"] + 1 for r in history]
    marks = []
    best = (summary or {}).get("best_epoch")
    if best is not None:
        marks.append({"x": best + 1, "label": f"best epoch {best + 1}", "color": "#1a7f37"})
    if summary and history:
        reason = str(summary.get("stop_reason", ""))
        marks.append({"x": xs[-1], "label": "stop: " + (reason if len(reason) <= 48 else reason[:45] + "..."),
                      "color": "#cf222e" if summary.get("failed") else "#57606a"})
    step_x, step_y = steps
    if step_x:
        positive = all(v is not None and v > 0 for v in step_y)
        charts.append({"id": "chart-step-loss", "title": "Training loss per step", "xlabel": "step",
                       "ylabel": "loss (log)" if positive else "loss", "xfmt": "int", "yfmt": "num",
                       "ylog": positive, "x": step_x, "series": [{"label": "train (batch)", "y": page.finite(step_y),
                                                                  "points": False, "width": 1}]})
    if not history:
        return charts
    loss = [{"label": f"{s} loss", "y": page.finite([r.get(f"{s}_loss") for r in history]),
             "dash": s == "val"} for s in ("train", "val") if any(r.get(f"{s}_loss") is not None for r in history)]
    if any("reg_loss" in r for r in history):
        loss.append({"label": "penalty", "y": page.finite([r.get("reg_loss") for r in history]), "dash": True})
    charts.append({"id": "chart-loss", "title": "Loss per epoch", "xlabel": "epoch", "ylabel": "loss",
                   "xfmt": "int", "yfmt": "num", "x": xs, "series": loss, "marks": marks})
    acc = [{"label": f"{s} accuracy", "y": page.finite([r.get(f"{s}_acc") for r in history]), "dash": s == "val"}
           for s in ("train", "val") if any(r.get(f"{s}_acc") is not None for r in history)]
    charts.append({"id": "chart-acc", "title": "Accuracy per epoch", "xlabel": "epoch", "ylabel": "accuracy",
                   "xfmt": "int", "yfmt": "pct", "x": xs, "series": acc, "marks": marks})
    charts.append({"id": "chart-lr", "title": "Learning rate (at the start of each epoch)", "xlabel": "epoch",
                   "ylabel": "learning rate", "xfmt": "int", "yfmt": "num", "x": xs,
                   "series": [{"label": "lr", "y": page.finite([r.get("lr") for r in history])}]})
    extra = sorted({k for r in history for k, v in r.items()
                    if k not in KNOWN_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)})
    if extra:
        charts.append({"id": "chart-criteria", "title": "Stopping-criterion values", "xlabel": "epoch",
                       "ylabel": "value", "xfmt": "int", "yfmt": "num", "x": xs, "marks": marks,
                       "series": [{"label": k, "y": page.finite([r.get(k) for r in history])} for k in extra]})
    return charts


def spans_decades(series: list[dict], decades: float = 2.0) -> bool:
    """Whether the positive values of ``series`` span at least ``decades`` powers of ten (a log/linear switch
    is then offered: on a linear axis the late epochs of a loss from 1e2 to 1e-2 are a flat line)."""
    values = [v for s in series for v in s["y"] if isinstance(v, (int, float)) and v > 0]
    return bool(values) and math.log10(max(values) / min(values)) >= decades


def with_toggles(charts: list[dict]) -> list[dict]:
    """Mark the charts of numbers (not percentages) whose values span decades for a log/linear switch."""
    for c in charts:
        if c.get("yfmt") == "num" and spans_decades(c["series"]):
            c["logToggle"] = True
    return charts


def _monitor_charts(records: list[dict], titles: dict[str, str]) -> tuple[list[dict], dict | None]:
    records = [r for r in records if r.get("activations")]
    if not records:
        return [], None
    names = list(records[-1]["activations"])
    xs = [r["step"] for r in records]
    lines = []
    for key, title, label in (("std", "Activation std per layer", "activation std"),
                              ("grad_std", "Back-propagated gradient std per layer", "gradient std")):
        series = [{"label": titles.get(n, n), "y": page.finite([r["activations"].get(n, {}).get(key) for r in records])}
                  for n in names]
        if any(v is not None for s in series for v in s["y"]):
            lines.append({"id": f"chart-monitor-{key}", "title": title + " (monitor snapshots)", "xlabel": "step",
                          "ylabel": label + " (log)", "xfmt": "int", "yfmt": "num", "ylog": True, "x": xs,
                          "series": series})
    layers = []
    for n in names:
        for key, what, color in (("hist", "activation", "#1f77b4"), ("grad_hist", "gradient", "#d62728")):
            frames = [_finite_hist(r["activations"].get(n, {}).get(key)) for r in records]
            if any(frames):
                layers.append({"title": f"{titles.get(n, n)}: {what}", "xlabel": what, "color": color,
                               "frames": frames})
    hists = {"id": "hists", "frames": [{"step": r["step"], "epoch": r.get("epoch", 0) + 1} for r in records],
             "layers": layers}
    return lines, hists


def _finite_hist(h) -> dict | None:
    """A monitor histogram the page can draw, or None (a diverged step's histogram has no finite range)."""
    if not isinstance(h, dict):
        return None
    lo, hi, counts = h.get("lo"), h.get("hi"), h.get("counts")
    ok = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi)) and isinstance(counts, list)
    return {"lo": lo, "hi": hi, "counts": page.finite(counts)} if ok and hi > lo else None


def _chart_divs(charts: list[dict]) -> str:
    return "<div class='charts'>" + "".join(f"<div class='chart' id='{esc(c['id'])}'></div>" for c in charts) + "</div>"


# -- the page -----------------------------------------------------------------------------------------------
PNG_FIGURES = ("learning_curves", "histograms")


def _read_summary(run: RunDir) -> dict | None:
    """The run's summary.json, validated, or None while the run has not finished."""
    summary = runfiles.read_json(run.summary)
    if summary is not None and not isinstance(summary, dict):
        raise TrainwellError(f"{run.summary}: not a trainwell summary (a JSON object), got a "
                             f"{type(summary).__name__}")
    return runfiles.summary_fields(summary, run.summary) if summary is not None else None


def draw_figures(run_dir: str | Path, figures: tuple[str, ...] = PNG_FIGURES, best_epoch: int | None = None) -> None:
    """Redraw the PNG figures ``figures`` (of :data:`PNG_FIGURES`) of a fit run from its files, as
    :func:`build_fit_report` does, without the page; ``best_epoch`` marks the learning curves (0-based, as
    summary.json's, which is not read: the figures may be drawn while it is being written)."""
    run = RunDir(run_dir)
    history = runfiles.history_records(read_jsonl(run.metrics), run.metrics)
    records = runfiles.monitor_records(read_jsonl(run.path / "monitors.jsonl"), run.path / "monitors.jsonl")
    model_rows = runfiles.model_rows(runfiles.read_json(run.path / MODEL_FILE, []) or [], run.path / MODEL_FILE)
    _redraw_figures(run, figures, history, records, {"best_epoch": best_epoch}, model_rows)


def _redraw_figures(run: RunDir, figures: tuple[str, ...], history, records, summary, model_rows) -> None:
    from trainwell.viz import plots

    if history and "learning_curves" in figures:
        plots.learning_curves(history, run.figures / "learning_curves.png",
                              best_epoch=(summary or {}).get("best_epoch"))
    if records and "histograms" in figures:
        plots.monitor_histograms(records, run.figures / "histograms.png", titles=layer_titles(model_rows))


def _verdict_html(verdict: dict | None) -> str:
    if not verdict:
        return ""
    return (f"<h2>Verdict: {page.status(str(verdict.get('status', '')))}</h2><p>{esc(verdict.get('claim'))}</p>"
            f"<pre>{esc(json.dumps(verdict.get('evidence'), indent=2, default=str))}</pre>")


def _hist_html(hists: dict | None) -> str:
    if not hists:
        return ""
    n = len(hists["frames"])
    return (f"<h3>Histograms over time</h3><p><input type='range' id='hists-slider' min='0' max='{n - 1}' "
            f"value='{n - 1}' style='width:60%'> <span id='hists-label'></span></p>"
            f"<div class='hists' id='hists'></div>")


def build_fit_report(run_dir: str | Path, *, live: bool = False, figures: tuple[str, ...] | None = None) -> Path:
    """Write ``report.html`` of one fit run (finished, in progress or interrupted); return its path.

    ``figures`` names the PNG figures of ``figures/`` to redraw from the run's files (default: none when
    ``live``, else all of :data:`PNG_FIGURES`); the page itself needs none of them."""
    run = RunDir(run_dir)
    summary = _read_summary(run)
    history = runfiles.history_records(read_jsonl(run.metrics), run.metrics)
    records = runfiles.monitor_records(read_jsonl(run.path / "monitors.jsonl"), run.path / "monitors.jsonl")
    config_text = run.config.read_text(encoding="utf-8") if run.config.exists() else ""
    cfg = read_config(config_text)
    overrides = config_overrides(config_text, cfg)
    model_rows = runfiles.model_rows(runfiles.read_json(run.path / MODEL_FILE, []) or [], run.path / MODEL_FILE)
    figures = figures if figures is not None else (() if live else PNG_FIGURES)
    if figures:
        _redraw_figures(run, figures, history, records, summary, model_rows)
    preflight_file = run.path / "preflight.json"
    preflight = runfiles.verdict_list(runfiles.read_json(preflight_file, []) or [], preflight_file)
    verdicts = (summary or {}).get("doctor") or [{**v, "phase": "pre"} for v in preflight]
    started = runfiles.read_json(run.path / STARTED_FILE) if summary is None else None
    started = started if isinstance(started, dict) else None
    state, state_text = _state(summary, history, cfg.get("train", {}).get("epochs"), live)
    lines = with_toggles(_epoch_charts(history, summary, read_steps(run.path, history)))
    monitor_lines, hists = _monitor_charts(records, layer_titles(model_rows))
    monitor_lines = with_toggles(monitor_lines)
    name = (summary or {}).get("name", cfg.get("name", run.path.name))
    config_hash = (summary or {}).get("config_hash", "")
    body = f"""
<h1>trainwell run: {esc(name)} <small class='muted'>{esc(config_hash)}</small></h1>
<p><span class='status {esc(state)}' id='run-state'>{esc(state_text)}</span></p>
<nav><a href='#curves'>curves</a><a href='#monitors'>activations &amp; gradients</a><a href='#doctor'>doctor</a>
<a href='#model'>model</a><a href='#config-section'>config</a><a href='#files-section'>files</a></nav>
{_verdict_html((summary or {}).get("verdict"))}
<section id='overview'><h2>Overview</h2>{_overview(summary, history, cfg, started)}
<h3>{'Final metrics' if summary else 'Metrics so far'}</h3>{_final(summary, history)}</section>
<section id='curves'><h2>Curves</h2><p class='muted'>Drag to zoom, double-click to reset; hover for values.</p>
{_chart_divs(lines) if lines else '<p>No epoch has finished yet.</p>'}</section>
<section id='monitors'><h2>Activations and gradients</h2>
{_chart_divs(monitor_lines) + _hist_html(hists) if hists else NO_MONITORS}
</section>
<section id='doctor'><h2>Doctor</h2>{_doctor(verdicts)}</section>
<section id='model'><h2>Model</h2>{_model(model_rows)}
{_embedded_figure(run.figures / 'first_layer_weights.png', 'first layer weights')}</section>
<section id='config-section'><h2>Config</h2>{config_html(config_text, overrides)}</section>
<section id='files-section'><h2>Files</h2>{_files(run.path)}</section>
"""
    charts = {"lines": lines + monitor_lines, "hists": [hists] if hists else []}
    stamp = f"{time.time_ns()}"
    if state == "running":  # the page polls LIVE_FILE and reloads itself (keeping its view) when it changes
        charts["live"] = {"stamp": stamp, "file": LIVE_FILE, "poll_ms": POLL_MS}
    atomic_write_text(run.report, page.render(f"trainwell: {name}", body, charts))
    write_live_file(run.path, stamp, state == "running")
    return run.report


def write_live_file(run: Path, stamp: str, running: bool) -> None:
    """``report-live.js``: the stamp of the newest report.html. A running page loads it with a fresh ``<script>``
    element every :data:`POLL_MS` (a ``file://`` page may not ``fetch`` a file, but may run a script) and reloads
    itself when the stamp is not its own; the final page (``running`` false) has no poller, so updates stop."""
    data = json.dumps({"stamp": stamp, "running": running})
    atomic_write_text(run / LIVE_FILE, f"window.trainwellLive && window.trainwellLive({data});\n")
