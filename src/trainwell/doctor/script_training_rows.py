"""For ``trainwell watch``: the loss calls of the script's validation told apart from those beside it: the
training set evaluated beside the validation set, and another model evaluated after the watched one (an EMA copy).

A script that logs its training loss in eval mode (``evaluate(train_loader)``, then ``evaluate(val_loader)``)
makes the same loss calls on both sets before its next step; the watch hands ``w.validate()`` their mean, so the
training set's calls would pull the validation curve down to the training loss. The rows of the script's training
forwards are keyed (:class:`~trainwell.doctor.validation_rows.RowKeys`, the watch's own, which ``loop: validation
examples`` reads too: each batch is keyed once); each forward without gradients or in eval
mode gets the share of its rows that are training rows; when these forwards split into some made wholly of training
rows and the others of none (as ``loop: validation examples`` reads them; wholly: half or more, the rows of the
steps before the watch began not being keyed), the loss calls on the former are left
out of the validation's value. A validation made of training rows only (the bug that verdict names) is kept whole.

The loss calls made after the watched model's validation forward all follow it, also those on another model's
outputs (``ema(x)``, an ``AveragedModel``) evaluated next: :class:`ModelOutputs` marks each call whose input shares
its storage with an output of the watched model's (the output itself, a view or a reshape of it); when some calls
are marked and others are not, the others are left out. A validation whose calls all read a transformed output
(``log_softmax(out)``, a test-time-augmentation mean) marks none and is kept whole.
"""

from __future__ import annotations

import torch

from trainwell.doctor.validation_rows import RowKeys

#: training rows keyed at most (their keys: 8 bytes each)
ROWS = 1 << 20
#: training forwards whose rows are all keyed; after them one in :data:`SPARSE` (keying costs ~30 us a forward: a
#: training set of up to FIRST batches is keyed whole in its first epoch, a larger one in part, and a forward of
#: it evaluated then reads below :data:`WHOLE` and is kept in the validation's value, as before this reading)
FIRST, SPARSE = 512, 16
#: a forward's share of training rows from which it is the training set's (half: the rows before the watch began,
#: its first step's, are not keyed), and up to which it is not
WHOLE, NONE = 0.5, 0.1


class TrainingRows:
    """The keys of the rows the script's training forwards took, and the share of training rows of each forward
    without gradients (or in eval mode) since the last step."""

    def __init__(self, keys: RowKeys | None = None):
        self.keys = keys or RowKeys()  # the watch's own (its validation split's): a batch gathered and keyed once
        self._train: list[torch.Tensor] = []
        self._rows = 0
        self._forwards = 0  # training forwards seen
        self._all: torch.Tensor | None = None
        self.shares: list[float | None] = []  # per evaluating forward since the last step (None: not read)

    def forward(self, x, training: bool) -> None:
        """A forward of the watched model on ``x``: a training one (``training``: with gradients in train mode)
        keys its rows, another gets its share of training rows."""
        if training:
            self._forwards += 1
            if self._forwards > FIRST and self._forwards % SPARSE:
                return
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


def _storages(value) -> set[int]:
    """The storage addresses of the tensors in a module's output (a tensor, or a tuple, list or dict of them)."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else [value]
    found = set()
    for t in items:
        if isinstance(t, torch.Tensor):
            try:
                found.add(t.untyped_storage().data_ptr())
            except (RuntimeError, NotImplementedError):  # a tensor without storage
                pass
    return found


#: bytes of the watched model's validation outputs held till the next step (held, their storages are not reused by
#: another model's outputs); past it, the calls are not told apart
HELD = 64 << 20


class ModelOutputs:
    """The storages of the watched model's outputs in forwards without gradients (or in eval mode) since the last
    step (the outputs held, up to :data:`HELD` bytes), and per loss call read since then (by the call's record)
    whether its input is one of them."""

    def __init__(self):
        self._outputs: set[int] = set()
        self._held: list = []
        self._bytes = 0
        self._calls: dict[int, tuple] = {}  # id(record) -> (record, its input is the model's output)

    def forward(self, output, training: bool) -> None:
        """The end of a forward of the watched model."""
        if training or self._bytes > HELD:
            return
        self._outputs |= _storages(output)
        self._held.append(output)
        items = output.values() if isinstance(output, dict) else output if isinstance(output, (tuple, list)) \
            else [output]
        self._bytes += sum(t.numel() * t.element_size() for t in items if isinstance(t, torch.Tensor))

    def called(self, record: tuple, given) -> None:
        """A loss call kept as ``record`` on ``given``."""
        self._calls[id(record)] = (record, bool(_storages(given) & self._outputs))

    def stepped(self) -> None:
        """A step: the forwards and calls since the last one are read."""
        self._outputs, self._calls, self._held, self._bytes = set(), {}, [], 0

    def kept(self, records: list) -> list[bool] | None:
        """Per loss call record: whether it is kept (None: all are): the calls on the model's outputs, when others
        are on something else."""
        ours = [self._calls[id(r)][1] if id(r) in self._calls and self._calls[id(r)][0] is r else None
                for r in records]
        if self._bytes > HELD or any(o is None for o in ours) or all(ours) or not any(ours):
            return None
        return ours


__all__ = ["ModelOutputs", "TrainingRows"]
