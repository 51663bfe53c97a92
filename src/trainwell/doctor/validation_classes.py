"""``loop: validation classes``: a validation set whose examples belong to classes the training never had.

Data files are often sorted by class (a CSV written class by class, a folder listing); split without shuffling -
``x[:n_train]`` and ``x[n_train:]``, or Keras' ``validation_split``, which takes the last rows - the validation set
holds the last classes and the training set never sees them. The model cannot score a class it never trained on
(its output unit only ever learned to be low), so the validation loss climbs from the first epoch while the
training loss falls: read as overfitting, with advice to stop earlier or regularize, which changes nothing.

The watch reads the class-index targets of the validation's loss calls (``F.cross_entropy``, ``F.nll_loss``, one
class per example) and the classes of the labels handed to ``w.step(..., y=yb)`` (:class:`TrainingClasses`, over
the whole run: a loop that adds classes task by task and validates after the last one is not named). When every
step was handed class-index labels, the share of the last validation's examples whose class is not among them is
named: a warning from :data:`SOME`, a fail from :data:`MOST`. A random split leaves a class out of training only
when the training set holds a handful of examples of it: with 5 per class on average, e^-5 = 0.7% of the classes,
far below :data:`SOME` of the examples.
Token targets (a language model's (B, T)) are not read: words of a validation text missing from a small training
text are expected.
"""

from __future__ import annotations

import torch

from trainwell.doctor.verdict import Verdict

NAME = "loop: validation classes"
SOME = 0.05  # share of the validation examples in classes the training never had: a warning
MOST = 0.25  # ... a fail
PIXELS = 4096  # a segmenter's per-pixel labels read per step, at most (evenly strided)
MOST_COUNTED = 1 << 16  # classes counted, at most (a vocabulary's ids beyond are not counted)
#: how the verdict begins (it explains the overfitting verdict, and nothing downstream of the training loss)
UNSEEN = "validation examples with a class the training never had"


def class_indices(t) -> bool:
    """Whether ``t`` holds one class index per example: a 1-D integer tensor (not bool)."""
    return isinstance(t, torch.Tensor) and t.dim() == 1 and not t.is_floating_point() and not t.is_complex() and \
        t.dtype != torch.bool


def masks(t) -> bool:
    """Whether ``t`` holds per-pixel class indices: an integer tensor (not bool) of (B, H, W) or more dims."""
    return isinstance(t, torch.Tensor) and t.dim() >= 3 and not t.is_floating_point() and not t.is_complex() and \
        t.dtype != torch.bool


def class_counts(targets: list, ignored: int | None) -> torch.Tensor | None:
    """The examples per class (a tensor, on the targets' device, no host sync) of one validation's class-index
    targets, one per example; None when any is not a 1-D integer tensor."""
    if not targets or ignored is None or not all(class_indices(t) for t in targets):
        return None
    flat = torch.cat([t.detach().reshape(-1) for t in targets])
    flat = flat[(flat != ignored) & (flat >= 0)]
    return torch.bincount(flat) if len(flat) else None


class TrainingClasses:
    """The classes of the labels handed to ``w.step`` (one per example, or a segmenter's per-pixel masks, of which
    :data:`PIXELS` per step are copied, on one step in ``MASKS``): each step's label tensor is kept by reference (no
    host sync) and the kept ones are reduced to their distinct classes at each validation (:meth:`fold`, one sync) or
    when :data:`KEPT` are held. The first :data:`ALL` steps are read, then one step in :data:`EVERY` (a class a loop
    trains on appears in many steps; ~1 us per step instead of ~10 for reading them all). ``complete``: every step
    read was handed one class index per example, or per pixel."""

    ALL, EVERY, KEPT, MASKS = 512, 16, 256, 4

    def __init__(self):
        self._pending: list[torch.Tensor] = []
        self._seen: set[int] = set()
        self._counts: torch.Tensor | None = None  # labels read per class (the classes' shares)
        self._steps = 0
        self.complete = True

    def add(self, y) -> None:
        self._steps += 1
        if not self.complete or self._steps > self.ALL and self._steps % self.EVERY:
            return
        if masks(y):  # a segmenter's per-pixel labels: every k-th row of pixels, copied (the masks are not held),
            if self._steps % self.MASKS != 1:  # on one step in MASKS (thousands of pixels each)
                return
            rows = y.detach() if y.dim() == 3 else y.detach().flatten(1, -2)
            step = max(1, rows.shape[1] // max(1, PIXELS // max(1, rows.shape[0] * rows.shape[2])))
            self._pending.append(rows[:, ::step].reshape(-1) if step > 1 else rows.reshape(-1).clone())
        elif not class_indices(y):
            self.complete = False
            return
        else:
            self._pending.append(y.detach())
        if len(self._pending) >= self.KEPT:
            self.fold()

    def fold(self) -> None:
        if self._pending and self.complete:
            labels = torch.cat([y.reshape(-1) for y in self._pending])
            self._seen.update(torch.unique(labels).tolist())
            labels = labels[labels >= 0].long().cpu()
            if labels.numel() and int(labels.max()) < MOST_COUNTED:
                counts = torch.bincount(labels)
                if self._counts is not None:
                    counts[: len(self._counts)] += self._counts[: len(counts)]
                    counts = torch.cat([counts, self._counts[len(counts):]])
                self._counts = counts
        self._pending = []

    def counts(self) -> torch.Tensor | None:
        """The labels read per class (index: the class), or None as :meth:`seen` is."""
        return self._counts if self.seen() is not None else None

    def seen(self) -> list[int] | None:
        """The classes seen (non-negative, sorted), or None when a step was handed no class-index labels."""
        self.fold()
        return sorted(c for c in self._seen if c >= 0) if self.complete and self._seen else None


def unseen_classes(seen: list[int] | None, validations: list[torch.Tensor]) -> Verdict | None:
    """The verdict on the last validation's class counts against the training classes ``seen``, or None when the
    training labels are not all class indices or the validation examples' classes are among them."""
    if not validations or not seen:
        return None
    counts = validations[-1].cpu()
    trained = torch.zeros(len(counts), dtype=torch.bool)
    trained[[c for c in seen if c < len(counts)]] = True
    unseen = counts[~trained].sum().item()
    total = counts.sum().item()
    if total == 0 or unseen / total < SOME:
        return None
    missing = torch.nonzero(counts * ~trained).flatten().tolist()
    named = ", ".join(map(str, missing[:6])) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    span = f"{seen[0]}-{seen[-1]}" if seen == list(range(seen[0], seen[-1] + 1)) and len(seen) > 2 else \
        ", ".join(map(str, seen[:8])) + (" ..." if len(seen) > 8 else "")
    return Verdict(NAME, "fail" if unseen / total >= MOST else "warn",
                   f"{UNSEEN}: {unseen / total:.0%} (class{'es' if len(missing) > 1 else ''} {named}; the training "
                   f"labels are {span})", "every validation class among the training labels",
                   "the split took the end of data sorted by class: shuffle before splitting "
                   "(torch.utils.data.random_split, or sklearn's train_test_split(x, y, stratify=y)); a class never "
                   "trained on scores low, and its validation loss reads as overfitting")
