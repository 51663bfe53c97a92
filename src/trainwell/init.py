"""Weight initializers from the lecture, mirroring ``torch.nn.init``: in place, under ``no_grad``, return the tensor.

- zeros: every hidden unit computes the same function (symmetry is never broken).
- small normal N(0, 0.01^2): activations shrink layer after layer in deep nets (cs231n).
- "standard" U[-1/sqrt(n), 1/sqrt(n)], n = fan_in: n Var(w) = 1/3 (LeCun et al. 1998; torch's Linear default).
- Xavier/Glorot (Glorot & Bengio 2010): Var(w) = 2 / (fan_in + fan_out).
- He/Kaiming (He et al. 2015): Var(w) = 2 / fan_in for ReLU (fan_out preserves the backward variance).
For a convolution, fan_in = in_channels * kernel size (kh * kw).

Example:
    >>> import torch
    >>> w = he_normal_(torch.empty(256, 128), generator=torch.Generator().manual_seed(0))
    >>> round(float(w.std()) * (128 ** 0.5), 1)  # std = sqrt(2 / fan_in)
    1.4
"""

from __future__ import annotations

import math

import torch
from torch import nn

SCHEMES = ("default", "zeros", "small_normal", "standard", "xavier_uniform", "xavier_normal", "he_normal",
           "he_uniform")


def fans(tensor: torch.Tensor) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)``: for weights (out, in, *kernel), fan_in = in * prod(kernel)."""
    if tensor.dim() < 2:
        raise ValueError(f"fan_in/fan_out need a weight with >= 2 dims, got shape {tuple(tensor.shape)}")
    receptive = math.prod(tensor.shape[2:]) if tensor.dim() > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: torch.Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode = {mode!r} is not allowed: use 'fan_in' or 'fan_out'")
    fan_in, fan_out = fans(tensor)
    return fan_in if mode == "fan_in" else fan_out


@torch.no_grad()
def zeros_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill with zeros (the symmetric, never-learning init the lecture warns about)."""
    return tensor.zero_()


@torch.no_grad()
def small_normal_(tensor: torch.Tensor, std: float = 0.01, generator: torch.Generator | None = None):
    """Fill from N(0, std^2), std = 0.01 by default (cs231n's "small random numbers")."""
    return tensor.normal_(0.0, std, generator=generator)


@torch.no_grad()
def standard_uniform_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill from U[-1/sqrt(fan_in), 1/sqrt(fan_in)] (LeCun 1998, "Efficient BackProp"); fan_in Var(w) = 1/3."""
    bound = 1.0 / math.sqrt(_fan(tensor, "fan_in"))
    return tensor.uniform_(-bound, bound, generator=generator)


@torch.no_grad()
def xavier_uniform_(tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    """Fill from U[-a, a], a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010, eq. 16)."""
    fan_in, fan_out = fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return tensor.uniform_(-bound, bound, generator=generator)


@torch.no_grad()
def xavier_normal_(tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None):
    """Fill from N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fans(tensor)
    return tensor.normal_(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)


@torch.no_grad()
def he_normal_(tensor: torch.Tensor, mode: str = "fan_in", generator: torch.Generator | None = None):
    """Fill from N(0, 2 / fan) (He et al. 2015, "Delving deep into rectifiers"); fan = fan_in or fan_out."""
    return tensor.normal_(0.0, math.sqrt(2.0 / _fan(tensor, mode)), generator=generator)


@torch.no_grad()
def he_uniform_(tensor: torch.Tensor, mode: str = "fan_in", generator: torch.Generator | None = None):
    """Fill from U[-sqrt(6 / fan), sqrt(6 / fan)] (He et al. 2015), variance 2 / fan."""
    bound = math.sqrt(6.0 / _fan(tensor, mode))
    return tensor.uniform_(-bound, bound, generator=generator)


@torch.no_grad()
def lecun_normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill from N(0, 1 / fan_in) (LeCun et al. 1998): variance-preserving for a linear unit."""
    return tensor.normal_(0.0, math.sqrt(1.0 / _fan(tensor, "fan_in")), generator=generator)


@torch.no_grad()
def lecun_uniform_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill from U[-sqrt(3 / fan_in), sqrt(3 / fan_in)]: variance 1 / fan_in."""
    bound = math.sqrt(3.0 / _fan(tensor, "fan_in"))
    return tensor.uniform_(-bound, bound, generator=generator)


def init_tensor_(tensor: torch.Tensor, scheme: str, *, mode: str = "fan_in", std: float = 0.01,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Initialize one weight tensor with the scheme named ``scheme`` (one of :data:`SCHEMES` but "default")."""
    if scheme == "zeros":
        return zeros_(tensor)
    if scheme == "small_normal":
        return small_normal_(tensor, std=std, generator=generator)
    if scheme == "standard":
        return standard_uniform_(tensor, generator=generator)
    if scheme == "xavier_uniform":
        return xavier_uniform_(tensor, generator=generator)
    if scheme == "xavier_normal":
        return xavier_normal_(tensor, generator=generator)
    if scheme == "he_normal":
        return he_normal_(tensor, mode=mode, generator=generator)
    if scheme == "he_uniform":
        return he_uniform_(tensor, mode=mode, generator=generator)
    raise ValueError(f"unknown init scheme {scheme!r}: allowed are {', '.join(SCHEMES)}")


_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@torch.no_grad()
def apply(model: nn.Module, scheme: str, bias: float = 0.0, *, mode: str = "fan_in", std: float = 0.01,
          generator: torch.Generator | None = None, output_layer: str = "linear") -> nn.Module:
    """Initialize every Linear/Conv weight of ``model`` with ``scheme`` and set their biases to ``bias``.

    ``scheme="default"`` keeps torch's own initialization (weights and biases untouched). Use ``bias=0.01``
    for ReLU units to start them in their active region (the lecture's advice).

    He's factor 2 compensates for the ReLU that zeroes half of each unit's input variance. The output layer
    feeds no ReLU (it feeds the softmax), so with ``output_layer="linear"`` (the default) the He schemes give it
    the linear-unit variance 1 / fan_in (LeCun) instead, which keeps the initial loss near ln C.
    ``output_layer="same"`` applies the scheme unchanged to every layer.

    Returns the model, for chaining.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}: allowed are {', '.join(SCHEMES)}")
    if output_layer not in ("linear", "same"):
        raise ValueError(f"output_layer = {output_layer!r} is not allowed: use 'linear' or 'same'")
    if scheme == "default":
        return model
    weighted = [m for m in model.modules() if isinstance(m, _WEIGHTED)]
    for i, module in enumerate(weighted):
        last = i == len(weighted) - 1
        if last and output_layer == "linear" and scheme in ("he_normal", "he_uniform"):
            (lecun_normal_ if scheme == "he_normal" else lecun_uniform_)(module.weight, generator=generator)
        else:
            init_tensor_(module.weight, scheme, mode=mode, std=std, generator=generator)
        if module.bias is not None:
            module.bias.fill_(bias)
    return model
