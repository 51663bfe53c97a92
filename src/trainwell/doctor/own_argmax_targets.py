"""The ``loop: targets`` fail: the training loss's class targets are its own scores' argmax.

``preds = out.argmax(1)`` kept for an accuracy, then ``loss = criterion(out, preds)`` where ``criterion(out, y)``
was meant: the loss fits the model to its own guesses. Every step only sharpens what the model already predicts,
the labels never reach it, and the error stays at chance while the training loss falls. (Self-training's hard
pseudo-labels, Lee 2013, come from another forward of another view, and with a supervised term beside them.)

Read from the training loss's class-index call on the first steps (:mod:`~trainwell.doctor.training_loss_call`):
scores (N, C) and targets (N,) equal to ``scores.argmax(1)`` on every row, for N of :data:`ROWS` or more (labels
that match an untrained model's argmax on every row of a batch by chance are odds of C^-N), while the loss given to
``w.step`` is that call's value (the whole training loss, not an entropy term beside a supervised one).
"""

from __future__ import annotations

from trainwell.doctor.training_loss_call import TrainingLossCall
from trainwell.doctor.verdict import Verdict

NAME = "loop: targets"
#: rows of a batch whose targets all equal the scores' argmax read as the argmax given as targets
ROWS = 8


def own_argmax_targets(call: TrainingLossCall) -> Verdict | None:
    """The fail described in the module docstring, or None."""
    if call.own_argmax is None or call.read is None:
        return None
    (rows, classes), share = call.own_argmax[0], float(call.own_argmax[1])
    if rows < ROWS or classes < 2 or share < 1.0 or not call.whole_loss:
        return None
    return Verdict(NAME, "fail", f"the training loss's {call.read[0]} targets were the argmax of its own scores on "
                   f"all {rows} rows of a batch ({classes} classes): the model is fitted to its own guesses, "
                   "never to the labels", "the batch's labels as the loss's targets",
                   "the loss is given the predictions (preds = out.argmax(1); criterion(out, preds)): pass the "
                   "batch's labels, criterion(out, y), and keep the argmax for the accuracy")


__all__ = ["NAME", "own_argmax_targets"]
