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

``out`` is claimed like a fit's folder (:meth:`trainwell.runclaim.Claim.reuse`): marked ``lab`` and locked while
a lab runs in it (a second lab run into it is refused), a non-empty folder that is not a lab folder is refused,
and re-running into a lab folder rewrites only the files of the experiments it runs. With ``resume`` an
experiment's summary.json is reused only if every field is valid (:func:`summary_problem`).
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import math
import os
import re
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import torch

import trainwell
from trainwell.errors import ParameterError, TrainwellError
from trainwell.lab import base, registry
from trainwell.manifest import record
from trainwell.runclaim import Claim
from trainwell.rundir import atomic_write_json, atomic_write_text, to_json

COLORS = {"pass": "#17803d", "fail": "#b3261e", "inconclusive": "#b26b00", "unstable": "#8a3ffc", "error": "#555"}


def _save_figures(figures: dict, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, fig in figures.items():
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=90)
        names.append(f"figures/{path.name}")
    return names


def size_limited(verdict: dict, quick: bool, decides: bool = True) -> dict:
    """The verdict as the quick size may state it: a quick run that cannot decide says so.

    ``decides=False`` (an experiment's ``QUICK_DECIDES``) marks a quick size too small to show the effect either
    way (measured, and said where it is set): every quick verdict is then inconclusive (quick size), and the
    status the numbers gave is kept as ``quick_status``.

    An inconclusive verdict at quick size gets ``note: "quick size"`` (shown "inconclusive (quick size)"). A fail
    that no interval decided (an experiment whose verdict is not an effect with an interval, see
    :func:`trainwell.lab.base.decide`) is, at quick size, not evidence against the claim but of a size too small
    to show it: it becomes inconclusive (quick size), and the undecided status is kept as ``quick_status``."""
    if not quick or verdict.get("status") not in ("pass", "fail", "inconclusive"):
        return verdict
    if verdict["status"] == "pass" and decides:
        return verdict
    v = dict(verdict)
    if v["status"] != "inconclusive" and not decides:
        v["quick_status"] = v["status"]
        v["status"] = "inconclusive"
    if v["status"] == "fail" and not v.get("decided"):
        v["quick_status"] = "fail"
        v["status"] = "inconclusive"
    if v["status"] == "inconclusive":
        v["note"] = "quick size"
    return v


def shown(verdict: dict) -> str:
    """A verdict's status as the table and index show it: ``inconclusive (quick size)`` where the size decided."""
    note = verdict.get("note")
    return f"{verdict.get('status')} ({note})" if note else str(verdict.get("status"))


def has_control(mod) -> bool:
    """Whether experiment module ``mod`` declares its control (``CONTROL`` text and a ``Config.control`` flag)."""
    from dataclasses import fields

    return isinstance(getattr(mod, "CONTROL", None), str) and "control" in {f.name for f in fields(mod.Config)}


