"""Normalization layers for the model builders: batch, layer, group and instance normalization.

- BatchNorm (Ioffe & Szegedy 2015): per channel over the batch (and positions); running statistics with
  momentum 0.1 and the unbiased variance; ``model.eval()`` uses the running statistics.
- LayerNorm (Ba et al. 2016), InstanceNorm (Ulyanov et al. 2016) and GroupNorm (Wu & He 2018): per sample, so a
  sample's output never depends on the rest of the batch. GroupNorm with 1 group normalizes over (C, H, W) like
  LayerNorm; with C groups it normalizes each channel like InstanceNorm.

For convolutional features, "layer" is ``GroupNorm(1, C)`` (normalize over all of (C, ...) with a per-channel
affine), "instance" is ``GroupNorm(C, C)``. For dense features (N, C), "layer" is ``nn.LayerNorm(C)``.
"""

from __future__ import annotations

from torch import nn

from trainwell.errors import ConfigError
from trainwell.regularize import NORM_TYPES

KINDS = ("none", "batch", "layer", "group", "instance")


def make_norm(kind: str, channels: int, spatial_dims: int, groups: int = 32, where: str = "model.norm",
              groups_key: str = "model.norm_groups"):
    """Return a normalization module for features with ``channels`` channels and ``spatial_dims`` spatial axes
    (0 for dense layers, 1 to 3 for (N, C, L), (N, C, H, W) and (N, C, D, H, W) features), or None for
    ``"none"``. ``where`` and ``groups_key`` name the config keys the kind and the groups came from, for the errors.

    Raises:
        ConfigError: unknown kind, groups not dividing channels, or instance norm without spatial axes.
        ValueError: ``spatial_dims`` outside 0..3.
    """
    if kind not in KINDS:
        raise ConfigError(f"{where} = {kind!r} is not allowed: use one of {', '.join(KINDS)}")
    if isinstance(spatial_dims, bool) or spatial_dims not in (0, 1, 2, 3):
        raise ValueError(f"spatial_dims={spatial_dims!r} is not allowed: use 0 for (N, C) features, 1 for (N, C, L), "
                         f"2 for (N, C, H, W) or 3 for (N, C, D, H, W)")
    if kind == "none":
        return None
    if kind == "batch":
        return (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[spatial_dims](channels)
    if kind == "layer":
        return nn.LayerNorm(channels) if spatial_dims == 0 else nn.GroupNorm(1, channels)
    if kind == "instance":
        if spatial_dims == 0:
            raise ConfigError(f"{where} = 'instance' needs spatial positions to normalize over: use it in a CNN, "
                              f"or 'layer'/'batch' for dense layers")
        return nn.GroupNorm(channels, channels)
    if groups < 1 or channels % groups != 0:
        raise ConfigError(f"{groups_key} = {groups} does not divide {channels} channels: use a divisor of "
                          f"{channels}")
    return nn.GroupNorm(groups, channels)


def norm_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The affine parameters (gamma, beta) of every normalization layer in ``model``."""
    return [p for m in model.modules() if isinstance(m, NORM_TYPES) for p in m.parameters(recurse=False)]


def train_only_norm(model: nn.Module) -> tuple[int, int]:
    """Freeze every parameter except normalization gammas and betas (Frankle et al. 2020, "Training BatchNorm and
    only BatchNorm"). Returns (trainable, total) parameter counts.

    Raises:
        ConfigError: the model has no normalization layer.
    """
    keep = {id(p) for p in norm_parameters(model)}
    if not keep:
        raise ConfigError("train.trainable = 'norm' needs normalization layers: set model.norm (e.g. 'batch')")
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return count_trainable(model), sum(p.numel() for p in model.parameters())


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
