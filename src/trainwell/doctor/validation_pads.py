"""A validation loss that counts the positions the training loss ignores (a padded batch's pads).

A sequence loop trains with ``F.cross_entropy(logits, y, ignore_index=PAD)`` (or ``nn.CrossEntropyLoss(
ignore_index=PAD)``) and validates with a loss that leaves ``ignore_index`` out: ``reduction="sum"`` divided by
``y.numel()``, or the default mean. The pads then count in the validation average only: the model never learned
to predict them (their loss is far above a token's), so the validation loss sits above the training loss by the
pads' share and rises while the training loss falls, read as overfitting or as a model that learns nothing that
carries over.

The training loss's ``ignore_index`` (other than torch's default -100) is read from the class-index loss calls
(``F.cross_entropy``, ``F.nll_loss``) of the first steps
(:class:`~trainwell.doctor.training_loss_call.TrainingLossCall`). A validation loss call of the
same function with another ``ignore_index`` on targets that hold that id is read at the validation
(:func:`pad_reading`: the pads, the targets, and the loss over the non-pad targets, recomputed on the call's own
scores; tensors, no host sync). The fail (:func:`pads_counted`) needs :data:`LEAST` validations read so, a value
given to ``w.validate`` equal to an average of its calls (:mod:`~trainwell.doctor.average_forms`), and pads
making :data:`SHARE` of the targets or more on each.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainwell.doctor.training_loss_call import DEFAULT

LEAST = 2  # validations read before a verdict
SHARE = 0.02  # the pads' share of the validation targets, at least, on every validation read
#: how the verdict begins (it explains the overfitting verdict, and nothing downstream of the training loss)
PADS_COUNTED = "the validation loss counts the positions the training loss ignores"


def pad_reading(name: str, given, target, ignored, pad: int | None, weight) -> tuple | None:
    """For a validation's class-index loss call (``name``; ``given`` scores, ``target``, its ``ignore_index``
    ``ignored``) when the training ignores ``pad`` and this call does not: (pads, targets, the loss summed over the
    non-pad targets, their count) as tensors on the scores' device; None otherwise (a class-weighted call too)."""
    if pad is None or ignored == pad or weight is not None or not isinstance(target, torch.Tensor) or \
            target.is_floating_point() or target.is_complex() or target.dtype == torch.bool or not target.dim():
        return None
    loss = F.cross_entropy if name == "cross_entropy" else F.nll_loss
    with torch.no_grad():
        try:
            kept = loss(given.detach(), target, ignore_index=pad, reduction="sum")
        except (RuntimeError, ValueError, IndexError):
            return None
        pads = (target == pad).sum()
    return pads, target.numel(), kept.double(), target.numel() - pads


def pads_counted(reads: list[tuple], pad: int | None, ignored) -> tuple[str, str, str] | None:
    """The fail's value, expected and advice when :data:`LEAST` validations or more were read (``reads``: per
    validation, the value given, the pads, the targets, the non-pad loss sum and count, floats) and pads make
    :data:`SHARE` of the targets or more on every one; None otherwise. ``pad``: the training's ``ignore_index``,
    ``ignored``: the validation's."""
    if pad is None or len(reads) < LEAST or any(r[1] < SHARE * r[2] for r in reads):
        return None
    value, pads, total, kept, count = reads[-1]
    share = min(r[1] / r[2] for r in reads)
    tokens = f"{kept / count:.4g}" if count > 0 else "undefined"
    given = "its default -100" if ignored == DEFAULT else f"ignore_index={ignored}"
    return (f"{PADS_COUNTED} on all {len(reads)} validations read: the training loss passes ignore_index={pad}, the "
            f"validation loss {given}, so the {share:.0%}+ of its targets equal to {pad} (the pads) count in its "
            f"average: {value:.4g} where the mean over its non-pad targets is {tokens}",
            f"the validation loss over the targets the training loss reads (ignore_index={pad} in both)",
            f"pass ignore_index={pad} to the validation loss too (F.cross_entropy(..., ignore_index={pad}), and divide "
            f"a reduction='sum' total by the non-pad targets, (y != {pad}).sum()): the model never learned the pads, "
            "so counting them lifts the validation loss by their share and its gap and trend read nothing")
