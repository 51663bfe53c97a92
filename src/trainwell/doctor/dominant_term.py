"""A loss term on outputs returned from mid-network that outweighs the data term: the advice for a model that fits
no better than one output for all its examples.

A VAE's loss is a reconstruction term plus a KL term on the encoder's mean and log-variance, which the model
returns beside the reconstruction (:mod:`~trainwell.doctor.inner_outputs`). The KL term pulls every example's
code to the prior, and the reconstruction pulls them apart; with the KL summed over the batch and the latents
while the reconstruction is averaged over its elements, the pull to the prior wins and every code collapses onto
it (posterior collapse): the decoder then answers one output for all examples. The gradient the model's
parameters get at the start shows it: the part the loss sends in directly at the mid-network outputs (the loss
minus the part that comes down through the other outputs, with the same sampled noise) against the part from the
data path. In a VAE whose terms are reduced alike (both summed per example and averaged over the batch) it is
about 0.2x; with the KL summed over 20 examples and their latents against a reconstruction averaged over 20 x 64
pixels, 200-250x. Beyond :data:`DOMINANT` times the data path's, the term is named.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.inner_outputs import inner_outputs, without_direct_gradient
from trainwell.doctor.inputs import Inputs, call

#: the direct term's gradient over the data path's beyond which the direct term is named
DOMINANT = 10.0


def _gradients(model: nn.Module, x: torch.Tensor | Inputs, y, loss_fn: Callable, seed: int, direct: bool):
    """The loss's gradient on the trainable parameters, with or without the loss's direct gradient on the
    mid-network outputs (the noise a forward draws seeded alike), and, without it, the names of those the loss
    reads."""
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        out = call(model, x)
        inner = inner_outputs(out)
        if not inner:
            return None, []
        read: set[int] = set()
        loss = loss_fn(out if direct else without_direct_gradient(out, inner, read), y)
        grads = torch.autograd.grad(loss.mean() if loss.dim() else loss, params, allow_unused=True)
    names = [name for name, _ in O.named_leaves(out)]
    return [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params, strict=True)], \
        [names[i] for i in sorted(read)]


def dominant_inner_term(model: nn.Module, x: torch.Tensor | Inputs, y, loss_fn: Callable,
                        seed: int = 0) -> str | None:
    """Advice naming the loss's term on mid-network outputs when its gradient at the start is over
    :data:`DOMINANT` times the data path's (see the module), else None."""
    m = copy.deepcopy(model).train()
    try:
        full, _ = _gradients(m, x, y, loss_fn, seed, direct=True)
        if full is None:
            return None
        data, names = _gradients(m, x, y, loss_fn, seed, direct=False)
    except Exception:  # noqa: BLE001 - a model or loss this reading cannot follow: no advice from it
        return None
    direct = sum(float((a - b).double().pow(2).sum()) for a, b in zip(full, data, strict=True)) ** 0.5
    through = sum(float(b.double().pow(2).sum()) for b in data) ** 0.5
    if not through > 0 or direct < DOMINANT * through:
        return None
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return (f"the loss's own term on {shown} (returned from mid-network: a KL term on a VAE's mean and "
            f"log-variance?) sends the parameters {direct / through:.3g}x the gradient the data term does: it "
            "outweighs the data term and pulls every example to one output (posterior collapse); is it summed over "
            "the batch or the latents where the data term is averaged, or weighted too heavily?")
