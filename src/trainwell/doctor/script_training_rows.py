"""For ``trainwell watch``: the training set evaluated beside the validation set, told apart in the script's
validation loss.

A script that logs its training loss in eval mode (``evaluate(train_loader)``, then ``evaluate(val_loader)``)
makes the same loss calls on both sets before its next step; the watch hands ``w.validate()`` their mean, so the
training set's calls would pull the validation curve down to the training loss. The rows of the script's training
forwards are keyed (:class:`~trainwell.doctor.validation_rows.RowKeys`); each forward without gradients or in eval
mode gets the share of its rows that are training rows; when these forwards split into some made wholly of training
rows and the others of none (as ``loop: validation examples`` reads them; wholly: half or more, the rows of the
steps before the watch began not being keyed), the loss calls on the former are left
out of the validation's value. A validation made of training rows only (the bug that verdict names) is kept whole.
"""

from __future__ import annotations

import torch

from trainwell.doctor.validation_rows import RowKeys

#: training rows keyed at most (their keys: 8 bytes each)
ROWS = 1 << 20
#: a forward's share of training rows from which it is the training set's (half: the rows before the watch began,
#: its first step's, are not keyed), and up to which it is not
WHOLE, NONE = 0.5, 0.1


class TrainingRows:
    """The keys of the rows the script's training forwards took, and the share of training rows of each forward
    without gradients (or in eval mode) since the last step."""

    def __init__(self):
        self.keys = RowKeys()
        self._train: list[torch.Tensor] = []
        self._rows = 0
        self._all: torch.Tensor | None = None
        self.shares: list[float | None] = []  # per evaluating forward since the last step (None: not read)

    def forward(self, x, training: bool) -> None:
        """A forward of the watched model on ``x``: a training one (``training``: with gradients in train mode)
        keys its rows, another gets its share of training rows."""
        read = self.keys(x) if isinstance(x, torch.Tensor) and x.dim() >= 1 and len(x) else None
        if training:
            if read is not None and self._rows < ROWS:
                self._train.append(read[0].cpu())
                self._rows += len(read[0])
                self._all = None
            return
        if read is None or not self._train:
            self.shares.append(None)
            return
        if self._all is None:
            self._all = torch.cat(self._train)
        self.shares.append(float(torch.isin(read[0].cpu(), self._all).float().mean()))

    def stepped(self) -> None:
        """A step: the forwards since the last one are read."""
        self.shares = []

    def kept(self, calls: int) -> list[bool] | None:
        """Per loss call since the last step (``calls`` of them, one per evaluating forward, in order): whether it
        is kept in the validation's value; None when all are (the forwards do not split into the training set's and
        the validation set's, or the calls do not pair with them)."""
        shares = self.shares
        if calls != len(shares) or any(s is None for s in shares):
            return None
        whole = [s >= WHOLE for s in shares]
        none = [s <= NONE for s in shares]
        if any(whole) and any(none) and all(w or n for w, n in zip(whole, none, strict=True)):
            return none
        return None


__all__ = ["TrainingRows"]
