"""A validation loss that does not move while the training loss falls: the loss is not the trained model's.

Evaluating a copy that is never updated (``ema = copy.deepcopy(model)`` with the EMA update left out, weights
loaded from a file at every evaluation, a model built before training) or passing the same stored number to
``w.validate()`` gives the same validation loss at every evaluation, to the last digits, while training makes
progress. A model that trains changes its outputs on any held-out set, so the loss moves with it, if only a
little. The signal: the last three or more validation losses equal to a relative 1e-6 while the training loss
fell over them by more than a fifth of its value at the first evaluation (and at the first of them): a model that
has converged (a training loss going from 1e-4 to 1e-7 as it interpolates) moves its validation loss by less than
that and is not read. The train/val gap then says nothing about overfitting.
"""

from __future__ import annotations

import math

from trainwell.doctor.verdict import Verdict

#: validations in a row whose losses agree (to this relative difference) ...
SAME = 1e-6
LEAST = 3
#: ... while the training loss fell by more than this share of its value at the first evaluation and at the first
#: of them
FELL = 0.2


def unchanging_validation(history: list[dict]) -> Verdict | None:
    """A warning when the trailing run of identical validation losses spans 3+ evaluations over which the training
    loss fell by more than 20% of its first value; else None. ``history``: one dict per evaluation, with
    ``val_loss`` and ``train_loss``."""
    vals = [float(h["val_loss"]) for h in history]
    if len(vals) < LEAST or not all(math.isfinite(v) for v in vals):
        return None
    last, start = vals[-1], len(vals) - 1
    while start > 0 and abs(vals[start - 1] - last) <= SAME * abs(last):
        start -= 1
    same = len(vals) - start
    first_train, last_train = float(history[start]["train_loss"]), float(history[-1]["train_loss"])
    initial = float(history[0]["train_loss"])
    if same < LEAST or not all(math.isfinite(t) for t in (first_train, last_train, initial)) or \
            first_train - last_train <= FELL * max(abs(first_train), abs(initial)):
        return None
    span = f"all {same}" if same == len(vals) else f"the last {same} of {len(vals)}"
    return Verdict("overfitting", "warn", f"the validation loss does not change: {last:.6g} on {span} validations "
                   f"while the training loss fell {1 - last_train / first_train:.0%} ({first_train:.3g} -> "
                   f"{last_train:.3g})", "a validation loss that moves as the model trains",
                   "is the evaluated model the one being trained (an EMA/copy never updated, weights loaded from a "
                   "file, a model built before training), or the same stored number passed to w.validate() each "
                   "time? Evaluate the trained model (or update the copy): the gap says nothing until then")
