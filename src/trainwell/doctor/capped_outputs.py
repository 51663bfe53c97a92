"""A regressor whose outputs end in a Sigmoid (capped at 1) fitted by a squared error to targets far above 1.

A ``nn.Sigmoid()`` left after the last layer (copied from a classifier, or meant to keep a price or a count
"positive") caps every output below 1. Against targets in their own units, most of them above 1, the squared
error pushes every output up, the sigmoid saturates at 1 and its gradient vanishes: the loss stops at the
targets' distance from 1 and the layers before the sigmoid read as collapsed activations, not as a cap.

Read on the observed steps whose output gradient is a squared error's, c (z - y)
(:func:`~trainwell.doctor.loop_loss_inputs.read_cut_outputs`): a fail when on two or more of them no output went
above 1, the last one's highest output is within :data:`AT_CAP` of 1 (the outputs pressed against the cap, not a
linear head still climbing), a tenth or more of the targets are above 1 on each, and the targets' 95th percentile
(their median over the reads) is :data:`FAR` or more: targets in [0, 1] with some noise above it pass."""

from __future__ import annotations

from trainwell.doctor.depth_collapse import NAME as COLLAPSE
from trainwell.doctor.verdict import Verdict

NAME = "loop: loss input"
#: how the verdict's value begins
CAPPED_OUTPUTS = "a squared error is given outputs that never went above 1"
AT_CAP = 0.01  # the last read's highest output lies within this of 1
ABOVE = 0.1  # the share of targets above 1 on every read
FAR = 2.0  # the targets' 95th percentile, at least


def capped_outputs_verdict(reads: list[dict]) -> Verdict | None:
    """The fail described in the module docstring, or None."""
    if len(reads) < 2 or any(r["highest"] > 1.0 for r in reads) or reads[-1]["highest"] < 1.0 - AT_CAP:
        return None
    share = min(r["targets_above_one"] for r in reads)
    reach = sorted(r["high_target"] for r in reads)[len(reads) // 2]
    if share < ABOVE or reach < FAR:
        return None
    return Verdict(NAME, "fail", f"{CAPPED_OUTPUTS} on {len(reads)} observed steps (the last ones pressed against "
                   f"1), while {share:.0%} or more of the targets are above 1 (95th percentile {reach:.3g}): those "
                   "targets can never be reached", "outputs that can reach the targets",
                   "a Sigmoid ends the model: end a regressor with its last Linear layer, or scale the targets into "
                   "[0, 1] (divide by their maximum) and scale the predictions back")


def defer_collapse_to_cap(verdicts: list[Verdict]) -> list[Verdict]:
    """The verdicts, with a depth-collapse warning made 'info' when the outputs are capped: a Sigmoid saturated at 1
    has one value on every row, which reads as activations collapsed through depth."""
    capped = next((v for v in verdicts if v.status == "fail" and str(v.value).startswith(CAPPED_OUTPUTS)), None)
    if capped is None:
        return verdicts
    return [Verdict(v.check, "info", f"{v.value} (explained by '{capped.check}')", v.expected,
                    f"fix '{capped.check}' first: a Sigmoid saturated at 1 passes almost no signal or gradient")
            if v.check == COLLAPSE and v.status == "warn" else v for v in verdicts]
