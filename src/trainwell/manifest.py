"""What trainwell wrote in a run folder: the manifest ``.trainwell-files`` that ``--force`` trusts.

A folder trainwell claims carries a marker (``.trainwell-run``). Every file trainwell writes below a marked folder
is recorded in that folder's manifest, ``.trainwell-files``: one JSON string per line, the path relative to the
nearest marked folder (``checkpoints/last.pt``); a path ending in ``/`` covers a whole subtree that another
library fills (TensorBoard's event files). Lines are appended with ``O_APPEND``, so several processes writing into
one folder (Ray workers, a population's members) never lose one.

``--force`` deletes a folder only when :func:`foreign_files` finds nothing in it: every file is in the manifest
(or is the marker, the lock, the manifest, or a temp file of an atomic write), and every nested marked folder
passes the same test with its own manifest. A user's ``notes.md`` or ``checkpoints/finetuned-by-hand.pt`` is
never in a manifest, so it is never deleted. Directories themselves are not files: only what is in them counts.

Example:
    >>> record("runs/x/checkpoints/last.pt")   # recorded if runs/x has a marker  # doctest: +SKIP
    >>> foreign_files("runs/x")                # doctest: +SKIP
    ['notes.md']
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

MARKER = ".trainwell-run"
MANIFEST = ".trainwell-files"
LOCK = ".lock"
OWN = frozenset({MARKER, MANIFEST, LOCK})  # a run folder's own bookkeeping, at the top of each marked folder

_recorded: dict[str, str] = {}  # absolute path written -> the marked folder whose manifest records it
_unmarked: set[str] = set()  # folders found with no marked folder at or above them (until one is marked)


def _is_marked(folder: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(folder / MARKER).st_mode)
    except OSError:
        return False


def run_root(folder: str | Path) -> Path | None:
    """The nearest folder at or above ``folder`` that holds a ``.trainwell-run`` marker, or None."""
    folder = Path(os.path.abspath(folder))
    for candidate in (folder, *folder.parents):
        if _is_marked(candidate):
            return candidate
    return None


def record(path: str | Path, *, tree: bool = False) -> None:
    """Note in the manifest of the nearest marked folder that trainwell wrote ``path`` (a file, or with
    ``tree=True`` a folder whose whole content trainwell's libraries write). Outside a marked folder: nothing.

    Recording never fails a run: if the manifest cannot be written, ``--force`` later refuses (the safe side)."""
    absolute = os.path.abspath(path)
    key = absolute + ("/" if tree else "")
    if key in _recorded:  # the common case (a line appended every epoch): no Path built, no folder searched
        return
    folder = os.path.dirname(absolute)
    if folder in _unmarked:  # written outside any run folder, e.g. a library call's own directory: every epoch
        return  # would otherwise look for a marker in each folder up to the root
    path = Path(absolute)
    root = run_root(folder)
    if root is None:
        _unmarked.add(folder)
        return
    rel = path.relative_to(root).as_posix() + ("/" if tree else "")
    try:
        fd = os.open(root / MANIFEST, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, (json.dumps(rel) + "\n").encode("utf-8"))
            _recorded[key] = str(root)
    except OSError:
        pass
    finally:
        os.close(fd)


def forget(root: str | Path) -> None:
    """A marked folder was (re)created: what this process recorded for an earlier folder at that path is void."""
    absolute = os.path.abspath(root)
    prefix = absolute + os.sep
    for key in [k for k, r in _recorded.items() if r == absolute or k.startswith(prefix)]:
        del _recorded[key]
    _unmarked.difference_update([f for f in _unmarked if f == absolute or f.startswith(prefix)])


def recorded(root: str | Path) -> set[str] | None:
    """The paths in ``root``'s manifest, or None if it has none (a folder written before manifests existed)."""
    try:
        fd = os.open(Path(root) / MANIFEST, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    out = set()
    for line in lines:
        try:
            rel = json.loads(line)
        except ValueError:
            continue  # a torn last line (a kill mid-append): that file counts as foreign, the safe side
        if isinstance(rel, str):
            out.add(rel)
    return out


def _temp_file(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")  # an atomic write's temp file (rundir.atomic_write_bytes)


def foreign_files(root: str | Path) -> list[str] | None:
    """Files below ``root`` that trainwell did not write (paths relative to ``root``, sorted), or None when
    ``root`` has no manifest at all. Symbolic links are never trainwell's; nested marked folders are judged by
    their own manifests."""
    root = Path(root)
    entries = recorded(root)
    if entries is None:
        return None
    trees = tuple(e for e in entries if e.endswith("/"))

    def covered(rel: str) -> bool:
        return rel in entries or any(rel.startswith(t) for t in trees)

    foreign: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for d in list(dirnames):
            full = here / d
            if covered(prefix + d + "/"):
                dirnames.remove(d)
            elif full.is_symlink():
                foreign.append(prefix + d)
                dirnames.remove(d)
            elif _is_marked(full):
                dirnames.remove(d)
                nested = foreign_files(full)
                if nested is None:
                    foreign.append(f"{prefix}{d}/ (no {MANIFEST})")
                else:
                    foreign.extend(prefix + d + "/" + n for n in nested)
        for name in filenames:
            rel = prefix + name
            if (not prefix and name in OWN) or _temp_file(name) or covered(rel):
                continue
            foreign.append(rel)
    return sorted(foreign)


def describe(paths: list[str], limit: int = 5) -> str:
    """``a, b, c and 4 more``: a list of paths for a one-line message."""
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
