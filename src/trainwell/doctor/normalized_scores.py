"""Scores normalized after the last weighted layer (a cosine classifier, ``s * cos(theta)`` as in CosFace and
ArcFace): their scale is the model's own constant ``s``, so a first cross-entropy above ln C is by design, not an
init to shrink (Wang et al. 2018, CosFace; Deng et al. 2019, ArcFace)."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.forward import _outputs, _training_forward
from trainwell.doctor.inputs import Inputs, call


def normalized_after(model: nn.Module, x: torch.Tensor | Inputs) -> str | None:
    """The name of the last Linear/Conv layer when doubling its output leaves the class scores unchanged (the
    features are normalized after it, and the scores' scale is set by the model's own code); None otherwise, or
    when the forward cannot be read so. Both forwards run as the first training step sees them, minus the noise,
    from one seed; the model's mode is restored."""
    was = model.training
    try:
        rows = _outputs(_training_forward(model), x)
        if not rows:
            return None
        name = rows[-1][0]
        scores = []
        for scale in (1.0, 2.0):
            hook = model.get_submodule(name).register_forward_hook(
                lambda m, i, o, s=scale: o * s if isinstance(o, torch.Tensor) else None)
            try:
                with torch.no_grad(), torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    scores.append(O.logits(call(model, x)))
            finally:
                hook.remove()
    except Exception:  # noqa: BLE001 - a forward this reading cannot follow: no claim
        return None
    finally:
        model.train(was)
    ref, doubled = scores
    if not isinstance(ref, torch.Tensor) or not ref.is_floating_point() or not bool(ref.abs().amax() > 0):
        return None
    return name if torch.allclose(doubled, ref, rtol=1e-4, atol=1e-6 * float(ref.abs().amax())) else None


def normalized_in_loop(probe, forward: tuple | None, rows: int = 8) -> str | None:
    """:func:`normalized_after` under ``doctor.watch``: read on the first ``rows`` examples of the first observed
    training forward (``forward``: its (args, kwargs), tensors only), the probe's hooks recording nothing of it;
    None without one, or for a forward of other arguments."""
    if forward is None:
        return None
    args, kwargs = forward
    if kwargs or not args or not all(isinstance(a, torch.Tensor) and a.dim() for a in args):
        return None
    head = tuple(a[:rows] for a in args)
    probe.reading = True
    try:
        return normalized_after(probe.model, head[0] if len(head) == 1 else Inputs(head))
    finally:
        probe.reading = False
