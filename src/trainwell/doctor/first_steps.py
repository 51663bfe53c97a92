"""Readers of a watched loop's first steps: a ``TorchFunctionMode`` entered after each ``w.step`` and left at the
next one, that records the torch calls of one step (what a loss was given), on at most :data:`TRIES` steps and
until the reader has what it needs. The modes of several readers nest; each is left only when it is the innermost
one (a mode entered above it and still active is left first)."""

from __future__ import annotations

from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack

#: steps of a watched loop read before giving up on a loop that makes none of the calls a reader looks for
TRIES = 4


class FirstStepsReader:
    """The cadence shared by the first-steps readers. A subclass defines :meth:`_new_mode` (the mode that records
    one step's calls), :meth:`_done` (whether it has read what it needs) and :meth:`_keep` (read a finished mode);
    :attr:`most` is how many steps it reads at most."""

    most = TRIES

    def __init__(self):
        self.tries = 0
        self._mode: TorchFunctionMode | None = None

    def _new_mode(self) -> TorchFunctionMode:
        raise NotImplementedError

    def _done(self) -> bool:
        raise NotImplementedError

    def _keep(self, mode: TorchFunctionMode) -> None:
        raise NotImplementedError

    @property
    def active(self) -> bool:
        """Whether its mode is entered: the torch calls until the next ``w.step`` are read."""
        return self._mode is not None

    def start(self) -> None:
        """Watch the torch calls until :meth:`finish` (the next ``w.step``)."""
        if self._mode is not None or self._done() or self.tries >= self.most:
            return
        self._mode = self._new_mode()
        self._mode.__enter__()

    def finish(self) -> None:
        """Stop watching and keep what was read. Left in place if another mode was entered above it and is still
        active (a later call removes it)."""
        mode = self._mode
        if mode is None:
            return
        stack = _get_current_function_mode_stack()
        if not stack or stack[-1] is not mode:
            return
        mode.__exit__(None, None, None)
        self._mode = None
        self.tries += 1
        self._keep(mode)
