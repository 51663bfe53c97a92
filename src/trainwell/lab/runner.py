"""Run lab experiments into a results tree and write its index page.

Layout of ``out``::

    index.html                       every claim, its verdict, evidence, figures and time
    index.json                       the same as data
    <name>/summary.json              name, claim, size, seeds, config, verdict (overall), per-seed verdicts, wall_s
    <name>/result.json               each seed's result (plain data)
    <name>/figures/<figure>.png      the first seed's figures
    <name>/runs/seed<k>/...          the run directories of the trainings behind it

An experiment that raises is recorded with status ``error`` (and its traceback) and the others go on. With
several seeds the verdict is computed per seed; the overall status is the common one, or ``unstable``.
"""

from __future__ import annotations

import base64
import html
import json
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import torch

import trainwell
from trainwell.lab import base, registry
from trainwell.manifest import record
from trainwell.rundir import atomic_write_json, atomic_write_text, to_json

COLORS = {"pass": "#17803d", "fail": "#b3261e", "inconclusive": "#b26b00", "unstable": "#8a3ffc", "error": "#555"}


def _save_figures(figures: dict, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, fig in figures.items():
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=90)
        record(path)
        names.append(f"figures/{path.name}")
    return names


def run_one(name: str, out: Path, quick: bool, seeds: int, log=None, seed: int | None = None) -> dict:
    """Run experiment ``name`` for ``seeds`` seeds (from ``seed``, default the config's) into ``out/name``; return
    its summary (never raises)."""
    mod = registry.get(name)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    cfg0 = mod.Config.quick() if quick else mod.Config()
    if seed is not None:
        cfg0 = replace(cfg0, seed=seed)
    per_seed, results, figures = [], [], []
    tic = time.perf_counter()
    for k in range(seeds):
        cfg = replace(cfg0, seed=cfg0.seed + k)
        t = time.perf_counter()
        try:
            with base.member_log(log):
                result = json.loads(to_json(mod.run(cfg, workdir=folder / "runs" / f"seed{cfg.seed}")))
            v = mod.verdict(result)
            if k == 0:
                figures = _save_figures(mod.plot(result), folder / "figures")
            results.append({"seed": cfg.seed, "result": result})
        except Exception as exc:  # an experiment's failure is data: record it, let the others run
            v = {"claim": mod.CLAIM, "status": "error", "evidence": {"error": f"{type(exc).__name__}: {exc}"},
                 "threshold": "", "traceback": traceback.format_exc()}
        per_seed.append({"seed": cfg.seed, "verdict": v, "wall_s": round(time.perf_counter() - t, 3)})
        if log is not None:
            log(f"  {name} seed {cfg.seed}: {v['status']} ({time.perf_counter() - t:.1f} s)")
    status = base.combine([p["verdict"]["status"] for p in per_seed])
    first = per_seed[0]["verdict"]
    summary = {
        "name": name, "claim": mod.CLAIM, "paper": mod.PAPER, "size": "quick" if quick else "default",
        "seed": cfg0.seed, "seeds": [p["seed"] for p in per_seed], "config": asdict(cfg0),
        "verdict": {"claim": mod.CLAIM, "status": status, "evidence": first["evidence"],
                    "threshold": first.get("threshold", "")},
        "per_seed": per_seed, "figures": figures, "wall_s": round(time.perf_counter() - tic, 3),
        "expected_s": mod.EXPECTED_S["quick" if quick else "default"],
        "trainwell_version": trainwell.__version__, "torch_version": torch.__version__,
    }
    atomic_write_json(folder / "result.json", results)
    atomic_write_json(folder / "summary.json", summary)
    return summary


def _reusable(folder: Path, quick: bool, seeds: int, seed: int | None) -> dict | None:
    path = folder / "summary.json"
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = (summary.get("size") == ("quick" if quick else "default") and len(summary.get("seeds", [])) == seeds
            and (seed is None or summary.get("seed") == seed))
    return summary if same and summary["verdict"]["status"] != "error" else None


def run_lab(names: list[str], out: str | Path, *, quick: bool = False, seeds: int = 1, resume: bool = False,
            log=None, seed: int | None = None, backend: str = "local", address: str | None = None) -> list[dict]:
    """Run ``names`` in order into ``out``; with ``resume`` keep finished experiments of the same size and seeds.

    Returns one summary per experiment and writes ``out/index.html`` and ``out/index.json`` after each one, so an
    interrupted lab leaves a valid index of what finished. ``backend = "ray"`` runs each experiment as a Ray task
    (``address``: a running cluster; see :mod:`trainwell.ray_backend`); the results tree is the same.
    """
    if seeds < 1:
        raise ValueError(f"--seeds {seeds} is not allowed: use an integer >= 1")
    if backend not in ("local", "ray"):
        raise ValueError(f"--backend {backend!r} is not allowed: use local or ray")
    if address is not None and backend != "ray":
        raise ValueError("--address names a Ray cluster: use it with --backend ray")
    for name in names:
        registry.get(name)  # unknown names fail before anything runs
    if backend == "ray":
        from trainwell import ray_backend

        ray_backend.require_ray()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if backend == "ray":
        return _run_lab_ray(names, out.resolve(), quick, seeds, resume, log, seed, address)
    summaries = []
    for i, name in enumerate(names, 1):
        old = _reusable(out / name, quick, seeds, seed) if resume else None
        if old is not None:
            if log is not None:
                log(f"[{i}/{len(names)}] {name}: kept from an earlier run ({old['verdict']['status']})")
            summaries.append(old)
        else:
            if log is not None:
                log(f"[{i}/{len(names)}] {name} ({'quick' if quick else 'default'}, {seeds} seed(s)) ...")
            summaries.append(run_one(name, out, quick, seeds, log, seed))
            if log is not None:
                s = summaries[-1]
                log(f"[{i}/{len(names)}] {name}: {s['verdict']['status']} in {s['wall_s']:.1f} s")
        write_index(summaries, out)
    return summaries


