"""``loop: loss reaches the outputs``: a loss that does not change with the model's outputs.

A softmax over a single output (``F.softmax(out, dim=1)`` on a binary classifier's one logit, then ``BCELoss``) is
1.0 whatever the score, and its log-softmax 0: the loss is a constant of the outputs, backward() sends them a
gradient of exactly 0, and nothing learns (``backward()`` raises nothing, ``BCELoss`` clamps its log at -100). Any
loss flat in the outputs reads so (outputs rounded or thresholded on the way to the loss, through an operation
whose gradient is 0). A loss capped by ``torch.clamp(loss, max=c)`` (written to tame spikes) sends no gradient
while it is above ``c``: a loss of exactly the same round value on every observed step is named as such a cap.

Read on the observed steps (:func:`~trainwell.doctor.step_record.read_step`'s ``flat_outputs``): the gradient the
step's backward passes sent to the model's outputs is exactly 0 in every entry. A fail when every observed step,
2 or more, reads so while the loss is above 0 (a loss already at its floor, a hinge whose margins all hold, has
nothing to pass back).
"""

from __future__ import annotations

import math

from trainwell.doctor.loss_scaling import round_number
from trainwell.doctor.verdict import Verdict

NAME = "loop: loss reaches the outputs"


def flat_outputs(steps: list[dict], losses: list[float]) -> Verdict | None:
    """The fail described in the module docstring, or None."""
    if len(steps) < 2 or not all(s.get("flat_outputs") for s in steps) or not losses or \
            not all(math.isfinite(v) and v > 0 for v in losses[:3]):
        return None
    width = steps[0].get("output_width")
    one = width == 1
    if not one and len(set(losses)) == 1 and round_number(losses[0]):
        return Verdict(NAME, "fail", f"on {len(steps)} of {len(steps)} observed steps the gradient reaching the "
                       f"model's outputs was exactly 0 in every entry, and the loss was exactly {losses[0]:.4g} at "
                       f"all {len(losses)} steps: a cap (torch.clamp(loss, max={losses[0]:g})) holds it there",
                       "the loss's gradient reaching the model's outputs",
                       "a clamp sends no gradient while the loss is above its cap, so nothing learns: drop the "
                       "clamp (to tame spikes, clip the gradients with clip_grad_norm_, or use a robust loss such as "
                       "F.smooth_l1_loss)")
    return Verdict(NAME, "fail", f"on {len(steps)} of {len(steps)} observed steps the gradient reaching the model's "
                   f"outputs was exactly 0 in every entry while the loss was {losses[0]:.4g}: the loss does not "
                   "change with the outputs" + (" (one output per row: a softmax over a single output is 1.0 "
                                                 "whatever the score)" if one else ""),
                   "the loss's gradient reaching the model's outputs",
                   ("one output per row: use torch.sigmoid(out) with BCELoss, or BCEWithLogitsLoss on the raw "
                    "output (or two outputs under CrossEntropyLoss); a softmax needs two or more entries"
                    if one else "find the operation between the outputs and the loss whose gradient is 0 (a "
                    "softmax over a dimension of size 1, a round(), an argmax or a threshold) and compute the loss "
                    "on the outputs themselves"))


__all__ = ["NAME", "flat_outputs"]
