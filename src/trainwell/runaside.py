"""What a stopped ``--force`` leaves behind, and the signals around the swap: an old run moved aside
(``.NAME.replaced-PID``) is put back or named, one being deleted (``.NAME.discarded-PID``) is finished; SIGINT and
SIGTERM are held back for the few system calls that swap a folder."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from trainwell import manifest
from trainwell.runlock import RunLock, _marker


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
