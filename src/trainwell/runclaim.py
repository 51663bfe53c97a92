"""Claiming a run directory: nothing a user saved is lost, and two processes never share one directory.

A run directory carries a marker file (``.trainwell-run``, JSON with the kind of run that wrote it: ``fit``,
``sweep``, ``lottery``, ``lab``), a manifest of the files trainwell wrote in it (``.trainwell-files``, see
:mod:`trainwell.manifest`), and is locked with an OS file lock (``.lock``, ``fcntl.flock``, opened without
following links) while a process writes it; the OS releases the lock when the process ends, also on SIGKILL.

Rules (the same for ``fit``, ``sweep`` and ``prune``):

- no ``--out``: ``runs/<name>-<hash>`` is reserved with an atomic ``mkdir``; if it exists, ``-2``, ``-3``, ...
- ``--out DIR`` that is missing or empty: used as it is.
- ``--out DIR`` that holds anything: refused, unless ``force`` *and* DIR is a run of the same kind that no
  process holds *and* every file in it is in its manifest (a file the user added is listed and nothing is
  deleted). The old directory is then moved aside (renamed ``.DIR.replaced-PID``, not deleted) and deleted only
  once the new run has started (:meth:`Claim.started`); if the new run fails before that, or SIGINT/SIGTERM
  arrives, the old one is put back. A ``.DIR.replaced-PID`` that a killed process left is put back, or named in
  one line, on the next claim of DIR. ``--out LINK`` (a symbolic link to a folder) claims the folder it points to.
- the lab (:meth:`Claim.reuse`) keeps adding to its own folder: a folder marked ``lab`` is reused in place.

Example:
    >>> claim = Claim.take("fit", None, force=False, name="run", config_hash="1a2b3c4d")  # doctest: +SKIP
    >>> ...  # write config.toml, run the pre-flight
    >>> claim.started()                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable
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


# -- signals ------------------------------------------------------------------------------------------------
class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while a folder was being claimed (before the run started): handled like Ctrl-C, so the
    claim is rolled back and an old run that ``--force`` moved aside is put back."""

    exit_code = 143

    def __init__(self):
        super().__init__("stopped by SIGTERM before the run started; an earlier run that --force was replacing is "
                         "kept")


