"""Ctrl-C and SIGTERM during training: finish the epoch, save a checkpoint, say how to resume.

The first SIGINT or SIGTERM asks the loop to stop at the end of the current epoch; the checkpoint callback then
saves that epoch (so ``--resume`` continues exactly from it) and :func:`trainwell.pipeline.fit` raises
:class:`Interrupted`. A second signal stops at once (``KeyboardInterrupt``); the last checkpoint on disk is then
the one before. Handlers are installed only in the main thread and restored afterwards.

Example:
    >>> with handled() as signals:          # doctest: +SKIP
    ...     trainer.fit(train, val)         # with an Interrupt() callback before the Checkpoint
    >>> signals.received                    # doctest: +SKIP
    'SIGTERM'
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from trainwell.train.callbacks import Callback, State

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # 128 + signal number, the shell's convention


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal (a KeyboardInterrupt, so code that catches Ctrl-C still does)."""

    def __init__(self, run_dir: str | Path, signal_name: str, epochs: int, saved: bool = True, command: str = "fit"):
        self.run_dir, self.signal_name, self.epochs, self.saved = Path(run_dir), signal_name, epochs, saved
        done = f"after {epochs} completed epoch{'s' if epochs != 1 else ''}"
        where = "checkpoint saved" if saved else "the last checkpoint on disk is kept"
        super().__init__(f"interrupted by {signal_name} {done}; {where}: continue with "
                         f"`trainwell {command} --resume {self.run_dir}`")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal_name, 130)


class _Signals:
    received: str | None = None


_active: _Signals | None = None


@contextmanager
def handled(doing: str = "finishing this epoch to save a checkpoint"):
    """Install the SIGINT/SIGTERM handlers for the duration of a fit; yields an object whose ``received`` is the
    name of the first signal (or None). ``doing``: what the first signal lets finish, as the message says (after
    training, writing the run's files: a signal then changes nothing that was trained)."""
    global _active
    holder = _Signals()
    if threading.current_thread() is not threading.main_thread():
        yield holder
        return
    sigs = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    previous = {s: signal.getsignal(s) for s in sigs}

    def on_signal(signum, frame):
        if holder.received is not None:
            raise KeyboardInterrupt  # second signal: stop now
        holder.received = signal.Signals(signum).name
        print(f"trainwell: {holder.received} received: {doing} (send it again to stop at once)", file=sys.stderr,
              flush=True)

    for s in sigs:
        signal.signal(s, on_signal)
    _active = holder
    try:
        yield holder
    finally:
        _active = None
        for s, h in previous.items():
            signal.signal(s, h)


class Interrupt(Callback):
    """Turn a received signal into ``state.stop`` at the end of the epoch (place it before the checkpoint)."""

    def on_epoch_end(self, state: State) -> None:
        if _active is not None and _active.received is not None and state.stop is None:
            state.stop = f"interrupted by {_active.received}"
