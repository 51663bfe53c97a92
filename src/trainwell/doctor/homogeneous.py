"""Whether a model is positively homogeneous in its input, ``f(2x) = 2 f(x)``: a bias-free network of linear layers
and ReLU / leaky ReLU units (Deep SVDD's, Ruff et al. 2018). Such a model cannot give one nonzero output for every
input (it would have to give both c and 2c at x and 2x): a free constant that a loss rewards is out of its reach.
Ruff et al. remove the bias terms for that reason, so that mapping every example to the fixed centre c (the
"hypersphere collapse") is not a solution the network can reach."""

from __future__ import annotations

import copy

import torch
from torch import nn

from trainwell.doctor.inputs import Inputs, call


def positively_homogeneous(model: nn.Module, x: torch.Tensor | Inputs, rows: int = 16, rtol: float = 1e-4) -> bool:
    """Whether the model's outputs (a single tensor) on ``2 x`` are twice its outputs on ``x`` (one floating input,
    its first ``rows`` examples, an eval-mode copy in float64), and not all zero; False when it cannot be read."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return False
    head = x[:rows].detach().double()
    m = copy.deepcopy(model).double().eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            one, two = call(m, head), call(m, 2 * head)
    except Exception:  # noqa: BLE001 - a model this reading cannot run is not known to be homogeneous
        return False
    if not isinstance(one, torch.Tensor) or not isinstance(two, torch.Tensor) or one.shape != two.shape:
        return False
    scale = float(one.abs().max())
    return scale > 0 and bool(((two - 2 * one).abs() <= rtol * scale).all())
