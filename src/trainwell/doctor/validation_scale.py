"""A validation loss measured on another scale than the training loss.

The training loss of the untrained model bounds what a loss of the same measure gives on held-out data of the same
kind: an untrained model's error is about the targets' spread, and training lowers the error on examples like its
own. A validation loss far above that first training loss at every evaluation, from the first one on, is not the
training loss's measure: regression targets standardized for training while the validation error is computed on
the raw scale (de-standardized predictions against prices in dollars: the training loss times the targets'
variance, 1e9 for a std of 30,000), or a validation loss summed over the examples where training takes the mean
(the training loss times the validation set's size). An overfitted model's validation loss rises over the run, and
starts near the first training loss; this one is far above it from the start.
"""

from __future__ import annotations

import math

from trainwell.doctor.verdict import Verdict

#: the validation loss, at every evaluation, over this many times the run's first training loss
FACTOR = 100.0


def validation_scale(history: list[dict], first_loss: float | None) -> Verdict | None:
    """The overfitting verdict's warning when every validation loss in ``history`` is over :data:`FACTOR` times
    ``first_loss`` (the run's first training loss, positive); None otherwise."""
    if not history or first_loss is None or not math.isfinite(first_loss) or first_loss <= 0:
        return None
    vals = [float(h["val_loss"]) for h in history]
    if not all(math.isfinite(v) for v in vals) or min(vals) <= FACTOR * first_loss:
        return None
    return Verdict("overfitting", "warn", f"every validation loss is over {min(vals) / first_loss:.2g}x the first "
                   f"training loss ({min(vals):.3g} at best vs {first_loss:.3g}, before any update): it is not "
                   "measured as the training loss is", f"a validation loss below {FACTOR:g}x the first training loss",
                   "compute the validation loss as the training loss: on the same target scale (targets standardized "
                   "for training: standardize the validation targets with the training mean and std, and report "
                   "the error in raw units apart) and with the same reduction (a mean over the examples, not a sum)")
