"""Weight penalties: L2 (1/2 lambda sum w^2), L1 (lambda sum |w|) and elastic net (both).

Penalties apply to weights only (Linear and Conv weight matrices, any parameter with >= 2 dims), never to
biases or normalization parameters (the lecture; Goodfellow et al. 2016, sec. 7.1).

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(2, 1)
    >>> with torch.no_grad(): _ = layer.weight.fill_(2.0)
    >>> float(l2_penalty(layer, 0.5))  # 1/2 * 0.5 * (4 + 4)
    2.0
"""

from __future__ import annotations

import torch
from torch import nn

# Normalization layers: their gammas and betas are never penalized.
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def penalized_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Weights that a penalty acts on: parameters with >= 2 dims outside normalization layers."""
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORM_TYPES) for p in m.parameters(recurse=False)}
    return [p for p in model.parameters() if p.dim() >= 2 and id(p) not in norm_ids]


def l2_penalty(model: nn.Module, strength: float) -> torch.Tensor:
    """1/2 * strength * sum of squared weights."""
    params = penalized_parameters(model)
    if not params:
        return torch.zeros(())
    return 0.5 * strength * sum((p * p).sum() for p in params)


def l1_penalty(model: nn.Module, strength: float) -> torch.Tensor:
    """strength * sum of absolute weights."""
    params = penalized_parameters(model)
    if not params:
        return torch.zeros(())
    return strength * sum(p.abs().sum() for p in params)


def elastic_penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor:
    """l1 * sum |w| + l2 * sum w^2 (Zou & Hastie 2005)."""
    return l1_penalty(model, l1) + 2.0 * l2_penalty(model, l2)
