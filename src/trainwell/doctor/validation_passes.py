"""Successive validations with no training step between them, told apart for ``trainwell watch``.

``trainwell watch`` hands the loss calls of a validation to ``w.validate()`` at the next training step or forward.
A loop that takes no step between two validations (its one iterator over the training batches used up after the
first epoch) would have them merged into one. A validation pass begins again when a forward without training takes
the first input of the pass before it again after that pass's loss calls (and after its other inputs, or in eval
mode): the pass before is then a validation of its own. The same batch given again straight after itself in train
mode (MC-dropout's repeated forwards) and a second loader evaluated after the first (validation, then test) begin
nothing.
"""

from __future__ import annotations

import torch

#: the elements of an input sampled, evenly strided over all of it, to recognise it again
SAMPLED = 64


def _print(x: torch.Tensor) -> tuple:
    """An input's shape, dtype and an evenly strided sample of its elements (on its own device)."""
    flat = x.detach().reshape(-1)
    return tuple(x.shape), x.dtype, flat[:: max(1, flat.numel() // SAMPLED)][:SAMPLED].clone()


class ValidationPasses:
    """The inputs of the forwards without training since the last validation was handed over."""

    def __init__(self):
        self._first: tuple | None = None  # the first input's print
        self._calls = 0  # the validation's loss calls kept when it came
        self._other = False  # another input came after it

    def read(self, x, training: bool, calls: int, train_mode: bool) -> bool:
        """A forward of the model on ``x`` (``training``: in train mode with gradients, which begins the next pass
        afresh): whether it begins the validation again. Its first input comes back after loss calls (``calls``:
        those kept since the last hand-over) and other inputs, or straight after its own loss call in eval mode
        (not ``train_mode``: the model unchanged, a pass that repeats itself; MC-dropout's passes over one batch run
        in train mode). The pass begun again then starts from ``x``, with no loss call yet."""
        if training or not isinstance(x, torch.Tensor) or not x.dim() or not x.numel():
            if training:
                self._first, self._calls, self._other = None, 0, False
            return False
        mine = _print(x)
        if self._first is None:
            self._first, self._calls, self._other = mine, calls, False
            return False
        shape, dtype, sample = self._first
        if shape == mine[0] and dtype == mine[1] and torch.equal(sample, mine[2]):
            again = calls > self._calls and (self._other or not train_mode)
            if again:
                self._calls, self._other = 0, False
            return again
        self._other = True
        return False


__all__ = ["ValidationPasses"]
