"""Layers that build domain knowledge into a model (the lecture's "model bias" slides).

- :class:`RBF`: radial basis units, net_i = sum_j (x_j - w_ij)^2 / s_ij, y_i = exp(-net_i) (Broomhead & Lowe
  1988); s is kept positive through its logarithm.
- :class:`TemperatureSigmoid`: o = sigmoid(net / T) with a learned temperature T = exp(tau) per unit.
- :class:`Saliency`: a learned gain per input, x~_i = s_i x_i (which inputs matter): per feature or channel
  (axis 1), or per input value.
- :class:`MixtureOfExperts`: softmax gating over linear experts (Jacobs, Jordan, Nowlan & Hinton 1991) with
  their loss E = -ln sum_i g_i exp(-1/2 ||d - o_i||^2) (:func:`moe_loss`).
- :class:`TiedLinear`: one weight matrix applied at every position of the input (weight tying); its gradient is
  the sum of the gradients of the untied copies.
- :class:`SkipMLP`: an MLP plus direct input -> output connections (the lecture's XOR / NETtalk slide).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class RBF(nn.Module):
    """``out_features`` Gaussian units with learned centres w and per-dimension widths s."""

    not_weights = ("log_widths",)  # widths are not weights: never weight-decayed or penalized

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.centres = nn.Parameter(torch.randn(out_features, in_features))
        self.log_widths = nn.Parameter(torch.zeros(out_features, in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = x.reshape(len(x), 1, -1) - self.centres  # (N, out, in)
        net = (diff * diff / torch.exp(self.log_widths)).sum(dim=2)
        return torch.exp(-net)


class TemperatureSigmoid(nn.Module):
    """sigmoid(net / T) per unit, T = exp(tau) learned (tau = 0: the plain sigmoid)."""

    def __init__(self, features: int):
        super().__init__()
        self.log_temperature = nn.Parameter(torch.zeros(features))

    @property
    def temperature(self) -> torch.Tensor:
        return torch.exp(self.log_temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x / self.temperature)


class Saliency(nn.Module):
    """A learned gain s_i per input, x~_i = s_i x_i (initially 1): which inputs matter.

    ``Saliency(C)`` scales axis 1, as torch's ``BatchNorm1d/2d(C)`` counts it: the features of (N, C) rows, the
    channels of (N, C, L) signals and (N, C, H, W) images (one gain per channel, shared over positions).
    ``Saliency((C, H, W))`` gives one gain per input value (per pixel of each channel) of inputs shaped
    (N, C, H, W). Inputs of another shape are refused in one line.

    Example:
        >>> import torch
        >>> s = Saliency(3)
        >>> s(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 3, 4, 4])
    """

    def __init__(self, features: int | tuple[int, ...]):
        super().__init__()
        shape = (features,) if isinstance(features, int) else tuple(features)
        if not shape or any(not isinstance(n, int) or n < 1 for n in shape):
            raise ValueError(f"Saliency(features={features!r}): give the number of features (channels) as an "
                             f"integer >= 1, or the shape of one example as a tuple of them")
        self.per_value = not isinstance(features, int)
        self.gain = nn.Parameter(torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(self.gain.shape)
        if self.per_value:
            if tuple(x.shape[1:]) != shape:
                raise ValueError(f"Saliency({shape}) takes inputs of shape (N, {', '.join(map(str, shape))}) "
                                 f"(one gain per input value), got {tuple(x.shape)}")
            return x * self.gain
        if x.dim() < 2 or x.shape[1] != shape[0]:
            raise ValueError(f"Saliency({shape[0]}) scales axis 1 of (N, {shape[0]}) rows or (N, {shape[0]}, ...) "
                             f"channels, got an input of shape {tuple(x.shape)}: give it that axis's size, or "
                             f"Saliency(x.shape[1:]) for one gain per input value; move a last-axis feature to "
                             f"axis 1 first (x.transpose(1, -1))")
        return x * self.gain.reshape(shape[0], *([1] * (x.dim() - 2)))


class MixtureOfExperts(nn.Module):
    """Softmax gating g(x) over ``experts`` linear experts o_i(x); forward returns (outputs (N, E, D), gates)."""

    def __init__(self, in_features: int, out_features: int, experts: int = 4):
        super().__init__()
        self.experts = nn.Linear(in_features, experts * out_features)
        self.gate = nn.Linear(in_features, experts)
        self.n_experts, self.out_features = experts, out_features

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.reshape(len(x), -1)
        outputs = self.experts(x).reshape(len(x), self.n_experts, self.out_features)
        return outputs, torch.softmax(self.gate(x), dim=1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The gated average of the experts' outputs."""
        outputs, gates = self(x)
        return (gates.unsqueeze(2) * outputs).sum(dim=1)


