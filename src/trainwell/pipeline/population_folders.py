"""Which folders a new population of :func:`~trainwell.pipeline.population.fit_population` may write: none that
holds files, and with ``force`` only an earlier population's member folders and checkpoint, never a user's own."""

from __future__ import annotations

import json
from pathlib import Path

from trainwell.errors import TrainwellError
from trainwell.rundir import RunDir, load_checkpoint


def refuse_used_folders(out: Path, runs: list[RunDir], force: bool = False) -> None:
    """A new population writes over nothing: not a member folder that holds files (a user's, or an earlier run's),
    not a population's checkpoint in ``out``. With ``force`` it writes over an earlier population's member folders
    only (their summary.json names the population), never over a folder of the user's own."""
    used = [r.path for r in runs if r.path.is_dir() and any(r.path.iterdir())]
    if force:
        foreign = next((p for p in used if not population_member(p)), None)
        if foreign is None and RunDir(out).last.exists() and not population_checkpoint(RunDir(out).last):
            foreign = out
        if foreign is not None:
            raise TrainwellError(f"fit_population: force=True refused: {foreign} holds files that no trainwell "
                                 f"population wrote (no member's summary.json, or a checkpoint that is not a "
                                 f"population's); force only writes over an earlier population: choose another "
                                 f"folder")
        return
    if RunDir(out).last.exists():
        used.insert(0, out)
    if used:
        raise TrainwellError(f"fit_population: {used[0]} already exists and is not empty: choose another folder, "
                             f"resume=True to continue the population there, or force=True to write over it")


def population_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a population's checkpoint (its members' records and stacked parameters)."""
    try:
        ckpt = load_checkpoint(path)
    except Exception:  # noqa: BLE001 - a file that does not load as a checkpoint is not a population's
        return False
    return isinstance(ckpt, dict) and isinstance(ckpt.get("members"), list) and "params" in ckpt


def population_member(path: Path) -> bool:
    """Whether ``path`` is a member folder an earlier population wrote: its summary.json records the population."""
    try:
        summary = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and isinstance(summary.get("population"), dict)