def run_one(name: str, out: Path, quick: bool, seeds: int, log=None, seed: int | None = None,
            control: bool = False) -> dict:
    """Run experiment ``name`` for ``seeds`` seeds (from ``seed``, default the config's) into ``out/name`` (its
    control, the claim made false on purpose, into ``out/name/control``); return its summary (never raises).

    A run in which every seed ended in an error does not replace an earlier valid result: the earlier
    summary.json, result.json and figures stay, and the error is written to ``error.json`` beside them."""
    mod = registry.get(name)
    folder = out / name / "control" if control else out / name
    folder.mkdir(parents=True, exist_ok=True)
    cfg0 = mod.Config.quick() if quick else mod.Config()
    if seed is not None:
        cfg0 = replace(cfg0, seed=seed)
    if control:
        cfg0 = replace(cfg0, control=True)
    per_seed, results, figures = [], [], []
    tic = time.perf_counter()
    for k in range(seeds):
        cfg = replace(cfg0, seed=cfg0.seed + k)
        t = time.perf_counter()
        try:
            with base.member_log(log):
                result = json.loads(to_json(mod.run(cfg, workdir=folder / "runs" / f"seed{cfg.seed}")))
            v = size_limited(mod.verdict(result), quick, getattr(mod, "QUICK_DECIDES", True))
            if k == 0:
                figures = _save_figures(mod.plot(result), folder / "figures_new")
            results.append({"seed": cfg.seed, "result": result})
        except Exception as exc:  # an experiment's failure is data: record it, let the others run
            v = {"claim": mod.CLAIM, "status": "error", "evidence": {"error": f"{type(exc).__name__}: {exc}"},
                 "threshold": "", "traceback": traceback.format_exc()}
        per_seed.append({"seed": cfg.seed, "verdict": v, "wall_s": round(time.perf_counter() - t, 3)})
        if log is not None:
            log(f"  {name}{' control' if control else ''} seed {cfg.seed}: {shown(v)} "
                f"({time.perf_counter() - t:.1f} s)")
    status = base.combine([p["verdict"]["status"] for p in per_seed])
    first = per_seed[0]["verdict"]
    summary = {
        "name": name, "claim": mod.CLAIM, "paper": mod.PAPER, "size": "quick" if quick else "default",
        "seed": cfg0.seed, "seeds": [p["seed"] for p in per_seed], "config": asdict(cfg0),
        "verdict": {"claim": mod.CLAIM, "status": status, "evidence": first["evidence"],
                    "threshold": first.get("threshold", "")},
        "per_seed": per_seed, "figures": [], "wall_s": round(time.perf_counter() - tic, 3),
        "expected_s": mod.EXPECTED_S["quick" if quick else "default"],
        "trainwell_version": trainwell.__version__, "torch_version": torch.__version__,
    }
    if all(p["verdict"].get("note") == "quick size" for p in per_seed) and status == "inconclusive":
        summary["verdict"]["note"] = "quick size"
    if control:
        summary["control"] = mod.CONTROL
    if all(p["verdict"]["status"] == "error" for p in per_seed) and _reusable_any(folder):
        atomic_write_json(folder / "error.json", summary)  # the earlier result stays: only a result replaces one
        if log is not None:
            log(f"  {name}: every seed ended in an error; the earlier result in {folder} is kept, the error is in "
                f"{folder / 'error.json'}")
        return summary
    _replace_figures(folder, figures)
    summary["figures"] = figures
    atomic_write_json(folder / "result.json", results)
    atomic_write_json(folder / "summary.json", summary)
    with contextlib.suppress(FileNotFoundError):
        (folder / "error.json").unlink()
    return summary


def exit_code(summaries: list[dict], control: bool = False) -> int:
    """The lab command's exit status: 1 when an experiment crashed or any seed's verdict is a fail (at quick size
    only a fail that an interval decided stays a fail, :func:`size_limited`), else 0. For controls, 1 when any
    control passed (a verdict that survives the removal of what it tests) or crashed."""
    def statuses(s):
        return [p["verdict"]["status"] for p in s.get("per_seed", [])] or [s["verdict"]["status"]]

    bad = ("pass", "error") if control else ("fail", "error")
    return 1 if any(st in bad for s in summaries for st in statuses(s)) else 0


def _replace_figures(folder: Path, figures: list[str]) -> None:
    """Move the new figures (written to ``figures_new/``) into ``figures/``, dropping the earlier run's."""
    new, old = folder / "figures_new", folder / "figures"
    if old.is_dir() and not old.is_symlink():
        for f in old.glob("*.png"):
            f.unlink()
    old.mkdir(exist_ok=True)
    if new.is_dir():
        for f in new.iterdir():
            os.replace(f, old / f.name)
            record(old / f.name)
        new.rmdir()


