"""A learning rate too high for a loss summed over the batch: ``nn.CrossEntropyLoss(reduction='sum')`` (or
``F.nll_loss``) where the rate was chosen for the mean. The sum's gradient is the batch size times the mean's, so
SGD's step is that many times longer than the rate says (a rate of 0.1 on batches of 32 steps as 3.2 would on the
mean) and the loss diverges (Goyal et al. 2017 scale the rate with the batch for the same reason, the other way
round). The loss curve's ``too high`` verdict says so when the training loss's class-index call
(:class:`~trainwell.doctor.training_loss_call.TrainingLossCall`) was made with ``reduction='sum'``.

Example:
    >>> from trainwell.doctor.verdict import Verdict
    >>> too_high = Verdict("learning rate (loss curve)", "fail", "too high: loss became nan at step 8", "-", "lower")
    >>> summed_batch_loss(too_high, ("cross_entropy", -100, "sum")).value.endswith("reduction='sum')")
    True
"""

from __future__ import annotations

from trainwell.doctor.verdict import Verdict


def summed_batch_loss(curve: Verdict, call: tuple[str, int, str] | None) -> Verdict:
    """``curve`` (the loss curve's learning-rate verdict) with the summed loss named when it reads a rate too high
    and the training loss's call (``call``: its function, ignore_index and reduction) summed over the batch."""
    if call is None or call[2] != "sum" or curve.status not in ("warn", "fail") or \
            not str(curve.value).startswith("too high"):
        return curve
    return Verdict(curve.check, curve.status, f"{curve.value}; the training loss is F.{call[0]}(reduction='sum')",
                   curve.expected, f"the summed loss's gradient is the batch size times the mean's, so each step "
                   f"is that many times longer than the rate says: use reduction='mean' (the default), or divide the "
                   f"learning rate by the batch size; {curve.advice}")


__all__ = ["summed_batch_loss"]
