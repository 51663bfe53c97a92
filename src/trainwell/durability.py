"""Files made durable together: one sync of the filesystem for many small writes instead of two per file.

Every atomic write (:func:`trainwell.rundir.atomic_write_bytes`) syncs its temp file before renaming it over the
target and syncs the folder after: two ``fsync`` calls per file, each a wait for the disk (0.1-1 ms here). A
population of 256 members writes a dozen files per member when its folders start and end, and its members'
checkpoint files at the same epochs: thousands of waits for files written within milliseconds of each other.

Inside :func:`synced_together`, a write is complete for every reader as soon as it returns (written, then
renamed: no reader, and no crash of the process, ever sees half a file), and the block's end makes all of them
durable at once: one ``syncfs(2)`` per filesystem written to on Linux (``sync -f``), otherwise an ``fsync`` of
every file and folder written. What the block gives up is the order on the disk: after a power cut *inside* the
block, a file written in it may be missing or empty (ext4 in its default mode writes a replaced file's new data
before the rename, so a replaced file keeps one whole version there). Callers use it only around writes that the
run's own checkpoint, written after the block ends, does not depend on, or that are written again.

Example:
    >>> from trainwell.durability import synced_together
    >>> with synced_together():          # doctest: +SKIP
    ...     for run in member_folders:
    ...         atomic_write_json(run.summary, summary)
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

_pending: ContextVar[list[Path] | None] = ContextVar("trainwell_sync_pending", default=None)


def deferred(path: str | Path) -> bool:
    """Whether the caller is inside :func:`synced_together`: then ``path``, just written, is synced at the block's
    end (and the caller skips its own sync); else False and the caller syncs now."""
    pending = _pending.get()
    if pending is None:
        return False
    pending.append(Path(path))
    return True


@contextlib.contextmanager
def synced_together() -> Iterator[None]:
    """Make the atomic writes and file syncs of this block durable together at its end (also when the block
    raises: what was written stays written). A block inside another is part of the outer one."""
    if _pending.get() is not None:
        yield
        return
    pending: list[Path] = []
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
        sync_paths(pending)


def _syncfs():
    """libc's ``syncfs`` (Linux), or None where there is none."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).syncfs
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None


SYNCFS = _syncfs()


def sync_paths(paths: list[Path]) -> None:
    """Make ``paths`` (files just written) and their folders durable: one ``syncfs`` per filesystem they are on
    where the platform has it, else an ``fsync`` of each file and each folder."""
    if not paths:
        return
    existing = [p for p in dict.fromkeys(paths) if p.exists()]  # a file written, then deleted, in the block
    if SYNCFS is not None:
        devices: dict[int, Path] = {}
        for p in existing:
            devices.setdefault(p.stat().st_dev, p)
        for p in devices.values():
            fd = os.open(p, os.O_RDONLY)
            try:
                if SYNCFS(fd) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err), str(p.parent))
            finally:
                os.close(fd)
        return
    for p in existing:
        fsync_file(p)
    for folder in dict.fromkeys(p.parent for p in existing):
        fsync_folder(folder)


def fsync_file(path: str | Path) -> None:
    """fsync the file ``path`` (everything written to it so far is on disk); a missing file raises."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path: Path) -> None:
    """fsync a folder where the platform can open one (not on Windows), so that a rename in it is durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse a folder's fsync: its entries are as durable as they can be made
        pass
    finally:
        os.close(fd)


__all__ = ["deferred", "fsync_file", "fsync_folder", "sync_paths", "synced_together"]
