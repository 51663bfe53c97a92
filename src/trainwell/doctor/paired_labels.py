"""Outputs paired with other positions' labels: ``logits.transpose(0, 1).reshape(-1, V)`` against
``y.reshape(-1)`` (or a ``view`` that mixes the batch and time axes) gives each output the label of another
example or position, so the loss trains on shuffled pairs while every label still appears once.

Under a cross-entropy on hard labels each position's gradient to its scores is (softmax - one_hot(label)) times a
positive weight: its one negative entry names the label the loss used. Read on the observed steps against the
``y`` given to ``w.step``: the same labels (the same count of each class), at other positions."""

from __future__ import annotations

import torch

from trainwell.doctor.verdict import Verdict

#: a step is read as paired elsewhere when fewer of its positions than this get their own label
_MATCHED = 0.5
#: observed steps read before judging
_MIN_READS = 2


def label_pairing(z: torch.Tensor, g: torch.Tensor, y: torch.Tensor) -> float | None:
    """The share of positions whose label, read from the gradient ``g`` on the scores ``z``, is the ``y`` at that
    position; None when it cannot be read: ``y`` not one integer label per position, a position without exactly
    one negative gradient entry (soft or smoothed targets, mixup, ignored or saturated positions), or labels that
    are not ``y``'s own (another count of some class)."""
    if y.is_floating_point() or y.dim() == 0 or z.dim() < 2 or g is None or g.shape != z.shape:
        return None
    if z.shape[:-1] == y.shape:
        scores = g.detach().float()
    elif z.shape[0] == y.shape[0] and z.shape[2:] == y.shape[1:] and z.dim() > 2:
        scores = g.detach().float().movedim(1, -1)
    else:
        return None
    scores = scores.reshape(-1, scores.shape[-1])
    if len(scores) < 16 or not bool(((scores < 0).sum(1) == 1).all()):
        return None
    read = scores.argmin(1)
    given = y.detach().reshape(-1).to(read.device).long()
    if int(given.min()) < 0 or int(given.max()) >= scores.shape[1]:
        return None
    classes = scores.shape[1]
    if not torch.equal(torch.bincount(read, minlength=classes), torch.bincount(given, minlength=classes)):
        return None
    return float((read == given).float().mean())


def paired_elsewhere(shares: list[float | None], mixup: bool = False) -> Verdict | None:
    """A fail when on every observed step that could be read (2 or more) most positions got another's label.
    None for a loop read as mixup or CutMix (``mixup``: its inputs mixed with a permutation of the batch's rows):
    there each mixed input's target weighs its partner's label by 1 - lam, the larger share whenever lam < 1/2
    (``lam * x + (1 - lam) * x[index]``, Zhang et al. 2018), so its scores' one negative gradient entry names the
    partner's label, another position's, on such a step, and every label is still used once."""
    read = [s for s in shares if s is not None]
    if mixup or len(read) < _MIN_READS or max(read) >= _MATCHED:
        return None
    return Verdict("loop: labels paired with outputs", "fail",
                   f"on {len(read)} of {len(read)} observed steps the loss gave most outputs another position's label "
                   f"(at most {max(read):.0%} their own), every label used once", "each output scored against its own "
                   "label", "a reshape or view mixes the axes before the loss (logits.transpose(0, 1).reshape(-1, C) "
                   "against y.reshape(-1)): flatten the outputs and the labels in the same order, e.g. "
                   "logits.reshape(-1, C) with y.reshape(-1)")
