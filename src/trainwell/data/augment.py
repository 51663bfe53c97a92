"""Data augmentation applied on the fly to training batches only (never to validation or test data).

- 1-D signals (N, C, L): random circular translation by up to ``shift`` positions, random amplitude scaling by a
  factor in [1 - scale, 1 + scale], additive Gaussian noise.
- Images (N, C, H, W): random crop after zero padding by ``crop_padding`` (Krizhevsky et al. 2012's standard
  CIFAR recipe), random horizontal flips, small random translations.
- Gaussian input noise for any input (Bishop 1995: equivalent to Tikhonov regularization for small noise).

Every transform takes a ``torch.Generator`` so that a run is reproducible and resumable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainwell.errors import ConfigError


def _amount(name: str, value, upper: float | None = None, whole: bool = False) -> float:
    """``value`` checked as an augmentation amount: a finite number >= 0 (below ``upper`` when given; a whole
    number of positions when ``whole``), else a one-line error naming it."""
    from trainwell.nn.dropout import real_number

    allowed = ("a whole number of positions >= 0" if whole else
               f"a number in [0, {upper:g})" if upper is not None else "a finite number >= 0")
    number = real_number(name, value, allowed)
    if not (math.isfinite(number) and number >= 0 and (upper is None or number < upper)) or \
            whole and number != int(number):
        raise ValueError(f"{name}={value!r} is not allowed: use {allowed}")
    return int(number) if whole else number


def _rand(shape, generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device)


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """x + N(0, std^2) noise.

    Raises:
        TypeError: integer inputs (uint8 pixels): the noise, cast to their dtype, would wrap around.
        ValueError: a ``std`` that is not a finite number >= 0.
    """
    if _amount("std", std) == 0:
        return x
    if not x.is_floating_point():
        from trainwell.train.input_checks import integer_inputs_message

        raise TypeError(integer_inputs_message(x, "augment", "Gaussian noise is added in floating point"))
    return x + std * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)


def _shift_rows(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll each example along its last axis by its own shift (circular)."""
    length = x.shape[-1]
    idx = (torch.arange(length, device=x.device).unsqueeze(0) - shifts.unsqueeze(1)) % length  # (N, L)
    return x.gather(-1, idx.view(len(x), *([1] * (x.dim() - 2)), length).expand_as(x))


def augment_signal(x: torch.Tensor, generator: torch.Generator, shift: int = 4, scale: float = 0.1,
                   noise: float = 0.0) -> torch.Tensor:
    """Random translation (circular, up to +-shift), amplitude scaling by a factor in [1 - scale, 1 + scale] and
    Gaussian noise for (N, C, L).

    Raises:
        ValueError: ``shift`` not a whole number >= 0, ``scale`` outside [0, 1) (a factor <= 0 would flip or
            silence the signal), or ``noise`` not a finite number >= 0.
    """
    shift, scale = _amount("shift", shift, whole=True), _amount("scale", scale, upper=1)
    noise = _amount("noise", noise)
    out = x
    if shift:
        shifts = torch.randint(-shift, shift + 1, (len(x),), generator=generator).to(x.device)
        out = _shift_rows(out, shifts)
    if scale:
        factors = 1.0 + scale * (2 * _rand((len(x),), generator, x.device) - 1)
        out = out * factors.view(-1, *([1] * (x.dim() - 1)))
    return gaussian_noise(out, noise, generator)


def augment_image(x: torch.Tensor, generator: torch.Generator, crop_padding: int = 0, flip: bool = False,
                  shift: int = 0, noise: float = 0.0) -> torch.Tensor:
    """Random crop after zero padding, random horizontal flip, small translation, noise for (N, C, H, W).

    Raises:
        ValueError: a batch that is not (N, C, H, W) (grayscale images without their channel axis, say), or
            ``crop_padding``/``shift`` not a whole number >= 0, or ``noise`` not a finite number >= 0.
    """
    crop_padding, shift = _amount("crop_padding", crop_padding, whole=True), _amount("shift", shift, whole=True)
    noise = _amount("noise", noise)
    if x.dim() != 4:
        fix = "add the channel axis, x.unsqueeze(1)" if x.dim() == 3 else "give a batch of images"
        raise ValueError(f"augment_image takes a batch of images (N, C, H, W), got shape {tuple(x.shape)}: {fix}")
    n, _, h, w = x.shape
    out = x
    pad = max(crop_padding, shift)
    if pad:
        padded = F.pad(out, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
        out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if flip:
        mask = (_rand((n,), generator, x.device) < 0.5).view(n, 1, 1, 1)
        out = torch.where(mask, out.flip(-1), out)
    return gaussian_noise(out, noise, generator)


def build(kind: str, *, shift: int = 4, scale: float = 0.1, noise: float = 0.0, crop_padding: int = 4,
          flip: bool = True, input_noise: float = 0.0):
    """Return ``augment(batch, generator)`` for ``kind`` (none, signal, image), or None when nothing is on. The
    amounts are checked here, before the first batch (see :func:`augment_signal` and :func:`augment_image`)."""
    if kind not in ("none", "signal", "image"):
        raise ConfigError(f"augment.kind = {kind!r} is not allowed: use none, signal or image")
    input_noise, noise = _amount("input_noise", input_noise), _amount("noise", noise)
    shift, crop_padding = _amount("shift", shift, whole=True), _amount("crop_padding", crop_padding, whole=True)
    scale = _amount("scale", scale, upper=1)
    if kind == "none":
        if input_noise == 0:
            return None
        return lambda x, g: gaussian_noise(x, input_noise, g)
    if kind == "signal":
        return lambda x, g: gaussian_noise(augment_signal(x, g, shift, scale, noise), input_noise, g)
    return lambda x, g: gaussian_noise(augment_image(x, g, crop_padding, flip, shift, noise), input_noise, g)
