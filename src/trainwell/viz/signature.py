"""The mark trainwell leaves in a figure file it draws, so that ``--out`` can tell its own earlier output from a
user's file: ``lr-find --out`` and ``filters --out`` replace a file that carries it and refuse any other existing
file unless ``--force`` is given.

The mark is the figure's metadata (PNG ``Software``; PDF, SVG, PS and EPS ``Creator``): ``drawn by trainwell``.
Formats without metadata in matplotlib (JPEG, TIFF, WebP, GIF, raw, compressed SVG) carry no mark, so an existing
file of those is never taken for trainwell's.
"""

from __future__ import annotations

import os
from pathlib import Path

MARK = "drawn by trainwell"
_KEY = {"png": "Software", "pdf": "Creator", "svg": "Creator", "ps": "Creator", "eps": "Creator"}
_WINDOW = 1 << 16  # the mark sits in a file's header (PNG, SVG, PS, EPS) or its trailer (PDF)


def metadata(path: str | Path) -> dict | None:
    """The ``savefig(metadata=...)`` that marks a figure written to ``path`` (None for a format without it)."""
    from trainwell import __version__

    key = _KEY.get(Path(path).suffix.lower().lstrip("."))
    return None if key is None else {key: f"{MARK} {__version__}"}


def drawn_by_trainwell(path: str | Path) -> bool:
    """Whether ``path`` is a regular file (not a link) that carries trainwell's mark."""
    path = Path(path)
    if path.is_symlink() or not path.is_file() or metadata(path) is None:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(_WINDOW)
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - _WINDOW))
            tail = f.read(_WINDOW)
    except OSError:
        return False
    mark = MARK.encode()
    return mark in head or mark in tail
