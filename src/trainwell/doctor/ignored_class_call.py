"""The ``loop: targets`` fail: the training loss's ``ignore_index`` is one of the model's classes.

``F.cross_entropy(out, y, ignore_index=0)`` (``nn.CrossEntropyLoss(ignore_index=0)``) where 0 is a real class
skips every example of that class: the model never learns it, and its loss and accuracy read as if it did not
exist. The pre-flight reads it from the loss it is given (:func:`~trainwell.doctor.target_range.ignored_class`); a
watched loop's is read from its training loss's class-index call on the first steps
(:mod:`~trainwell.doctor.training_loss_call`): scores of one row per example of the batch, (B, C), and targets
(B,) some of which equal an ``ignore_index`` in [0, C). A padded sequence's scores flattened to (B * T, C), whose
pad id is ignored by design, have more rows than the batch and are not read."""

from __future__ import annotations

from trainwell.doctor.training_loss_call import TrainingLossCall
from trainwell.doctor.verdict import Verdict

NAME = "loop: targets"


def ignored_class_call(call: TrainingLossCall, rows: int | None) -> Verdict | None:
    """A fail when the training loss's class-index call ignores a class some of its targets hold, on scores of
    ``rows`` rows (the batch's); else None."""
    if call.ignored is None or call.read is None or rows is None:
        return None
    (n, classes), share = call.ignored[0], float(call.ignored[1])
    if n != rows or share == 0:
        return None
    ignore = call.read[1]
    return Verdict(NAME, "fail", f"{share:.0%} of a batch's targets equal ignore_index={ignore}, one of the model's "
                   f"{classes} classes", "ignore_index outside [0, C) (torch's default -100)",
                   f"the loss skips every example of class {ignore}: it never learns that class; use ignore_index "
                   f"only for a padding label outside 0..{classes - 1}")


__all__ = ["ignored_class_call"]
