"""The class names and label notes a sweep's members share, read from their own ``summary.json``: written into
the sweep's ``summary.json`` and printed under its table, as ``fit`` prints a run's (``classes: 0 = setosa, ...``).
Members whose data differ (a grid over ``data.*`` that changes the labels) share none, and none is shown."""

from __future__ import annotations

import json
from pathlib import Path


def shared_labels(out: Path, members: int) -> dict:
    """``{"class_names": ..., "label_notes": ...}`` when every member that wrote a summary agrees on them (None /
    [] otherwise, and for data whose labels are class ids)."""
    seen = []
    for m in range(members):
        try:
            summary = json.loads((Path(out) / f"member-{m}" / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a failed member writes no summary
        if isinstance(summary, dict):
            seen.append((summary.get("class_names"), summary.get("label_notes") or []))
    if not seen or any(s != seen[0] for s in seen):
        return {"class_names": None, "label_notes": []}
    return {"class_names": seen[0][0], "label_notes": seen[0][1]}
