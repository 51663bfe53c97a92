"""L0 regularization with hard-concrete gates (Louizos, Welling & Kingma 2018, "Learning sparse neural networks
through L0 regularization").

Each weight w has a gate z in [0, 1]. Training samples u ~ U(eps, 1 - eps),
s = sigmoid((log u - log(1 - u) + log alpha) / beta), s_bar = s (zeta - gamma) + gamma, z = clamp(s_bar, 0, 1),
with beta = 2/3, gamma = -0.1, zeta = 1.1; the layer uses w * z. The expected number of nonzero gates is
sum sigmoid(log alpha - beta log(-gamma / zeta)), a differentiable L0 penalty. At test time the gate is
deterministic: clamp(sigmoid(log alpha) (zeta - gamma) + gamma, 0, 1).

Check: at log alpha = 0, P(z > 0) = 0.8318 and the test gate is 0.5.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BETA, GAMMA, ZETA, EPS = 2.0 / 3.0, -0.1, 1.1, 1e-6


def sample_gates(log_alpha: torch.Tensor, beta: float = BETA) -> torch.Tensor:
    u = torch.rand_like(log_alpha).clamp(EPS, 1 - EPS)
    s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + log_alpha) / beta)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def deterministic_gates(log_alpha: torch.Tensor) -> torch.Tensor:
    return (torch.sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def expected_l0(log_alpha: torch.Tensor, beta: float = BETA) -> torch.Tensor:
    """P(z > 0) summed over gates."""
    return torch.sigmoid(log_alpha - beta * math.log(-GAMMA / ZETA)).sum()


class _Gated:
    """Mixin: one hard-concrete gate per weight, ``log_alpha`` learned with the weights."""

    not_weights = ("log_alpha",)  # gate logits: never weight-decayed or penalized (trainwell.regularize)

    def _init_gates(self, init_drop: float = 0.5) -> None:
        # log alpha = log(1 - drop) - log(drop), plus a little noise (Louizos et al.'s reference code)
        base = math.log(1 - init_drop) - math.log(init_drop)
        self.log_alpha = nn.Parameter(base + 0.01 * torch.randn(self.weight.shape))

    def gates(self) -> torch.Tensor:
        return sample_gates(self.log_alpha) if self.training else deterministic_gates(self.log_alpha)

    def expected_l0(self) -> torch.Tensor:
        return expected_l0(self.log_alpha)

    def effective_weight(self) -> torch.Tensor:
        """The weight the layer uses at test time: weight * deterministic gate."""
        return self.weight * deterministic_gates(self.log_alpha)

    @torch.no_grad()
    def sparsity(self) -> float:
        """Fraction of weights whose test-time gate is exactly 0."""
        return float((deterministic_gates(self.log_alpha) == 0).float().mean())


class L0Linear(_Gated, nn.Linear):
    """A Linear layer whose weights are multiplied by hard-concrete gates (one per weight)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        nn.Linear.__init__(self, in_features, out_features, bias)
        self._init_gates()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.gates(), self.bias)


class L0Conv1d(_Gated, nn.Conv1d):
    """A 1-D convolution whose weights are multiplied by hard-concrete gates."""

    def __init__(self, *args, **kwargs):
        nn.Conv1d.__init__(self, *args, **kwargs)
        self._init_gates()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.gates(), self.bias)


class L0Conv2d(_Gated, nn.Conv2d):
    """A 2-D convolution whose weights are multiplied by hard-concrete gates."""

    def __init__(self, *args, **kwargs):
        nn.Conv2d.__init__(self, *args, **kwargs)
        self._init_gates()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.gates(), self.bias)


def l0_sparsity(model: nn.Module) -> float | None:
    """Achieved sparsity over every gated layer (fraction of test-time gates at 0), or None without gates."""
    gated = [m for m in model.modules() if isinstance(m, _Gated)]
    if not gated:
        return None
    zero = sum(float((deterministic_gates(m.log_alpha) == 0).sum()) for m in gated)
    return zero / sum(m.log_alpha.numel() for m in gated)
