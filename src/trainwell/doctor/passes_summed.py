"""A step whose gradient is k full means of the loss: k micro-batches accumulated with no division by k, or one
forward's loss backed k times (``loss.backward(retain_graph=True)`` for a log, then ``loss.backward()`` again).
Both add the same kind of gradient k times; they differ in the forwards the step's backward passes reached (read
by :mod:`~trainwell.doctor.backward_passes`): k of them, or one."""

from __future__ import annotations

from trainwell.doctor.verdict import Verdict


def passes_summed(name: str, k: int, weight: float, forwards: int) -> Verdict:
    """The fail for a step whose gradient is ``k`` full means: ``k`` micro-batches accumulated undivided, or (one
    forward, ``forwards == 1``) one loss's graph backed ``k`` times (``retain_graph=True``)."""
    if forwards == 1:
        return Verdict(name, "fail", f"backward() ran {k} times per step on one forward's loss (retain_graph=True): "
                       f"the gradient is {weight:.3g}x the mean's", "one backward() per loss",
                       "call loss.backward() once per step: a gradient norm for a log is read from .grad after it, "
                       "and a second backward() adds the same gradient again")
    return Verdict(name, "fail", f"{k} micro-batches accumulated per step, each loss a full mean: the gradient "
                   f"is {weight:.3g}x the mean's", "loss / k for k accumulated micro-batches",
                   f"divide each micro-batch's loss by {k} before backward() (else the step is {k}x too large)")


__all__ = ["passes_summed"]
