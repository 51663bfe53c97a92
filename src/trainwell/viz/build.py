"""``trainwell report DIR``: (re)build the report.html of a fit, sweep or prune directory, whichever it is.

Kept apart from the pages themselves so that no page module imports another back (the sweep page uses the fit
page for its members; this module uses both).
"""

from __future__ import annotations

from pathlib import Path

from trainwell.errors import TrainwellError


def build_report(run_dir: str | Path, *, live: bool = False, figures: tuple[str, ...] | None = None) -> Path:
    """(Re)build ``report.html`` of a fit, sweep or prune directory and return its path.

    With ``live=True`` (a refresh during training) the page says the run is in progress and the PNG figures
    are not redrawn. Anything that is not a trainwell run directory is a one-line :class:`TrainwellError`.
    """
    from trainwell.runclaim import run_kind

    path = Path(run_dir)
    kind = run_kind(path)
    if kind == "fit" or (kind is None and (path / "summary.json").is_file()):
        from trainwell.viz.report import build_fit_report

        return build_fit_report(path, live=live, figures=figures)
    if kind in ("sweep", "lottery"):
        from trainwell.viz import group_report

        return group_report.build(path, kind)
    if kind == "lab":
        raise TrainwellError(f"{path}: a lab folder, whose pages trainwell lab run writes and updates: open "
                             f"{path / 'index.html'}; trainwell report takes a directory written by trainwell fit, "
                             f"sweep or prune")
    what = "does not exist" if not path.exists() else "is not a folder" if not path.is_dir() else (
        "holds no trainwell run (no .trainwell-run marker, config.toml or results)")
    raise TrainwellError(f"{path}: {what}; trainwell report takes a directory written by trainwell fit, sweep or prune")
