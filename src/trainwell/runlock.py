"""The marker and the lock of a run directory: what kind of run wrote it (``.trainwell-run``), and an
exclusive OS file lock (``.lock``, ``fcntl.flock``, opened without following links) while a process writes it."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path

from trainwell import manifest
from trainwell.errors import TrainwellError
from trainwell.manifest import LOCK, MARKER

KINDS = ("fit", "sweep", "lottery", "lab")

try:  # POSIX; elsewhere a run directory is simply not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


def marked_kind(path: str | Path) -> str | None:
    """The kind in ``path``'s ``.trainwell-run`` marker, or None: the only evidence ``--force`` deletes on (a
    folder that merely looks like a run, e.g. a project with a config.toml and checkpoints/, is never replaced)."""
    marker = Path(path) / MARKER
    if not marker.is_file():
        return None
    try:
        kind = json.loads(marker.read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if kind in KINDS else None


def run_kind(path: str | Path) -> str | None:
    """The kind of trainwell run in ``path`` (from its marker; runs written before markers existed are recognised
    by their files, for reading them only), or None if ``path`` is not a trainwell run directory."""
    path = Path(path)
    if not path.is_dir():
        return None
    if (path / MARKER).is_file():
        return marked_kind(path)
    if (path / "round-0").is_dir() and (path / "results.csv").is_file():
        return "lottery"
    if (path / "config.toml").is_file():
        if (path / "results.csv").is_file() or any(path.glob("member-*")):
            return "sweep"
        if (path / "checkpoints").is_dir() or (path / "metrics.jsonl").is_file():
            return "fit"
    return None


class RunLock:
    """An exclusive, non-blocking OS lock on ``<run dir>/.lock``, released by :meth:`release` or process exit.

    The lock file is opened with ``O_NOFOLLOW`` and must be a regular file with one link: a ``.lock`` that is a
    symbolic link, a hard link to another file, a FIFO or a device is refused, so locking (which writes the pid
    into the file) never touches a file elsewhere."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    def _open(self) -> int:
        where = self.path / LOCK
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(where, flags, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise TrainwellError(f"{where} is a symbolic link, not trainwell's lock file: remove it (trainwell "
                                     f"never follows a link there) and run again") from None
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            os.close(fd)
            what = "a hard link to another file" if stat.S_ISREG(info.st_mode) else "not a regular file"
            raise TrainwellError(f"{where} is {what}, not trainwell's lock file: remove it and run again")
        return fd

    def acquire(self) -> RunLock:
        if fcntl is None:  # pragma: no cover
            return self
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise TrainwellError(f"{self.path} is in use by another trainwell process (pid {holder}): wait for it "
                                 f"to finish or choose another directory") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def locked_by_other(self) -> bool:
        """Whether another process holds the lock now (the folder exists; nothing is changed)."""
        if fcntl is None or not self.path.is_dir():  # pragma: no cover
            return False
        try:
            fd = self._open()
        except (TrainwellError, OSError):
            return True  # cannot tell: treat the folder as busy (the safe side)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def _write_marker(path: Path, kind: str, replaces: str | None = None) -> None:
    from trainwell import __version__
    from trainwell.rundir import atomic_write_json

    manifest.forget(path)  # a new folder at this path: records of an earlier one are void
    body = {"kind": kind, "trainwell_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if replaces is not None:  # until the run starts, the marker names the run it replaces (see _recover_asides)
        body["replaces"] = replaces
    atomic_write_json(path / MARKER, body)


def _marker(path: Path) -> dict:
    try:
        body = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}
