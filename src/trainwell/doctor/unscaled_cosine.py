"""A cosine classifier without its scale: class scores ``normalize(features) @ normalize(W).T`` fed to cross-entropy
as they are. Every score is a cosine in [-1, 1], so the softmax over C classes cannot put more than
e / (e + (C - 1) / e) on the label: the loss cannot fall below log(1 + (C - 1) e^-2) (0.34 for 4 classes, 2.2 for
100), its gradients stay weak, and the classifier trains slowly and stops high. NormFace (Wang et al. 2017) derives
that bound and multiplies the cosines by a scale s; CosFace (Wang et al. 2018) and ArcFace (Deng et al. 2019) use
s = 30 to 64. Read under ``doctor.watch`` where the scores are normalized after the last weighted layer
(:func:`~trainwell.doctor.normalized_scores.normalized_in_loop`; one output, the layer reached by the backward) and
never left [-1, 1], the last observed step's reaching half of it.

Example:
    >>> import math
    >>> round(cosine_floor(4), 3)
    0.341
"""

from __future__ import annotations

import math

from trainwell.doctor.normalized_scores import normalized_in_loop
from trainwell.doctor.verdict import Verdict

#: observed steps needed
LEAST_STEPS = 4
#: the scores' largest magnitude, on every observed step, at most this (a cosine, with float rounding)
BOUND = 1.0 + 1e-4
#: the last observed step's largest magnitude at least this: the scores use their range (a model that learns)
NEAR = 0.5


def cosine_floor(classes: int) -> float:
    """The least cross-entropy over ``classes`` classes when every score lies in [-1, 1]: the label at 1, the
    others at -1."""
    return math.log(1 + (classes - 1) * math.exp(-2.0))


def unscaled_cosine(probe, forward: tuple | None) -> Verdict | None:
    """``loop: loss`` warning for cross-entropy on cosine scores that no scale multiplies (the observed steps'
    ``score_max``, the largest |score| of each, read with the training forward ``forward``); None otherwise."""
    steps = [s for s in probe.steps if s.get("score_max") is not None]
    if probe.multi_output or probe.scores_batchnorm is not None or len(steps) < LEAST_STEPS or \
            len(steps) != len(probe.steps) or any(s["form"] != "cross_entropy" for s in steps):
        return None
    highest = max(s["score_max"] for s in steps)
    if highest > BOUND or steps[-1]["score_max"] < NEAR:
        return None
    layer = normalized_in_loop(probe, forward)
    # the layer must feed the scores: a last layer whose output nothing uses also leaves them unchanged
    if layer is None or not any(n.startswith(f"{layer}.") for n in probe.reached):
        return None
    c = max(s["classes"] or 0 for s in steps)
    if c < 2:
        return None
    return Verdict("loop: loss", "warn",
                   f"cross-entropy on cosine scores with no scale: the features are normalized after the last layer "
                   f"'{layer}' and the scores never left [-1, 1] on {len(steps)} observed steps (largest "
                   f"|score| {highest:.3g}), so the loss cannot fall below log(1 + (C - 1) e^-2) = "
                   f"{cosine_floor(c):.3g} for C = {c}",
                   "s * cos(theta), s ~ 16-64 (or learned)",
                   "multiply the cosines by a scale s before the loss (NormFace, Wang et al. 2017; CosFace, Wang et "
                   "al. 2018: s = 30-64): with s = 1 the softmax stays near uniform and its gradients stay weak")