def _check_target(outputs: torch.Tensor, target: torch.Tensor, what: str) -> None:
    """Refuse a target that is not one (N, D) row per example: broadcasting would pair it with the experts'
    (N, E, D) outputs without an error wherever N equals E (class indices of a batch of 4 against 4 experts) or a
    dimension is 1, and give a wrong loss."""
    n, _, d = outputs.shape
    if tuple(target.shape) == (n, d):
        return
    if target.dim() == 1 and not target.is_floating_point():
        fix = f"one-hot class indices first: F.one_hot(y, {d}).float()"
    else:
        fix = f"give one target row of the experts' {d} outputs per example"
    raise ValueError(f"{what}: the target has shape {tuple(target.shape)} but the experts' outputs are "
                     f"{tuple(outputs.shape)} (examples, experts, outputs), so it must be ({n}, {d}): {fix}")


def moe_loss(outputs: torch.Tensor, gates: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """E = -ln sum_i g_i exp(-1/2 ||d - o_i||^2), averaged over the batch. Its gradients are
    dE/do_i = -h_i (d - o_i) and dE/dlogit_i = g_i - h_i, with h the posterior responsibility.

    Raises:
        ValueError: a ``target`` that is not (N, D) for outputs (N, E, D), e.g. class indices.
    """
    _check_target(outputs, target, "moe_loss")
    sq = ((target.unsqueeze(1) - outputs) ** 2).sum(dim=2)  # (N, E)
    return -torch.logsumexp(torch.log(gates.clamp_min(1e-30)) - 0.5 * sq, dim=1).mean()


def responsibilities(outputs: torch.Tensor, gates: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """h_i = g_i exp(-1/2 ||d - o_i||^2) / sum_j g_j exp(-1/2 ||d - o_j||^2)."""
    _check_target(outputs, target, "responsibilities")
    sq = ((target.unsqueeze(1) - outputs) ** 2).sum(dim=2)
    return torch.softmax(torch.log(gates.clamp_min(1e-30)) - 0.5 * sq, dim=1)


class TiedLinear(nn.Module):
    """Apply one Linear(in_per_position, out_per_position) at each of ``positions`` blocks of the input."""

    def __init__(self, positions: int, in_per_position: int, out_per_position: int):
        super().__init__()
        self.positions = positions
        self.shared = nn.Linear(in_per_position, out_per_position)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = x.reshape(len(x), self.positions, -1)  # (N, P, in)
        return self.shared(blocks).reshape(len(x), -1)


class SkipMLP(nn.Module):
    """An MLP whose inputs also connect straight to its outputs: out = mlp(x) + W_skip x."""

    def __init__(self, mlp: nn.Module, in_features: int, out_features: int):
        super().__init__()
        self.mlp = mlp
        self.skip = nn.Linear(in_features, out_features, bias=False)
        nn.init.uniform_(self.skip.weight, -1 / math.sqrt(in_features), 1 / math.sqrt(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x) + self.skip(x.reshape(len(x), -1))
