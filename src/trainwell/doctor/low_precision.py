"""The ``loop:`` verdict on weights stored in bfloat16 or float16 and updated in place: an update smaller than
half a unit in the last place of a weight rounds away (bfloat16 keeps 8 significant bits, float16 11: an update
below ~0.2% or ~0.03% of the weight is lost). Mixed-precision training keeps float32 master weights for this
reason (Micikevicius et al. 2018, section 3.1); pure low-precision training with small Adam steps stalls."""

from __future__ import annotations

from trainwell.doctor.loop_probe import LoopProbe
from trainwell.doctor.verdict import Verdict

NAME = "loop: low-precision weights"


def low_precision_weights(probe: LoopProbe) -> Verdict | None:
    """None when no weight is bfloat16/float16 (or no step of them was observed); else the median share of the
    update that an observed step lost (the unchanged elements' share of the squared gradient under SGD, of the
    elements with a gradient under an adaptive optimizer): half or more is a warning."""
    if not probe.low_precision:
        return None
    dtype = probe.low_precision[0][0]
    shares = sorted(share for _, share in probe.low_precision)
    median = shares[len(shares) // 2]
    value = f"{dtype} weights: {median:.0%} of the update rounded away (the weights it should move left unchanged; " \
            f"median of {len(shares)} observed steps)"
    if median >= 0.5:
        return Verdict(NAME, "warn", value, "updates that change the weights",
                       f"the updates are below half a {dtype} step of the weights and round away: keep the weights "
                       "in float32 and run the forward under torch.autocast(device_type, dtype=torch.bfloat16) "
                       "(mixed precision), or use a larger learning rate")
    return Verdict(NAME, "pass", value, "-")
