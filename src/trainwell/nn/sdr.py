"""The stochastic delta rule (Frazier-Logue & Hanson 2018, "Dropout is a special case of the stochastic delta
rule"): every weight is a Gaussian N(mu, sigma^2), sampled anew at every forward pass.

The gradient at the sample w* updates the mean (mu <- mu - alpha dE/dw*, which any optimizer does since
dw*/dmu = 1); the spread grows with the gradient's size and decays: sigma <- zeta (beta |dE/dw*| + sigma)
(reference code: beta = 5, zeta = 0.99, optionally annealed as zeta0^(epoch+1)). Test time uses mu.
With beta = 0 and sigma0 = 0 the layer is an ordinary Linear layer trained by plain SGD, bit for bit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.nn.dropout import real_number


class SDRLinear(nn.Linear):
    """A Linear layer with Gaussian weights N(weight, sigma^2) sampled at every training forward pass."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, sigma0: float = 0.0):
        super().__init__(in_features, out_features, bias)
        number = real_number("sigma0", sigma0, "[0, inf)")
        if not (math.isfinite(number) and number >= 0):
            raise ValueError(f"sigma0={sigma0} is not allowed: use a number >= 0")
        sigma0 = number
        self.register_buffer("sigma", torch.full_like(self.weight, sigma0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.linear(x, self.weight, self.bias)
        w = self.weight + self.sigma * torch.randn_like(self.weight)
        return F.linear(x, w, self.bias)

    @torch.no_grad()
    def update_sigma(self, beta: float, zeta: float) -> None:
        """sigma <- zeta * (beta * |dE/dw*| + sigma), with dE/dw* the gradient of the last step."""
        if self.weight.grad is not None:
            self.sigma.copy_(zeta * (beta * self.weight.grad.abs() + self.sigma))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", sigma_mean={float(self.sigma.mean()):.3g}"


def sdr_layers(model: nn.Module) -> list[SDRLinear]:
    return [m for m in model.modules() if isinstance(m, SDRLinear)]
