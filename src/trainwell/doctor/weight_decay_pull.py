"""Weight decay coupled to the gradient (SGD's or Adam's ``weight_decay``, an L2 term added to ``.grad``) read
against the loss's own gradient at the first step.

At initialization the data gradient should dominate; at a minimum of loss + L2 the two balance by design, so
later steps are not read. Two strengths are named: a decay that out-pulls the gradient (0.5 for 5e-4), and a
decay at the scale of AdamW's decoupled decay (>= 0.05) given to a coupled one. AdamW's decay is multiplied by
the rate (lr x 0.1 per step), but Adam's ``weight_decay`` enters the gradient and is then normalized with it
(Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"): 0.1 there is an L2 penalty 100x the usual
1e-4..1e-3, and its equilibrium shrinks the weights whatever the optimizer.
"""

from __future__ import annotations

from trainwell.doctor.loop_probe import LoopProbe
from trainwell.doctor.loop_step_hooks import ADAPTIVE
from trainwell.doctor.verdict import Verdict

NAME = "loop: weight decay"
#: a coupled decay from here up is the scale of AdamW's decoupled decay (0.01..0.1), 10-100x a usual L2 strength
DECOUPLED_SCALE = 0.05
#: with such a decay, the share of the data gradient its pull reaches at the first step for the L2 to matter
FELT = 0.25


def weight_decay(probe: LoopProbe) -> Verdict | None:
    """The coupled decay's pull ``||wd w|| / ||g||`` at the first step against the data gradient. None without
    coupled decay (AdamW's decoupled decay is not read)."""
    first = next((s["decay_ratio"] for s in probe.steps if s["step"] == 0 and s.get("decay_ratio")), None)
    if first is None:
        return None
    wd, ratio = first
    # a fine-tuned model starts near a minimum (a small gradient): a usual decay then out-pulls it by design
    if ratio > 1.0 and wd >= 1e-2:
        return Verdict(NAME, "warn", f"weight_decay={wd:g} pulls the weights {ratio:.3g}x harder than the loss's "
                       "gradient at the first step", "decay well below the data gradient at initialization",
                       "the decay dominates the update and shrinks the weights towards 0 (the model underfits): "
                       "typical values are 1e-5..5e-3 for SGD and Adam (0.5 may be a typo for 5e-4)")
    if wd >= DECOUPLED_SCALE and ratio >= FELT:
        adaptive = isinstance(probe.optimizer, ADAPTIVE)
        kind = type(probe.optimizer).__name__
        return Verdict(NAME, "warn", f"{kind}(weight_decay={wd:g}) adds an L2 term {ratio:.2g}x the loss's gradient "
                       "at the first step", f"a coupled weight_decay below {DECOUPLED_SCALE:g} (1e-5..5e-3)",
                       ("Adam's weight_decay is L2 added to the gradient, then normalized with it, not AdamW's "
                        f"decoupled decay: {wd:g} is AdamW's scale; use torch.optim.AdamW(weight_decay={wd:g}) or "
                        "a weight_decay near 1e-4") if adaptive else
                       f"weight_decay={wd:g} is a strong L2 penalty that shrinks the weights towards 0 (the model "
                       "underfits): typical values are 1e-5..5e-3")
    return Verdict(NAME, "pass", f"weight_decay={wd:g}: {ratio:.2g}x the loss's gradient at the first step", "-")