def _on_sigterm(signum, frame):
    raise Terminated


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM")


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM back for the few system calls that swap a folder (rename, mkdir, lock, marker),
    so a signal never lands between them; a signal that came meanwhile is delivered right after."""
    if not _main_thread() or not hasattr(signal, "pthread_sigmask"):  # pragma: no cover
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# -- folders a stopped --force left aside ---------------------------------------------------------------------
ASIDE = ".{name}.replaced-{pid}"
DISCARDED = ".{name}.discarded-{pid}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _note(message: str) -> None:
    print(f"trainwell: note: {message}", file=sys.stderr, flush=True)


def _recover_asides(path: Path, restore: bool = True) -> None:
    """Deal with the folders a stopped ``--force`` replacement of ``path`` left beside it.

    ``.NAME.replaced-PID`` (the old run, moved aside) is put back when the replacement never started (``path`` is
    missing, empty, or a new run whose marker still names this aside and that no process holds); otherwise it is
    named in one line. ``.NAME.discarded-PID`` (an old run whose replacement had started: it was being deleted) is
    deleted if its manifest covers everything in it, else named. With ``restore=False`` (resuming ``path``)
    asides are only named."""
    parent, name = path.parent, path.name
    if not parent.is_dir():
        return
    for aside in sorted(parent.glob(glob.escape(f".{name}.") + "*")):
        kind, _, pid = aside.name[len(name) + 2:].partition("-")
        if kind not in ("replaced", "discarded") or not pid.isdigit() or aside.is_symlink() or not aside.is_dir():
            continue
        if _pid_alive(int(pid)):
            _note(f"{aside} is an earlier run that process {pid} moved aside with --force; it is still running")
            continue
        if kind == "discarded":
            if manifest.foreign_files(aside) == []:  # all trainwell's: finish deleting it, as was asked
                shutil.rmtree(aside, ignore_errors=True)
            else:
                _note(f"{aside} holds files trainwell did not write, so it is not deleted: move what you want to "
                      f"keep and delete it")
            continue
        if restore and _put_back(path, aside):
            _note(f"put back {path} from {aside.name}: a --force replacement of it was stopped before it started")
        else:
            _note(f"{aside} holds an earlier trainwell run that a stopped --force left aside: rename it back to "
                  f"{name} or delete it")


def _put_back(path: Path, aside: Path) -> bool:
    """Move ``aside`` back to ``path`` if ``path`` holds nothing but a never-started replacement; True if done."""
    try:
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            return False
        if path.is_dir() and any(path.iterdir()):
            if _marker(path).get("replaces") != aside.name or RunLock(path).locked_by_other():
                return False
            if manifest.foreign_files(path):  # a user's file in the never-started run: keep both, say so
                return False
            shutil.rmtree(path)
        elif path.is_dir():
            path.rmdir()
        os.rename(aside, path)
    except OSError:
        return False
    return True


class Claim:
    """A run directory this process owns (locked), plus the old one it replaces, kept until the run starts.

    From :meth:`take` until :meth:`started` (or the claim ends), SIGTERM is handled like SIGINT: it raises
    (:class:`Terminated`), so the claim is rolled back and an old run moved aside is put back."""

    def __init__(self, path: Path, lock: RunLock, aside: Path | None = None, created: bool = True,
                 kind: str | None = None):
        self.path, self.lock, self.aside, self.created, self.kind = path, lock, aside, created, kind
        self._started = False
        self._previous_sigterm = None

    def _unguard(self) -> None:
        if self._previous_sigterm is not None and _main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    @classmethod
    def take(cls, kind: str, out: str | Path | None, *, force: bool = False, name: str, config_hash: str,
             base: str | Path = "runs") -> Claim:
        """Reserve and lock the directory a new run of ``kind`` writes (see the module's rules)."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not allowed: use one of {', '.join(KINDS)}")
        previous = signal.getsignal(signal.SIGTERM) if _main_thread() else None
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)  # from here on SIGTERM rolls back, like SIGINT
        try:
            claim = cls._take(kind, out, force=force, name=name, config_hash=config_hash, base=base)
        except BaseException:
            if previous is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, previous)
            raise
        if previous is signal.SIG_DFL:
            claim._previous_sigterm = previous
        return claim

    @classmethod
    def _take(cls, kind: str, out, *, force: bool, name: str, config_hash: str, base) -> Claim:
        if out is None:
            path = _reserve_new(Path(base), f"{name}-{config_hash}")
            return cls._start(path, kind, aside=None, created=True)
        path = Path(out)
        if path.is_symlink():
            if not path.is_dir():
                raise TrainwellError(f"--out {str(out)!r} is a symbolic link to {os.readlink(path)!r}, which is not "
                                     f"a folder: choose another path")
            path = path.resolve()  # --out LINK: the run lives where the link points, LINK stays
        if path.exists() and not path.is_dir():
            raise TrainwellError(f"--out {str(out)!r} is a file, not a directory: choose another path")
        _recover_asides(path)
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
            raise TrainwellError(f"--out {str(out)!r} already exists and is not empty: choose another folder, or "
                                 f"pass --force to replace it if it is a trainwell {kind} run")
        found = marked_kind(path)
        if found != kind:
            what = f"a trainwell {found} run" if found else "not a trainwell run directory (no .trainwell-run marker)"
            raise TrainwellError(f"--force refused: {str(out)!r} is {what}; --force only replaces a trainwell "
                                 f"{kind} run: choose another folder")
        old_lock = RunLock(path).acquire()  # refuses if a process is writing it
        try:
            resolved = path.resolve()
            if resolved == Path.cwd().resolve() or resolved in Path.cwd().resolve().parents:
                raise TrainwellError(f"--force refused: {str(out)!r} contains the current directory: choose "
                                     f"another folder")
            foreign = manifest.foreign_files(path)
            if foreign is None:
                raise TrainwellError(f"--force refused: {str(out)!r} has no record of the files trainwell wrote in "
                                     f"it ({manifest.MANIFEST}; an older trainwell wrote it), so nothing in it is "
                                     f"deleted: move what you want to keep and delete it yourself, or choose "
                                     f"another folder")
            if foreign:
                raise TrainwellError(f"--force refused: {str(out)!r} holds {len(foreign)} file"
                                     f"{'s' if len(foreign) > 1 else ''} trainwell did not write: "
                                     f"{manifest.describe(foreign)}; move them out of it (--force never deletes "
                                     f"them) or choose another folder")
        except BaseException:
            old_lock.release()
            raise
        aside = path.parent / ASIDE.format(name=path.name, pid=os.getpid())
        claim = made = None
        try:
            with _signals_deferred():  # no signal lands between the rename and the new folder's marker
                try:
                    os.rename(path, aside)
                finally:
                    old_lock.release()
                path.mkdir()
                made = True
                claim = cls._start(path, kind, aside=aside, created=True)
            return claim  # a signal held back above is raised by now, inside this try
        except BaseException:
            if claim is not None:
                claim.rollback()
                claim.release()
            elif aside.exists():
                if made:
                    shutil.rmtree(path, ignore_errors=True)
                try:
                    os.rename(aside, path)
                except OSError:
                    _note(f"{aside} holds the earlier run: rename it back to {path.name}")
            raise

    @classmethod
    def resume(cls, path: str | Path) -> Claim:
        """Lock an existing run directory to continue it."""
        path = Path(path)
        if not path.is_dir():
            raise TrainwellError(f"--resume {str(path)!r}: no such run directory")
        _recover_asides(path, restore=False)
        claim = cls(path, RunLock(path).acquire(), aside=None, created=False)
        manifest.forget(path)
        return claim

    @classmethod
    def reuse(cls, kind: str, out: str | Path, *, adopt: Callable[[Path], bool] | None = None) -> Claim:
        """Claim a folder that a run of ``kind`` keeps adding to (the lab's results folder): a missing or empty
        folder is created and marked; a folder marked as ``kind`` is locked and reused in place (nothing in it is
        deleted); a folder for which ``adopt(path)`` is true (one written before markers existed) is marked and
        reused; anything else is refused in one line."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not allowed: use one of {', '.join(KINDS)}")
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise TrainwellError(f"{out} is a file, not a folder: --out takes a folder (missing, empty, or an "
                                 f"earlier trainwell {kind} folder)")
        created = False
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                path.mkdir()
                created = True
            except FileExistsError:
                pass
        found = marked_kind(path)
        if created or not any(path.iterdir()) or (found is None and adopt is not None and adopt(path)):
            claim = cls._start(path, kind, aside=None, created=created)
        elif found == kind:
            claim = cls(path, RunLock(path).acquire(), aside=None, created=False, kind=kind)
            manifest.forget(path)  # record this run's writes afresh (duplicates in a manifest are harmless)
        else:
            what = f"a trainwell {found} run" if found else "not a trainwell lab folder (no .trainwell-run marker)"
            raise TrainwellError(f"--out {str(out)!r} already holds files and is {what}: choose a new or empty "
                                 f"folder, or an earlier trainwell {kind} folder")
        claim.started()
        return claim

    @classmethod
    def _start(cls, path: Path, kind: str, aside: Path | None, created: bool) -> Claim:
        lock = RunLock(path).acquire()
        try:
            _write_marker(path, kind, replaces=aside.name if aside is not None else None)
        except BaseException:
            lock.release()
            raise
        return cls(path, lock, aside=aside, created=created, kind=kind)

    def started(self) -> None:
        """The new run has started: delete the directory it replaced (first renamed ``.NAME.discarded-PID``, so
        a kill while deleting it leaves nothing that looks restorable), and stop handling SIGTERM here."""
        self._started = True
        if self.aside is not None:
            _write_marker(self.path, self.kind or marked_kind(self.path) or "fit")  # no longer "replaces"
            doomed = self.aside.parent / DISCARDED.format(name=self.path.name, pid=os.getpid())
            try:
                os.rename(self.aside, doomed)
            except OSError:
                doomed = self.aside
            shutil.rmtree(doomed, ignore_errors=True)
            self.aside = None
        self._unguard()

    def rollback(self) -> None:
        """The new run failed before it started: remove what it created and put the old directory back."""
        if self._started:
            return
        with _signals_deferred():
            if self.aside is not None:
                self.lock.release()
                shutil.rmtree(self.path, ignore_errors=True)
                os.rename(self.aside, self.path)
                self.aside = None
            elif self.created:
                self.lock.release()
                shutil.rmtree(self.path, ignore_errors=True)
        self._unguard()

    def release(self) -> None:
        """Drop the lock (the run is finished or has failed after it started)."""
        self.lock.release()
        self._unguard()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and not self._started:
            self.rollback()
        elif exc_type is None:
            self.started()
        self.release()
