"""An experiment's summary.json as the lab writes and re-reads it: the status a table shows, and whether an
earlier summary (from an earlier or someone else's lab run) is valid to reuse, with only its own figures."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path


def shown(verdict: dict) -> str:
    """A verdict's status as the table and index show it: ``inconclusive (quick size)`` where the size decided."""
    note = verdict.get("note")
    return f"{verdict.get('status')} ({note})" if note else str(verdict.get("status"))


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
    figures = [summary.get("figures", [])]
    if isinstance(per_seed, list):  # each seed's own figures (summaries before these were listed have none)
        figures += [p.get("figures", []) for p in per_seed if isinstance(p, dict)]
    figures = [f for group in figures for f in group] if all(isinstance(g, list) for g in figures) else None
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
