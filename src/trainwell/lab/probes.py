"""Measurements at initialization shared by the initialization experiments: per-layer activations and gradients.

These are plain computations on a model built by :func:`trainwell.nn.models.build_mlp` and initialized by
:func:`trainwell.init.apply` (the same builders the pipeline uses); nothing here trains.

Example:
    >>> import torch
    >>> m = init_mlp((40,), [64] * 3, 10, "he_normal", seed=0)
    >>> len(layer_signals(m, torch.randn(128, 40), torch.randint(0, 10, (128,)))["activations"])
    3
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import init as initializers
from trainwell.nn.models import ACTIVATIONS, build_mlp


def init_mlp(input_shape: tuple[int, ...], hidden: list[int], classes: int, scheme: str, *, activation: str = "relu",
             seed: int = 0, std: float = 0.01, output_layer: str = "linear", norm: str = "none") -> nn.Sequential:
    """An MLP as the pipeline builds it (``model.kind = "mlp"``), initialized with ``scheme`` and seed ``seed``."""
    from trainwell.nn.models import LayerOptions

    torch.manual_seed(seed)
    model = build_mlp(tuple(input_shape), list(hidden), classes, options=LayerOptions(activation=activation,
                                                                                        norm=norm))
    initializers.apply(model, scheme, std=std, output_init=output_layer,
                       generator=torch.Generator().manual_seed(seed))
    return model


def _activation_modules(model: nn.Module) -> list[nn.Module]:
    kinds = tuple({type(f()) for f in ACTIVATIONS.values()})
    return [m for m in model.modules() if isinstance(m, kinds)]


def layer_signals(model: nn.Module, x: torch.Tensor, y: torch.Tensor, keep: int = 0) -> dict:
    """One forward/backward pass of cross-entropy: per hidden layer, the activations' std and the std of the loss
    gradient with respect to the layer's pre-activation (what Glorot & Bengio's figures 6-7 histogram).

    Returns ``{"activations": [std per layer], "gradients": [std per layer], "samples": {...}}``; with ``keep`` > 0,
    ``samples`` holds up to ``keep`` values of each layer's activations and gradients (for histograms).
    """
    acts, pre = [], []
    hooks = []
    for m in _activation_modules(model):
        def hook(mod, args, out):
            args[0].retain_grad()
            pre.append(args[0])
            acts.append(out.detach())
        hooks.append(m.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    grads = [p.grad.detach() if p.grad is not None else torch.zeros_like(p) for p in pre]
    out = {"activations": [float(a.std()) for a in acts], "gradients": [float(g.std()) for g in grads],
           "loss": float(loss.detach())}
    if keep:
        g = torch.Generator().manual_seed(0)
        pick = [torch.randperm(a.numel(), generator=g)[:keep] for a in acts]
        out["samples"] = {"activations": [a.reshape(-1)[i].tolist() for a, i in zip(acts, pick, strict=True)],
                          "gradients": [gr.reshape(-1)[i].tolist() for gr, i in zip(grads, pick, strict=True)]}
    return out
