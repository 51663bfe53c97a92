"""The lab's index: ``index.json`` (the summaries as data) and ``index.html``, a short page that links one page per
experiment (:mod:`trainwell.lab.pages`) and shows every seed's verdict and the control's."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from trainwell.lab import pages
from trainwell.lab.summaries import _reusable_any
from trainwell.rundir import atomic_write_json, atomic_write_text
from trainwell.viz import page
from trainwell.viz.page import Raw, esc


def _control_of(folder: Path) -> dict | None:
    """The control's summary in ``folder/control``, if it holds a valid one."""
    ctrl = folder / "control"
    if not _reusable_any(ctrl):
        return None
    return json.loads((ctrl / "summary.json").read_text(encoding="utf-8"))


def _seed_badges(summary: dict) -> Raw:
    per_seed = [p for p in summary.get("per_seed") or [] if isinstance(p, dict)]
    def status_only(v):  # the size note is in the verdict column already
        return {"status": v.get("status")} if isinstance(v, dict) else {}

    return Raw(" ".join(f"<span class='muted'>{esc(p.get('seed'))}:</span>&nbsp;"
                        f"{pages.badge(status_only(p.get('verdict')))}" for p in per_seed) or "-")


def _index_entry(s: dict, ctrl: dict | None) -> dict:
    entry = {k: s.get(k) for k in ("name", "claim", "size", "seeds", "verdict", "wall_s", "figures")}
    entry["control"] = None if ctrl is None else {k: ctrl.get(k) for k in ("size", "seeds", "verdict", "wall_s",
                                                                           "figures")}
    return entry


def write_index(summaries: list[dict], out: Path, rewrite: set[str] | None = None) -> Path:
    """Write ``index.json``, the experiments' pages and ``index.html`` for ``summaries``.

    A summary whose ``verdict`` is None stands for an experiment of which only the control was run (the index
    shows its claim as "not run" beside the control's verdict). ``rewrite`` names the experiments whose page is
    (re)written; None: every one. The others are linked where their page exists.

    Every value on the pages is escaped, and only PNGs under each experiment's own ``figures/`` are embedded
    (:func:`trainwell.lab.summaries.figure_file`), whatever a summary says."""
    controls = {}
    for s in summaries:
        name = str(s["name"])
        controls[name] = _control_of(out / name) if pages.SAFE_NAME.fullmatch(name) else None
    atomic_write_json(out / "index.json", [_index_entry(s, controls[str(s["name"])]) for s in summaries])
    counts = Counter(str(s["verdict"]["status"]) if isinstance(s.get("verdict"), dict) else "not run"
                     for s in summaries)
    rows = []
    for s in summaries:
        name = str(s["name"])
        ctrl = controls[name]
        if rewrite is None or name in rewrite:
            written = pages.write_page(s, out / name, ctrl)
        else:
            written = pages.SAFE_NAME.fullmatch(name) and not (out / name).is_symlink() \
                and (out / name / pages.PAGE).is_file()
        link = page.link(f"{name}/{pages.PAGE}", name) if written else name
        rows.append([link, s.get("claim"), pages.badge(s.get("verdict")), _seed_badges(s),
                     pages.badge(ctrl["verdict"]) if ctrl else "-", s.get("size") or "-",
                     page.fmt_seconds(s["wall_s"]) if isinstance(s.get("wall_s"), (int, float)) else "-"])
    tally = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    body = (f"<h1>trainwell lab</h1><p>{len(summaries)} experiments: {esc(tally)}</p>"
            f"<p class='muted'>Each experiment's page has its claim, source, criteria with measured values, "
            f"numbers, figures and control.</p>"
            + page.table(["experiment", "claim", "verdict", "every seed", "control (never pass)", "size", "time"],
                         rows, numeric={6}))
    atomic_write_text(out / "index.html", page.static("trainwell lab", body))
    return out / "index.html"