def _reusable_any(folder: Path) -> bool:
    """Whether ``folder`` holds a valid earlier result that did not end in an error."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return summary_problem(summary, summary.get("name") if isinstance(summary, dict) else None, folder) is None \
        and summary["verdict"]["status"] != "error"


STATUSES = ("pass", "fail", "inconclusive", "unstable", "error")  # an experiment's overall status
FIGURE = re.compile(r"figures/[A-Za-z0-9][A-Za-z0-9_.-]*\.png")


def figure_file(folder: Path, rel) -> Path | None:
    """The PNG ``rel`` (``figures/<name>.png``) of an experiment's ``folder``, or None if ``rel`` names anything
    else (another folder, a link, a path with ``..``): only a run's own figures are ever read."""
    if not isinstance(rel, str) or not FIGURE.fullmatch(rel) or ".." in rel:
        return None
    path = folder / rel
    figures = (folder / "figures").resolve()
    if path.is_symlink() or not path.is_file() or path.resolve().parent != figures:
        return None
    return path


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def summary_problem(summary, name: str, folder: Path) -> str | None:
    """Why ``summary`` (an experiment's summary.json, e.g. from an earlier or someone else's lab run) cannot be
    reused as it is, or None if every field the index uses is what :func:`run_one` writes."""
    if not isinstance(summary, dict):
        return f"not a JSON object but a {type(summary).__name__}"
    checks = [
        (summary.get("name") == name, f"name {summary.get('name')!r} is not {name!r}"),
        (isinstance(summary.get("claim"), str) and isinstance(summary.get("paper", ""), str), "claim is not text"),
        (summary.get("size") in ("quick", "default"), "size is not quick or default"),
        (_number(summary.get("wall_s")) and summary["wall_s"] >= 0, "wall_s is not a number of seconds"),
        (isinstance(summary.get("seeds"), list) and all(isinstance(k, int) and not isinstance(k, bool)
                                                        for k in summary["seeds"]), "seeds is not a list of integers"),
    ]
    verdict = summary.get("verdict")
    checks.append((isinstance(verdict, dict) and verdict.get("status") in STATUSES
                   and isinstance(verdict.get("claim", ""), str) and isinstance(verdict.get("threshold", ""), str),
                   f"verdict status is not one of {', '.join(STATUSES)}"))
    per_seed = summary.get("per_seed", [])
    checks.append((isinstance(per_seed, list) and all(
        isinstance(p, dict) and isinstance(p.get("seed"), int) and isinstance(p.get("verdict"), dict)
        and p["verdict"].get("status") in STATUSES and _number(p.get("wall_s")) for p in per_seed),
        "per_seed holds an entry that is not {seed, verdict with a known status, wall_s}"))
    figures = summary.get("figures", [])
    checks.append((isinstance(figures, list) and all(figure_file(folder, f) is not None for f in figures),
                   "figures lists a file that is not one of its own figures/*.png"))
    return next((problem for ok, problem in checks if not ok), None)


def _reusable(folder: Path, quick: bool, seeds: int, seed: int | None, log=None,
              name: str | None = None) -> dict | None:
    """The experiment's earlier summary, if it is valid (:func:`summary_problem`) and of the same size, seeds
    and first seed, and did not end in an error; else None (it runs again)."""
    path = folder / "summary.json"
    if not path.is_file() or path.is_symlink():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = "unreadable JSON"
    name = name or folder.name
    problem = summary_problem(summary, name, folder) if isinstance(summary, dict) else "not valid JSON"
    if problem is not None:
        if log is not None:
            log(f"{path}: not reused ({problem}); running {name} again")
        return None
    same = (summary["size"] == ("quick" if quick else "default") and len(summary["seeds"]) == seeds
            and (seed is None or summary.get("seed") == seed))
    return summary if same and summary["verdict"]["status"] != "error" else None


