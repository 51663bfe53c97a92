"""A self-contained HTML page for a run: summary, final metrics, figures (embedded), config."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from trainwell.rundir import RunDir, atomic_write_text, read_jsonl
from trainwell.viz import plots

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
th{background:#f4f4f4}img{max-width:100%}pre{background:#f7f7f7;padding:1em;overflow:auto}
.pass{color:#17803d}.warn{color:#b26b00}.fail{color:#b3261e}
"""


def _table(rows: list[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))


def build_report(run_dir: str | Path) -> Path:
    """(Re)draw the figures from ``metrics.jsonl`` and write ``report.html``; return its path."""
    run = RunDir(run_dir)
    summary = run.read_summary()
    history = read_jsonl(run.metrics)
    if history:
        plots.learning_curves(history, run.figures / "learning_curves.png")
        plots.learning_rate(history, run.figures / "learning_rate.png")
    records = read_jsonl(run.path / "monitors.jsonl")
    if records:
        plots.monitor_histograms(records, run.figures / "histograms.png")
    order = ["learning_curves", "learning_rate", "histograms", "first_layer_weights"]
    figures = sorted(run.figures.glob("*.png"), key=lambda f: (order.index(f.stem) if f.stem in order else 99, f.name))
    final = summary.get("final", {})
    splits = ("train", "val", "test")
    metric_rows = "".join(
        f"<tr><th>{s}</th><td>{_fmt(final.get(f'{s}_loss'))}</td><td>{_fmt(final.get(f'{s}_acc'))}</td></tr>"
        for s in splits
    )
    doctor = summary.get("doctor") or []
    doctor_html = ""
    if doctor:
        rows = "".join(
            f"<tr><td>{html.escape(str(d.get('check')))}</td><td class='{html.escape(str(d.get('status')))}'>"
            f"{html.escape(str(d.get('status')))}</td><td>{html.escape(str(d.get('value')))}</td>"
            f"<td>{html.escape(str(d.get('advice')))}</td></tr>"
            for d in doctor
        )
        head = "<tr><th>check</th><th>status</th><th>value</th><th>advice</th></tr>"  # phase order: pre, monitor, post
        doctor_html = f"<h2>Doctor</h2><table>{head}{rows}</table>"
    imgs = "".join(
        f"<p><img alt='{f.stem}' src='data:image/png;base64,{base64.b64encode(f.read_bytes()).decode()}'></p>"
        for f in figures
    )
    config = run.config.read_text(encoding="utf-8") if run.config.exists() else ""
    info = [(k, summary.get(k)) for k in ("dataset", "model", "params", "epochs", "steps", "stop_reason",
                                          "best_epoch", "seed", "device", "wall_s", "trainwell_version",
                                          "torch_version")]
    verdict = summary.get("verdict")
    verdict_html = ""
    if verdict:
        status = html.escape(str(verdict.get("status", "")))
        claim = html.escape(str(verdict.get("claim", "")))
        evidence = html.escape(json.dumps(verdict.get("evidence"), indent=2))
        verdict_html = f"<h2>Verdict: <span class='{status}'>{status}</span></h2><p>{claim}</p><pre>{evidence}</pre>"
    name = html.escape(str(summary.get("name")))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trainwell: {name}</title>
<style>{_STYLE}</style></head><body>
<h1>trainwell run: {name} <small>({html.escape(str(summary.get('config_hash')))})</small></h1>
{verdict_html}
{_table(info)}
<h2>Final metrics</h2>
<table><tr><th>split</th><th>loss</th><th>accuracy</th></tr>{metric_rows}</table>
{doctor_html}
<h2>Figures</h2>{imgs or '<p>No epochs were recorded.</p>'}
<h2>Config</h2><pre>{html.escape(config)}</pre>
</body></html>
"""
    atomic_write_text(run.report, page)
    return run.report
