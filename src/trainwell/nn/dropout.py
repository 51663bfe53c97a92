"""Dropout with the lecture's convention (p = probability of KEEPING a unit), and Uout.

- Vanilla dropout (Hinton et al. 2012; Srivastava et al. 2014): at training time multiply by a Bernoulli(keep)
  mask; at test time multiply by ``keep_prob`` so that expected activations match.
- Inverted dropout (cs231n): at training time multiply by mask / keep_prob; at test time do nothing.
- Uout (Li et al. 2019, "Understanding the disharmony between dropout and batch normalization by variance
  shift"): x + x * r with r ~ U(-beta, beta) at training time, identity at test time; its variance shift is
  small, so it can sit before BatchNorm.

torch's ``nn.Dropout(p)`` takes the DROP probability, 1 - keep_prob; this API never takes a bare ``p``, nor a
bare number: ``Dropout(0.2)`` would keep 20% here and drop 20% in torch, so ``keep_prob`` is given by name.

Example:
    >>> import torch
    >>> layer = Dropout(keep_prob=0.8)
    >>> y = layer(torch.ones(100000))
    >>> round(float(y.mean()), 1), sorted(set(y.unique().tolist()))
    (1.0, [0.0, 1.25])
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

MODES = ("inverted", "vanilla")


def real_number(name: str, value, allowed: str) -> float:
    """``value`` as a Python float: any real number (NumPy's ``np.float32(0.8)`` too) or a one-element tensor, but
    not a bool (``True`` is no probability)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool and \
            not value.is_complex():
        return float(value.detach())
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    raise TypeError(f"{name}={value!r} is not allowed: use a number in {allowed}")


def _check_keep(keep_prob) -> float:
    """``keep_prob`` as a float in (0, 1], else a one-line error."""
    value = real_number("keep_prob", keep_prob, "(0, 1]")
    if not 0.0 < value <= 1.0:
        raise ValueError(f"keep_prob={keep_prob} is not allowed: use a number in (0, 1] (the probability of "
                         f"keeping a unit; torch's p is 1 - keep_prob)")
    return value


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not allowed: use 'inverted' or 'vanilla'")


def _check_unit(name: str, value) -> float:
    """``value`` as a float in [0, 1], else a one-line error."""
    number = real_number(name, value, "[0, 1]")
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name}={value} is not allowed: use a number in [0, 1]")
    return number


def _by_name(owner: str, bare: tuple) -> None:
    """Refuse a positional keep probability in one line: a bare number reads as torch's drop probability too."""
    if bare:
        v = bare[0]
        hint = (f": {owner}(keep_prob={v}) keeps {v:.0%} of the units, torch's nn.Dropout({v}) drops {v:.0%}"
                if isinstance(v, (int, float)) and not isinstance(v, bool) else "")
        raise TypeError(f"trainwell's {owner} takes keep_prob by name{hint}")


def _no_torch_p(owner: str, p: float | None) -> None:
    """Refuse torch's ``p`` (the DROP probability) in one line that gives the equivalent keep_prob."""
    if p is not None:
        keep = f"{1.0 - p:.10g}" if isinstance(p, (int, float)) and not isinstance(p, bool) else "1 - p"
        raise TypeError(f"trainwell's {owner} takes keep_prob (= 1 - torch's p): keep_prob={keep}")


def _real_activations(owner: str, x) -> None:
    """Refuse what is not a floating-point tensor: dropping or scaling integers (token ids, uint8 pixels, labels)
    would change their values, and torch's random masks are floating point."""
    if isinstance(x, torch.Tensor) and not (x.is_floating_point() or x.is_complex()):
        have = str(x.dtype).removeprefix("torch.")
        raise TypeError(f"{owner} takes floating-point activations, got a tensor of dtype {have} (shape "
                        f"{tuple(x.shape)}): convert it first (x.float()), or put {owner} after the layer that "
                        f"reads the integers (an nn.Embedding for token ids)")