def run_lab(names: list[str], out: str | Path, *, quick: bool = False, seeds: int = 1, resume: bool = False,
            log=None, seed: int | None = None, backend: str = "local", address: str | None = None,
            control: bool = False) -> list[dict]:
    """Run ``names`` in order into ``out``; with ``resume`` keep finished experiments of the same size and seeds.

    With ``control`` each experiment's control runs instead (the claim made false on purpose, into
    ``out/NAME/control``); its verdict should never be pass. An experiment that declares no control is refused
    before anything runs.

    Returns one summary per experiment and writes ``out/index.html`` and ``out/index.json`` after each one, so an
    interrupted lab leaves a valid index of what finished. ``backend = "ray"`` runs each experiment as a Ray task
    (``address``: a running cluster; see :mod:`trainwell.ray_backend`); the results tree is the same.
    """
    if seeds < 1:
        raise ParameterError("seeds", seeds, "is not allowed: use an integer >= 1")
    if backend not in ("local", "ray"):
        raise ParameterError("backend", backend, "is not allowed: use local or ray")
    if address is not None and backend != "ray":
        raise ParameterError("address", address, "names a Ray cluster: use it with the ray backend")
    for name in names:
        mod = registry.get(name)  # unknown names fail before anything runs
        if control and not has_control(mod):
            raise TrainwellError(f"experiment {name!r} declares no control yet: control runs "
                             f"{', '.join(n for n, m in registry.experiments().items() if has_control(m))}")
    if backend == "ray":
        from trainwell import ray_backend

        ray_backend.require_ray()
    claim = Claim.reuse("lab", out, adopt=_earlier_lab_folder)  # marker, lock; a foreign folder is refused
    try:
        out = claim.path
        for name in names:
            if (out / name).is_symlink() or ((out / name).exists() and not (out / name).is_dir()):
                raise TrainwellError(f"{out / name} is not a folder (a link or a file): the lab writes "
                                     f"experiment {name!r} there; move it away and run again")
        if backend == "ray":
            return _run_lab_ray(names, out.resolve(), quick, seeds, resume, log, seed, address, control)
        return _run_lab_local(names, out, quick, seeds, resume, log, seed, control)
    finally:
        claim.release()


def _earlier_lab_folder(path: Path) -> bool:
    """Whether ``path`` is a results folder written by a trainwell lab before folders were marked: its
    index.json lists experiments, and everything in it is that index or an experiment's folder."""
    try:
        index = json.loads((path / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(index, list) or not all(isinstance(s, dict) and {"name", "verdict"} <= s.keys() for s in index):
        return False
    known = set(registry.experiments())
    return all(p.name in ("index.json", "index.html") or (p.is_dir() and not p.is_symlink() and p.name in known)
               for p in path.iterdir())


def _folder(out: Path, name: str, control: bool) -> Path:
    return out / name / "control" if control else out / name


def _run_lab_local(names: list[str], out: Path, quick: bool, seeds: int, resume: bool, log,
                   seed: int | None, control: bool = False) -> list[dict]:
    summaries = []
    for i, name in enumerate(names, 1):
        old = _reusable(_folder(out, name, control), quick, seeds, seed, log, name) if resume else None
        if old is not None:
            if log is not None:
                log(f"[{i}/{len(names)}] {name}: kept from an earlier run ({old['verdict']['status']})")
            summaries.append(old)
        else:
            if log is not None:
                log(f"[{i}/{len(names)}] {name} ({'quick' if quick else 'default'}, {seeds} seed(s)) ...")
            summaries.append(run_one(name, out, quick, seeds, log, seed, control))
            if log is not None:
                s = summaries[-1]
                log(f"[{i}/{len(names)}] {name}: {s['verdict']['status']} in {s['wall_s']:.1f} s")
        write_index(_index_of(summaries, out, control), out)
    return summaries


def _index_of(summaries: list[dict], out: Path, control: bool) -> list[dict]:
    """What the index lists: the experiments' own results. After a control run these are read from ``out``
    (each experiment's page shows its control beside them)."""
    if not control:
        return summaries
    kept = []
    for s in summaries:
        if _reusable_any(out / s["name"]):
            kept.append(json.loads((out / s["name"] / "summary.json").read_text("utf-8")))
    return kept


def _run_lab_ray(names: list[str], out: Path, quick: bool, seeds: int, resume: bool, log, seed: int | None,
                 address: str | None, control: bool = False) -> list[dict]:
    """Each experiment not kept from an earlier run is a Ray task (one CPU) running :func:`run_one`; a task that
    fails twice (a lost worker: :func:`run_one` itself records an experiment's errors) is recorded as an error."""
    from trainwell import ray_backend

    summaries: list[dict | None] = [_reusable(_folder(out, n, control), quick, seeds, seed, log, n) if resume
                                    else None for n in names]
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
        write_index(_index_of([s for s in summaries if s is not None], out, control), out)

    with ray_backend.session(address, quiet=log is None) as ray:
        ray_backend.map_tasks(ray, run_one, [(names[i], out, quick, seeds, None, seed, control) for i in todo],
                              {"num_cpus": 1}, done)
    write_index(_index_of(summaries, out, control), out)
    return summaries


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
