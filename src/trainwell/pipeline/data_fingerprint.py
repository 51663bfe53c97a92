"""The data file a run trained on, recorded so that ``--resume`` refuses a file that changed since: a resumed run
promises to continue exactly, which another file (rows dropped, labels swapped) silently breaks, its splits
drawn anew from different rows.

Only a ``data.root`` that is one file (``data.name = "npz"`` or ``"csv"``) is recorded: its size and SHA-256 in
``data.json`` beside the run's config. A run without that file (built-in data, a folder of IDX files, a run
written before the record existed) resumes as before.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from trainwell.errors import TrainwellError
from trainwell.rundir import atomic_write_json

FILE = "data.json"


def fingerprint(root: str) -> dict | None:
    """``{"path", "size", "sha256"}`` of the file ``root``, or None when ``root`` is empty or not a file."""
    path = Path(root) if root else None
    if path is None or not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "size": path.stat().st_size, "sha256": digest.hexdigest()}


def record(run_dir: str | Path, root: str) -> None:
    """Write the data file's fingerprint into the run (nothing for data that is not one file)."""
    found = fingerprint(root)
    if found is not None:
        atomic_write_json(Path(run_dir) / FILE, found)


def check_unchanged(run_dir: str | Path, root: str) -> None:
    """Refuse to resume when the recorded data file is missing or differs from the one the run started on.

    Raises:
        TrainwellError: naming the file and what changed.
    """
    try:
        recorded = json.loads((Path(run_dir) / FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return
    if not isinstance(recorded, dict) or "sha256" not in recorded:
        return
    now = fingerprint(root)
    if now is None:
        raise TrainwellError(f"{root}: the data file this run trained on is gone: --resume needs the same file "
                             f"(restore it at that path, or start a new run)")
    if now["sha256"] != recorded["sha256"]:
        size = f"{recorded.get('size', '?')} -> {now['size']} bytes"
        raise TrainwellError(f"{root}: the data file changed since this run started ({size}, another SHA-256): a "
                             f"resumed run continues on the same data; restore the file, or start a new run on it")
