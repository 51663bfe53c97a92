"""``loop: labels follow their inputs``: a training row that comes back (the next epoch) with another label.

Inputs and labels shuffled apart — two DataLoaders with ``shuffle=True`` zipped (``zip(x_loader, y_loader)``), a
permutation applied to the inputs only (``x = x[torch.randperm(n)]`` with ``y`` left in order), or labels taken
from a variable outside the batch — pair every input with a label drawn afresh each epoch. Nothing fails and the
loss only stays near the labels' entropy: a flat curve that reads like a learning rate too low. A fixed wrong
pairing is memorized and left to the pre-flight's input-independent baseline; this one cannot be.

Read from the training forwards' rows and the integer labels given to ``w.step(loss, y=labels)``: each step whose
one forward with gradients has as many rows as ``y`` keys its rows (:class:`~trainwell.doctor.validation_rows.
RowKeys`, a fingerprint of 16 elements; :data:`ROWS` rows of the run at most: every step's till :data:`ANCHOR` rows,
then one step in a stride that doubles every :data:`LEVEL` rows read, so that a data set larger than the rows kept
still comes round again, its returns found among the first rows). A row that comes again (not one
of the twins that few discrete values make, :func:`~trainwell.doctor.validation_rows.natural_rows`) is compared
with its previous label: with labels that follow their inputs it agrees every time (100%), with labels drawn apart
as often as two labels drawn at random do, ``sum_c f_c^2`` of the labels' class shares. A fail when, over
:data:`MIN_PAIRS` such returns or more, the agreement is nearer chance than 100% (below their midpoint): pseudo-labels
that the model revises for part of the rows stay far above it. Augmented inputs never come again and are not read.
A forward that also takes a plain value choosing what the model does, such as the task of a multi-task model
(``model(x, "parity")``, one head of an ``nn.ModuleDict`` per batch), gives a row one label per such value: a row is
compared only with its returns under the same values (:func:`selectors`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainwell.doctor.validation_rows import RowKeys, natural_rows
from trainwell.doctor.verdict import Verdict

NAME = "loop: labels follow their inputs"
ROWS = 1 << 16  # training rows keyed, at most
ANCHOR = ROWS // 2  # the first rows, all keyed; after them one step in a stride
LEVEL = 1 << 10  # rows read at one stride before it doubles (from 2)
MIN_PAIRS = 64  # returns of a row before the verdict reads them
TASKS = 8  # distinct plain values a forward takes, at most, to be read as tasks (more: a step or epoch index)


def selectors(args: tuple, kwargs: dict) -> tuple:
    """The plain values a forward takes beside its tensors (str, int, bool: a task's name or index, a mode flag),
    with their positions or names: what selects the head or task the labels belong to."""
    plain = (str, int, bool)
    return tuple((i, v) for i, v in enumerate(args) if isinstance(v, plain)) + \
        tuple((k, v) for k, v in sorted(kwargs.items()) if isinstance(v, plain))


class RowLabels:
    """The keys of the training rows and the labels given with them, per step."""

    def __init__(self, keys: RowKeys | None = None):
        self.keys = keys or RowKeys()  # shared with the validation split's reader: a batch gathered once
        self.rows = 0
        self._pending: list[tuple[int, Callable, tuple]] = []  # this step's forwards with gradients
        self._read: list[tuple[Callable, torch.Tensor, tuple]] = []  # (the rows' keys when asked, labels, selectors)
        self.context: tuple | None = None  # the selectors of the last step's one forward (None: not one forward)
        self._skip = 0  # steps left before the next one read (after the first ANCHOR rows)

    def forward(self, x, context: tuple = ()) -> None:
        """A forward with gradients (its rows gathered while there is room): rows of 2 elements or more (one id per
        row, a user's in a recommender, is no example: it comes back with its other examples' labels)."""
        if self.rows < ROWS and len(self._pending) < 2 and isinstance(x, torch.Tensor) and x.dim() >= 2 and \
                x[:1].numel() >= 2:
            if self._skip:  # a step not read: its forward's context only (no keys)
                self._pending.append((len(x), None, context))
                return
            read = self.keys.deferred(x)
            if read is not None:
                self._pending.append((*read, context))

    def step(self, y) -> None:
        """``w.step(loss, y=y)``: the step's one forward is paired with ``y`` when it holds one integer label per
        row (no device sync: the labels are copied, and read at the report)."""
        pending, self._pending = self._pending, []
        self.context = pending[0][2] if len(pending) == 1 else None
        if self._skip:
            self._skip -= 1
            return
        if self.rows >= ROWS or len(pending) != 1 or not isinstance(y, torch.Tensor) or y.dim() != 1 or \
                y.is_floating_point() or y.is_complex() or pending[0][0] != len(y):
            return
        self._read.append((pending[0][1], y.detach().clone(), pending[0][2]))
        self.rows += len(y)
        if self.rows >= ANCHOR:
            self._skip = (2 << (self.rows - ANCHOR) // LEVEL) - 1

    def verdict(self) -> Verdict | None:
        """A fail when a row that comes again keeps its label about as often as labels drawn at random would;
        None otherwise (also when too few rows came again)."""
        # labels all distinct within their batch are positions (a contrastive loss's torch.arange(B)): they follow
        # the batch, not the row
        read = [(keys(), labels, context) for keys, labels, context in self._read
                if len(torch.unique(labels)) < len(labels)]
        if not read:
            return None
        contexts = {context: n for n, context in enumerate(dict.fromkeys(c for _, _, c in read))}
        if len(contexts) > TASKS:  # a value that changes with the step (an epoch or step index): no task
            contexts = dict.fromkeys(contexts, 0)
        keys = torch.cat([k for (k, _), _, _ in read]).cpu()
        elements = torch.cat([e for (_, e), _, _ in read]).cpu()
        labels = torch.cat([labels for _, labels, _ in read]).cpu().long()
        within = torch.cat([torch.full((len(y),), contexts[c]) for _, y, c in read])
        if int(labels.min()) < 0:
            return None
        order = torch.argsort(keys, stable=True)  # each row's returns in the order they came
        order = order[torch.argsort(within[order], stable=True)]  # ... under the same selectors
        natural = natural_rows(keys, elements)[order]
        keys, labels, within = keys[order], labels[order], within[order]
        again = (keys[1:] == keys[:-1]) & (within[1:] == within[:-1]) & ~natural[1:]
        pairs = int(again.sum())
        if pairs < MIN_PAIRS:
            return None
        agree = float((labels[1:] == labels[:-1])[again].float().mean())
        shares = torch.bincount(labels).double() / len(labels)
        chance = float((shares ** 2).sum())
        if agree >= (1 + chance) / 2:
            return None
        return Verdict(NAME, "fail", f"a training row that came again kept its label on {agree:.0%} of {pairs} "
                       f"returns, as often as two labels drawn at random agree ({chance:.0%}): the labels do not "
                       "follow their inputs", "a row keeps its label every time it is drawn (100%)",
                       "the inputs and the labels are shuffled apart (two DataLoaders with shuffle=True zipped, a "
                       "permutation applied to the inputs only, or labels taken from outside the batch): shuffle "
                       "the (input, label) pairs together, one DataLoader over TensorDataset(x, y), or x[perm] "
                       "with y[perm]")
