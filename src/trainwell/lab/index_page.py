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


def write_index(summaries: list[dict], out: Path) -> Path:
    """Write ``index.json``, each experiment's page and ``index.html`` for ``summaries``.

    Every value on the pages is escaped, and only PNGs under each experiment's own ``figures/`` are embedded
    (:func:`trainwell.lab.summaries.figure_file`), whatever a summary says."""
    atomic_write_json(out / "index.json", [{k: s.get(k) for k in ("name", "claim", "size", "seeds", "verdict",
                                                                   "wall_s", "figures")} for s in summaries])
    counts = Counter(str(s["verdict"]["status"]) for s in summaries)
    rows = []
    for s in summaries:
        name = str(s["name"])
        ctrl = _control_of(out / name) if pages.SAFE_NAME.fullmatch(name) else None
        written = pages.write_page(s, out / name, ctrl)
        link = page.link(f"{name}/{pages.PAGE}", name) if written else name
        rows.append([link, s.get("claim"), pages.badge(s["verdict"]), _seed_badges(s),
                     pages.badge(ctrl["verdict"]) if ctrl else "-", s.get("size"),
                     page.fmt_seconds(s["wall_s"]) if isinstance(s.get("wall_s"), (int, float)) else "-"])
    tally = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    body = (f"<h1>trainwell lab</h1><p>{len(summaries)} experiments: {esc(tally)}</p>"
            f"<p class='muted'>Each experiment's page has its claim, source, criteria with measured values, "
            f"numbers, figures and control.</p>"
            + page.table(["experiment", "claim", "verdict", "every seed", "control (never pass)", "size", "time"],
                         rows, numeric={6}))
    atomic_write_text(out / "index.html", page.static("trainwell lab", body))
    return out / "index.html"