def _run_lab_ray(names: list[str], out: Path, quick: bool, seeds: int, resume: bool, log, seed: int | None,
                 address: str | None) -> list[dict]:
    """Each experiment not kept from an earlier run is a Ray task (one CPU) running :func:`run_one`; a task that
    fails twice (a lost worker: :func:`run_one` itself records an experiment's errors) is recorded as an error."""
    from trainwell import ray_backend

    summaries: list[dict | None] = [_reusable(out / n, quick, seeds, seed) if resume else None for n in names]
    todo = [i for i, s in enumerate(summaries) if s is None]

    def done(i: int, value) -> None:
        name = names[todo[i]]
        if isinstance(value, Exception):
            mod = registry.get(name)
            value = {"name": name, "claim": mod.CLAIM, "paper": mod.PAPER, "size": "quick" if quick else "default",
                     "seed": seed, "seeds": [], "per_seed": [], "figures": [], "wall_s": 0.0,
                     "verdict": {"claim": mod.CLAIM, "status": "error", "threshold": "",
                                 "evidence": {"error": ray_backend.error_text(value)}}}
        summaries[todo[i]] = value
        if log is not None:
            log(f"{name}: {value['verdict']['status']} in {value['wall_s']:.1f} s (ray)")
        write_index([s for s in summaries if s is not None], out)

    with ray_backend.session(address, quiet=log is None) as ray:
        ray_backend.map_tasks(ray, run_one, [(names[i], out, quick, seeds, None, seed) for i in todo],
                              {"num_cpus": 1}, done)
    write_index(summaries, out)
    return summaries


def _evidence_html(evidence) -> str:
    return f"<pre>{html.escape(json.dumps(evidence, indent=1, default=str))}</pre>"


def write_index(summaries: list[dict], out: Path) -> Path:
    """Write ``index.json`` and a self-contained ``index.html`` (figures embedded) for ``summaries``."""
    atomic_write_json(out / "index.json", [{k: s[k] for k in ("name", "claim", "size", "seeds", "verdict",
                                                               "wall_s", "figures")} for s in summaries])
    counts = {}
    for s in summaries:
        counts[s["verdict"]["status"]] = counts.get(s["verdict"]["status"], 0) + 1
    rows, sections = [], []
    for s in summaries:
        st = s["verdict"]["status"]
        badge = f'<b style="color:{COLORS.get(st, "#000")}">{st}</b>'
        rows.append(f'<tr><td><a href="#{s["name"]}">{html.escape(s["name"])}</a></td>'
                    f'<td>{html.escape(s["claim"])}</td><td>{badge}</td><td>{s["wall_s"]:.1f} s</td></tr>')
        imgs = []
        for rel in s.get("figures", []):
            path = out / s["name"] / rel
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode()
                imgs.append(f'<img alt="{html.escape(rel)}" src="data:image/png;base64,{data}">')
        seeds = "".join(f"<li>seed {p['seed']}: {p['verdict']['status']} ({p['wall_s']:.1f} s)</li>"
                        for p in s.get("per_seed", []))
        sections.append(
            f'<h2 id="{s["name"]}">{html.escape(s["name"])}: {badge}</h2>'
            f'<p>{html.escape(s["claim"])}</p><p><i>{html.escape(s.get("paper", ""))}</i></p>'
            f'<p>Threshold: {html.escape(s["verdict"].get("threshold", ""))}</p>'
            f'<p>{s["size"]} size, {s["wall_s"]:.1f} s</p><ul>{seeds}</ul>'
            f'{_evidence_html(s["verdict"]["evidence"])}{"".join(imgs)}')
    tally = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>trainwell lab</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;"
        "vertical-align:top}img{max-width:100%}pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:85%}"
        "</style></head><body>"
        f"<h1>trainwell lab</h1><p>{len(summaries)} experiments: {tally}</p>"
        "<table><tr><th>experiment</th><th>claim</th><th>verdict</th><th>time</th></tr>"
        f"{''.join(rows)}</table>{''.join(sections)}</body></html>"
    )
    atomic_write_text(out / "index.html", page)
    return out / "index.html"
