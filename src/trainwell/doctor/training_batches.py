"""Forwards without gradients on a training batch, told from a validation's forwards.

A loop often logs its training accuracy on the batch it just trained on, under ``torch.no_grad()`` and still in
train mode, right before it validates::

    with torch.no_grad():
        train_acc = (model(xb).argmax(1) == yb).float().mean()
    model.eval()
    ... validation forwards ...
    w.validate(val_loss)

That forward runs between the last optimizer step and ``w.validate()`` like the validation's own, but its input
is a tensor a training forward took. :class:`TrainingBatches` keeps weak references to the inputs of the latest
forwards with gradients; a forward without gradients whose input is one of them (the same tensor, or one over the
same memory with the same shape while that tensor is alive) is on a training batch. The validation's forwards are
the others when there are any (:func:`validation_share`); when every forward before ``w.validate()`` is on a
training batch, the loop validated on training data and they are read as its validation.

A training accuracy taken on a few *fresh* training batches (drawn from the training loader again, in train mode,
under ``torch.no_grad()``) holds no tensor a training forward took. Those forwards are told by the mode instead:
when the forwards without gradients before ``w.validate()`` ran in both modes, and the mode changed once among
them (``model.eval()`` called between the training accuracy and the validation, or ``model.train()`` after the
validation and before the accuracy), the loop switched modes for its validation: the eval-mode forwards are the
validation's (:func:`switched_to_eval`; in a validation without ``torch.no_grad()``, of all its forwards).
"""

from __future__ import annotations

import weakref

import torch

#: the inputs of the latest forwards with gradients kept (micro-batches of one step, a siamese pair's)
KEPT = 8


class TrainingBatches:
    """Weak references to the inputs of the latest :data:`KEPT` forwards with gradients."""

    def __init__(self) -> None:
        self._inputs: list[weakref.ref] = []

    def trained_on(self, x) -> None:
        """A forward with gradients took ``x``."""
        if isinstance(x, torch.Tensor):
            self._inputs = [*self._inputs[-(KEPT - 1):], weakref.ref(x)]

    def holds(self, x) -> bool:
        """Whether ``x`` is the input of one of the latest forwards with gradients (alive, so its memory is not
        another batch's)."""
        if not isinstance(x, torch.Tensor):
            return False
        for ref in self._inputs:
            t = ref()
            if t is not None and (t is x or (t.device == x.device and t.shape == x.shape and t.dtype == x.dtype and
                                             t.numel() and t.data_ptr() == x.data_ptr())):
                return True
        return False


def switched_to_eval(modes: list[bool]) -> list[bool]:
    """The modes of a validation's forwards (``modes``: True for each one in train mode), less
    the train-mode ones when the forwards ran in both modes and the mode changed only once among them: the loop
    called ``model.eval()`` for its validation, and the train-mode passes beside it (a training accuracy on fresh
    training batches) are not the validation's.

    Example:
        >>> switched_to_eval([True, True, False, False])
        [False, False]
        >>> switched_to_eval([True, False, True])
        [True, False, True]
    """
    changes = sum(a != b for a, b in zip(modes, modes[1:], strict=False))
    if changes != 1:
        return modes
    return [m for m in modes if not m]


def validation_share(forwards: list, on_training: list[bool]) -> list:
    """Of the forwards before a ``w.validate()`` (``on_training``: each one's input a training batch), the
    validation's: those not on a training batch, or all of them when none is left."""
    rest = [f for f, on in zip(forwards, on_training, strict=True) if not on]
    return rest or list(forwards)
