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
    >>> ...  # write config.toml, run the pre-flight                                   # doctest: +SKIP
    >>> claim.started()                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from trainwell import manifest
from trainwell.errors import TrainwellError

# the marker, the lock and the recovery of folders a stopped --force left aside live in their own modules; their
# names stay importable here
from trainwell.runaside import (  # noqa: F401
    ASIDE,
    DISCARDED,
    Terminated,
    _main_thread,
    _note,
    _on_sigterm,
    _pid_alive,
    _put_back,
    _recover_asides,
    _signals_deferred,
)
from trainwell.runlock import KINDS, RunLock, _marker, _write_marker, fcntl, marked_kind, run_kind  # noqa: F401


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


def _out_folder(out) -> Path:
    """The folder ``--out`` names: where a symbolic link points (the link stays); a file is refused."""
    path = Path(out)
    if path.is_symlink():
        if not path.is_dir():
            raise TrainwellError(f"--out {str(out)!r} is a symbolic link to {os.readlink(path)!r}, which is not "
                                 f"a folder: choose another path")
        path = path.resolve()  # --out LINK: the run lives where the link points, LINK stays
    if path.exists() and not path.is_dir():
        raise TrainwellError(f"--out {str(out)!r} is a file, not a directory: choose another path")
    return path


def _make_folder(path: Path) -> bool:
    """Create ``path`` if it is missing; True only if this process made it (atomic mkdir: a rollback removes only
    a folder it created)."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
        return True
    except FileExistsError:
        return False


def _named(kind: str | None) -> str | None:
    """A run kind as the user knows it: by the command that writes it (a ``lottery`` folder is ``prune``'s)."""
    return "prune" if kind == "lottery" else kind


def _lock_replaceable(path: Path, out, kind: str) -> RunLock:
    """Lock the non-empty ``path`` that ``--force`` would replace, or refuse in one line: it must be a trainwell
    ``kind`` run that no process holds, not contain the current directory, and hold only files in its manifest."""
    found = marked_kind(path)
    if found != kind:
        what = (f"a trainwell {_named(found)} run" if found else
                "not a trainwell run directory (no .trainwell-run marker)")
        raise TrainwellError(f"--force refused: {str(out)!r} is {what}; --force only replaces a trainwell "
                             f"{_named(kind)} run: choose another folder")
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
    return old_lock


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
        path = _out_folder(out)
        _recover_asides(path)
        created = _make_folder(path)
        if created or not any(path.iterdir()):
            return cls._start(path, kind, aside=None, created=created)
        if not force:
            raise TrainwellError(f"--out {str(out)!r} already exists and is not empty: choose another folder, or "
                                 f"pass --force to replace it if it is a trainwell {_named(kind)} run")
        old_lock = _lock_replaceable(path, out, kind)
        return cls._replace(path, kind, old_lock)

    @classmethod
    def _replace(cls, path: Path, kind: str, old_lock: RunLock) -> Claim:
        """Move the old run (locked by ``old_lock``) aside and claim a fresh folder in its place; on any failure,
        also a signal, the old run is put back."""
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
