"""Progress display for the fit loop: a rich bar on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

import contextlib
import sys
from contextvars import ContextVar

from trainwell.train.callbacks import Callback


def _describe(metrics: dict) -> str:
    # epochs are counted from 1 wherever a user reads them (metrics.jsonl keeps the 0-based index)
    parts = [f"epoch {metrics['epoch'] + 1}", f"loss {metrics['train_loss']:.4f}", f"acc {metrics['train_acc']:.2%}"]
    if "val_loss" in metrics:
        parts += [f"val_loss {metrics['val_loss']:.4f}", f"val_acc {metrics['val_acc']:.2%}"]
    return "  ".join(parts)


class NullProgress:
    def start(self, total: int, done: int = 0) -> None:
        pass

    def update(self, metrics: dict) -> None:
        pass

    def stop(self) -> None:
        pass


_label: ContextVar = ContextVar("trainwell_progress_label", default=None)


@contextlib.contextmanager
def labelled(text: str):
    """Inside this block, a progress display made by :func:`auto` names what it shows (``member 2/4``: one run of
    several)."""
    token = _label.set(text)
    try:
        yield
    finally:
        _label.reset(token)


class PlainProgress(NullProgress):
    """One line per ``every`` epochs on stderr (for logs and pipes); ``label`` says whose metrics they are
    (``[1/15] member 2/4: epoch 1 ...``)."""

    def __init__(self, every: int = 10, stream=None, label: str | None = None):
        self.every = every
        self.stream = stream or sys.stderr
        self.total = 0
        self.label = label

    def start(self, total: int, done: int = 0) -> None:
        self.total = total

    def update(self, metrics: dict) -> None:
        epoch = metrics["epoch"]
        if epoch % self.every == 0 or epoch + 1 == self.total:
            who = f"{self.label}: " if self.label else ""
            print(f"[{epoch + 1}/{self.total}] {who}{_describe(metrics)}", file=self.stream, flush=True)


class RichProgress(NullProgress):
    """A rich progress bar over epochs, with the latest metrics in its description, and (with
    :class:`StepProgress` among the callbacks) a second bar over the steps of the current epoch. ``label`` names
    the bar (default ``fit``)."""

    def __init__(self, label: str | None = None):
        self.label = label or "fit"
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]{task.fields[label]}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.description}"), console=Console(stderr=True),
                                 transient=False)
        self.task = None
        self.steps = None

    def start(self, total: int, done: int = 0) -> None:
        self.progress.start()
        self.task = self.progress.add_task("", total=total, completed=done, label=self.label)

    def start_steps(self, epoch: int, total: int) -> None:
        """Show (or restart) the bar over the steps of ``epoch`` (0-based; shown 1-based)."""
        if self.steps is None:
            self.steps = self.progress.add_task("", total=total, label="steps")
        self.progress.reset(self.steps, total=total, description=f"epoch {epoch + 1}")

    def step(self) -> None:
        if self.steps is not None:
            self.progress.advance(self.steps)

    def update(self, metrics: dict) -> None:
        self.progress.update(self.task, advance=1, description=_describe(metrics))

    def stop(self) -> None:
        self.progress.stop()


class StepProgress(Callback):
    """Drive a :class:`RichProgress`'s step bar: one advance per training step (terminals only: the plain and
    null displays need no per-step call)."""

    def __init__(self, bar: RichProgress, steps_per_epoch: int):
        self.bar, self.steps_per_epoch = bar, steps_per_epoch

    def on_epoch_start(self, state) -> None:
        self.bar.start_steps(state.epoch, self.steps_per_epoch)

    def on_batch_end(self, state) -> None:
        self.bar.step()


def note(text: str, quiet: bool = False, stream=None) -> None:
    """One status line on stderr (what the run is doing before the training bar appears), unless ``quiet``."""
    if not quiet:
        label = _label.get()
        print(f"{label}: {text}" if label else text, file=stream or sys.stderr, flush=True)


_check_shower: ContextVar = ContextVar("trainwell_check_shower", default=None)


@contextlib.contextmanager
def checks_shown(quiet: bool = False, stream=None):
    """Inside this block, :func:`report_check` shows "pre-flight (n of m): check..." on stderr as each doctor
    check starts: one line rewritten in place on a terminal (cleared at the end), one line per check otherwise."""
    if quiet:
        yield
        return
    stream = stream or sys.stderr
    tty = stream.isatty()
    label = _label.get()

    def show(n: int, total: int, name: str) -> None:
        text = f"{label + ': ' if label else ''}pre-flight ({n} of {total}): {name}..."
        stream.write(f"\r\x1b[2K{text}" if tty else f"{text}\n")
        stream.flush()

    token = _check_shower.set(show)
    try:
        yield
    finally:
        _check_shower.reset(token)
        if tty:
            stream.write("\r\x1b[2K")
            stream.flush()


def report_check(n: int, total: int, name: str) -> None:
    """Check ``n`` of ``total`` (1-based), called ``name``, starts: shown inside :func:`checks_shown`, else nothing."""
    show = _check_shower.get()
    if show is not None:
        show(n, total, name)


def auto(quiet: bool = False, label: str | None = None):
    """Rich bar when stderr is a terminal, plain lines otherwise, nothing when ``quiet``; ``label`` (default: the
    one :func:`labelled` set) names whose metrics it shows."""
    if quiet:
        return NullProgress()
    label = label or _label.get()
    return RichProgress(label) if sys.stderr.isatty() else PlainProgress(label=label)
