"""``loop: loss reaches the outputs``: a loss computed on the model's outputs detached, trained by a penalty alone.

``criterion(out.detach(), y)`` (or a loss on ``out.data``, or on a tensor rebuilt from the outputs) passes no
gradient to the model; with a weight penalty added (``+ lam * sum(p.pow(2).sum() ...)``) ``backward()`` does not
raise, and every parameter gets a gradient: the penalty's, ``2 lam w``, which only shrinks the weights. The loss
stays at its first value and reads like a learning rate too low.

Read on the observed steps (:func:`~trainwell.doctor.step_record.read_step`'s ``penalty_only``): the model's
outputs got no gradient while the gradient backward delivered to the parameters is ``c w``, one c for every
parameter (to 1e-6 of its squared norm). A fail when every observed step, 2 or more, reads so."""

from __future__ import annotations

from trainwell.doctor.verdict import Verdict

NAME = "loop: loss reaches the outputs"


def detached_outputs(steps: list[dict]) -> Verdict | None:
    """The fail described in the module docstring, or None."""
    if len(steps) < 2 or not all(s.get("penalty_only") for s in steps):
        return None
    return Verdict(NAME, "fail", f"on {len(steps)} of {len(steps)} observed steps the model's outputs got no "
                   "gradient, and the parameters only a weight penalty's (proportional to the weights): the loss "
                   "is computed on detached outputs", "the loss's gradient reaching the model's outputs",
                   "compute the loss on the outputs themselves, not out.detach() or out.data (detach only what you "
                   "log, after the loss)")
