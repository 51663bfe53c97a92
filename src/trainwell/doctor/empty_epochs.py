"""Epochs that train nothing: validations that come with no training step since the one before.

An iterator made once, outside the epoch loop (``batches = iter(train_loader)``, a generator of batches, a
``zip`` of two loaders), is used up after its first pass: ``for xb, yb in batches`` in every later epoch runs zero
times, the model stops changing after the first epoch, and every later validation reads the same weights. The
loop still runs to its end without an error, its log shows the same validation loss epoch after epoch.

Read from the step counts at which ``w.validate()`` came: the validations after the run's last ``w.step()``. The
first of them closes the last epoch that trained; two or more further ones (three validations at the same step
count, the last training step before them all), half the validations or more, mean the later epochs ran no batch.
A validation before training (a baseline at step 0), a loop that validates twice per epoch (a validation and a
test loss given to ``w.validate`` in turn) and a final evaluation or two after a longer run are not read.
"""

from __future__ import annotations

from trainwell.doctor.verdict import Verdict

NAME = "loop: steps between validations"
#: validations after the one closing the last epoch that trained, with no step since, for a fail
EMPTY = 2
FIX = ("an iterator made once outside the epoch loop (batches = iter(loader)) is used up after one pass: loop over "
       "the DataLoader itself (for xb, yb in loader), or call iter(loader) at the top of every epoch")


def empty_epochs(validation_steps: list[int], steps: int) -> Verdict | None:
    """A fail when 2 or more validations, half of them or more, came after the one closing the run's last trained
    epoch, with no step since (``validation_steps``: the number of ``w.step()`` calls before each validation;
    ``steps``: the run's total); else None."""
    if steps <= 0 or not validation_steps or validation_steps[-1] != steps:
        return None
    after = sum(1 for s in validation_steps if s == steps)  # the one closing the last trained epoch, then the rest
    empty = after - 1
    if empty < EMPTY or 2 * empty < len(validation_steps):  # a final evaluation or two after the training epochs
        return None
    trained = len(validation_steps) - empty  # the validation that closed the last epoch that trained
    return Verdict(NAME, "fail", f"no w.step() before the last {empty} of {len(validation_steps)} validations: all "
                   f"{steps} steps came before validation {trained}, so the epochs after it trained nothing (their "
                   "validation losses read the same weights)", "training steps in every epoch", FIX)


def defer_to_empty_epochs(verdicts: list[Verdict]) -> list[Verdict]:
    """The overfitting verdict's warning (a validation loss that does not change, a gap) reads validations of
    weights no step changed when epochs trained nothing: it becomes 'info', naming that cause first."""
    empty = next((v for v in verdicts if v.check == NAME and v.status == "fail"), None)
    if empty is None:
        return verdicts
    return [Verdict(v.check, "info", f"{v.value} (explained by '{NAME}')", v.expected,
                    f"fix '{NAME}' first: the later validations read a model no step changed")
            if v.check == "overfitting" and v.status == "warn" else v for v in verdicts]
