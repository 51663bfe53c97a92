"""Claiming a run directory: nothing a user saved is lost, and two processes never share one directory.

A run directory carries a marker file (``.trainwell-run``, JSON with the kind of run that wrote it: ``fit``,
``sweep``, ``lottery``) and is locked with an OS file lock (``.lock``, ``fcntl.flock``) while a process writes
it; the OS releases the lock when the process ends, also on SIGKILL.

Rules (the same for ``fit``, ``sweep`` and ``prune``):

- no ``--out``: ``runs/<name>-<hash>`` is reserved with an atomic ``mkdir``; if it exists, ``-2``, ``-3``, ...
- ``--out DIR`` that is missing or empty: used as it is.
- ``--out DIR`` that holds anything: refused, unless ``force`` *and* DIR is a run of the same kind that no
  process holds. The old directory is then moved aside (renamed, not deleted) and deleted only once the new run
  has started (:meth:`Claim.started`); if the new run fails before that, the old one is put back.

Example:
    >>> claim = Claim.take("fit", None, force=False, name="run", config_hash="1a2b3c4d")  # doctest: +SKIP
    >>> ...  # write config.toml, run the pre-flight
    >>> claim.started()                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from trainwell.errors import TrainwellError

MARKER = ".trainwell-run"
LOCK = ".lock"
KINDS = ("fit", "sweep", "lottery")

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
    """An exclusive, non-blocking OS lock on ``<run dir>/.lock``, released by :meth:`release` or process exit."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None:  # pragma: no cover
            return self
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
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


def _write_marker(path: Path, kind: str) -> None:
    from trainwell import __version__
    from trainwell.rundir import atomic_write_json

    atomic_write_json(path / MARKER, {"kind": kind, "trainwell_version": __version__,
                                      "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def _reserve_new(base: Path, stem: str) -> Path:
    """Create ``base/stem`` (or ``stem-2``, ``stem-3``, ...) with an atomic mkdir and return it."""
    base.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        candidate = base / (stem if k == 1 else f"{stem}-{k}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            k += 1


class Claim:
    """A run directory this process owns (locked), plus the old one it replaces, kept until the run starts."""

    def __init__(self, path: Path, lock: RunLock, aside: Path | None = None, created: bool = True):
        self.path, self.lock, self.aside, self.created = path, lock, aside, created
        self._started = False

    @classmethod
    def take(cls, kind: str, out: str | Path | None, *, force: bool = False, name: str, config_hash: str,
             base: str | Path = "runs") -> Claim:
        """Reserve and lock the directory a new run of ``kind`` writes (see the module's rules)."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not allowed: use one of {', '.join(KINDS)}")
        if out is None:
            path = _reserve_new(Path(base), f"{name}-{config_hash}")
            return cls._start(path, kind, aside=None, created=True)
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise TrainwellError(f"--out {str(path)!r} is a file, not a directory: choose another path")
        created = False
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                path.mkdir()  # atomic: only a folder this process made counts as created (rollback removes it)
                created = True
            except FileExistsError:
                pass
        if created or not any(path.iterdir()):
            return cls._start(path, kind, aside=None, created=created)
        if not force:
            raise TrainwellError(f"--out {str(path)!r} already exists and is not empty: choose another folder, or "
                                 f"pass --force to replace it if it is a trainwell {kind} run")
        found = marked_kind(path)
        if found != kind:
            what = f"a trainwell {found} run" if found else "not a trainwell run directory (no .trainwell-run marker)"
            raise TrainwellError(f"--force refused: {str(path)!r} is {what}; --force only replaces a trainwell "
                                 f"{kind} run: choose another folder")
        old_lock = RunLock(path).acquire()  # refuses if a process is writing it
        resolved = path.resolve()
        if resolved == Path.cwd().resolve() or resolved in Path.cwd().resolve().parents:
            old_lock.release()
            raise TrainwellError(f"--force refused: {str(path)!r} contains the current directory: choose another "
                                 f"folder")
        aside = path.parent / f".{path.name}.replaced-{os.getpid()}"
        try:
            os.rename(path, aside)
        finally:
            old_lock.release()
        try:
            path.mkdir()
        except BaseException:
            os.rename(aside, path)
            raise
        return cls._start(path, kind, aside=aside, created=True)

    @classmethod
    def resume(cls, path: str | Path) -> Claim:
        """Lock an existing run directory to continue it."""
        path = Path(path)
        if not path.is_dir():
            raise TrainwellError(f"--resume {str(path)!r}: no such run directory")
        return cls(path, RunLock(path).acquire(), aside=None, created=False)

    @classmethod
    def _start(cls, path: Path, kind: str, aside: Path | None, created: bool) -> Claim:
        try:
            lock = RunLock(path).acquire()
        except BaseException:
            if aside is not None:
                shutil.rmtree(path, ignore_errors=True)
                os.rename(aside, path)
            raise
        _write_marker(path, kind)
        return cls(path, lock, aside=aside, created=created)

    def started(self) -> None:
        """The new run has started: delete the directory it replaced."""
        self._started = True
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    def rollback(self) -> None:
        """The new run failed before it started: remove what it created and put the old directory back."""
        if self._started:
            return
        if self.aside is not None:
            self.lock.release()
            shutil.rmtree(self.path, ignore_errors=True)
            os.rename(self.aside, self.path)
            self.aside = None
        elif self.created:
            self.lock.release()
            shutil.rmtree(self.path, ignore_errors=True)

    def release(self) -> None:
        """Drop the lock (the run is finished or has failed after it started)."""
        self.lock.release()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self._started:
            self.rollback()
        elif exc_type is None:
            self.started()
        self.release()