def dropout(x: torch.Tensor, *bare, keep_prob: float = 0.5, training: bool = True, mode: str = "inverted",
            generator: torch.Generator | None = None, p: None = None) -> torch.Tensor:
    """Apply dropout with keep probability ``keep_prob`` (see the module docstring for the two modes).

    Raises:
        TypeError: torch's ``p`` given (the message names the equivalent ``keep_prob``), or a positional keep
            probability (a bare number reads as torch's drop probability too).
        ValueError: ``keep_prob`` outside (0, 1] or an unknown ``mode``.
    """
    _by_name("dropout", bare)
    _no_torch_p("dropout", p)
    keep_prob = _check_keep(keep_prob)
    _check_mode(mode)
    _real_activations("dropout", x)
    if not training:
        return x * keep_prob if mode == "vanilla" else x
    if keep_prob == 1.0:
        return x
    mask = torch.rand(x.shape, device=x.device, dtype=x.dtype, generator=generator) < keep_prob
    return x * mask / keep_prob if mode == "inverted" else x * mask


class Dropout(nn.Module):
    """Module form of :func:`dropout`; follows ``model.train()`` / ``model.eval()``.

    ``Dropout(p=0.2)`` (torch's drop probability) raises a TypeError that suggests ``keep_prob=0.8``, and
    ``Dropout(0.2)`` one that asks for ``keep_prob=`` by name.
    """

    def __init__(self, *bare, keep_prob: float = 0.5, mode: str = "inverted", p: None = None):
        super().__init__()
        _by_name("Dropout", bare)
        _no_torch_p("Dropout", p)
        keep_prob = _check_keep(keep_prob)
        _check_mode(mode)
        self.keep_prob, self.mode = keep_prob, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, keep_prob=self.keep_prob, training=self.training, mode=self.mode)

    def extra_repr(self) -> str:
        return f"keep_prob={self.keep_prob}, mode={self.mode!r}"


def uout(x: torch.Tensor, beta: float = 0.1, training: bool = True) -> torch.Tensor:
    """Uniform multiplicative noise x + x * r, r ~ U(-beta, beta), at training time only (Li et al. 2019)."""
    beta = _check_unit("beta", beta)
    _real_activations("uout", x)
    if not training or beta == 0.0:
        return x
    r = (torch.rand_like(x) * 2.0 - 1.0) * beta
    return x + x * r


class Uout(nn.Module):
    """Module form of :func:`uout`."""

    def __init__(self, beta: float = 0.1):
        super().__init__()
        beta = _check_unit("beta", beta)
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return uout(x, self.beta, self.training)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


def drop_activation(x: torch.Tensor, *bare, keep_prob: float = 0.95, training: bool = True) -> torch.Tensor:
    """Drop-Activation (Liang et al. 2018): keep the ReLU with probability ``keep_prob`` per element, else let x
    through unchanged; at test time the expectation keep * relu(x) + (1 - keep) * x (a leaky ReLU of slope
    1 - keep). No rescaling."""
    _by_name("drop_activation", bare)
    keep_prob = _check_unit("keep_prob", keep_prob)
    _real_activations("drop_activation", x)
    relu = torch.relu(x)
    if not training:
        return keep_prob * relu + (1.0 - keep_prob) * x
    mask = (torch.rand_like(x) < keep_prob).to(x.dtype)
    return mask * relu + (1.0 - mask) * x


class DropActivation(nn.Module):
    """Module form of :func:`drop_activation` (default keep_prob 0.95, the paper's)."""

    def __init__(self, *bare, keep_prob: float = 0.95, p: None = None):
        super().__init__()
        _by_name("DropActivation", bare)
        _no_torch_p("DropActivation", p)
        keep_prob = _check_unit("keep_prob", keep_prob)
        self.keep_prob = keep_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_activation(x, keep_prob=self.keep_prob, training=self.training)

    def extra_repr(self) -> str:
        return f"keep_prob={self.keep_prob}"
