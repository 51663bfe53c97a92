"""Build MLPs and CNNs from a :class:`~trainwell.config.ModelConfig`.

A CNN is a list of blocks then dense layers. A block is a dict with a ``type``; each type has a builder in
:data:`BLOCKS`, so new layer kinds (normalization, dropout, ...) plug in by adding an entry. Every convolution
and pooling layer's geometry is checked with :func:`~trainwell.cnn.geometry.conv_output_size`, so an impossible
configuration fails before training instead of being silently floored by torch.

Example:
    >>> from trainwell.config import ModelConfig
    >>> m = build_model(ModelConfig(kind="mlp", hidden=[32]), input_shape=(2,), num_classes=3)
    >>> m(__import__("torch").zeros(5, 2)).shape
    torch.Size([5, 3])
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from trainwell.cnn.geometry import conv_output_size
from trainwell.errors import ConfigError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "linear": nn.Identity,
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}: allowed are {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def build_mlp(input_shape: tuple[int, ...], hidden: list[int], num_classes: int, act: str = "relu") -> nn.Sequential:
    """Flatten -> [Linear -> activation] per hidden width -> Linear(num_classes)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), activation(act)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class _Shape:
    """Running (channels, spatial sizes) while blocks are added."""

    def __init__(self, input_shape: tuple[int, ...]):
        if len(input_shape) not in (2, 3):
            raise ConfigError(
                f"model.kind = 'cnn' needs (C, L) or (C, H, W) inputs, got input shape {input_shape}: use an MLP"
            )
        self.channels = input_shape[0]
        self.spatial = list(input_shape[1:])

    @property
    def dims(self) -> int:
        return len(self.spatial)


def _pair(value, dims: int, key: str) -> list[int]:
    values = [value] * dims if isinstance(value, int) else list(value)
    if len(values) != dims or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{key} = {value!r} is not allowed: use an integer or a list of {dims} integers")
    return values


def _block_args(block: dict, key: str, allowed: dict, required: tuple[str, ...] = ()) -> dict:
    unknown = sorted(set(block) - set(allowed) - {"type"})
    if unknown:
        raise ConfigError(f"unknown key {key}.{unknown[0]!r}: allowed keys are type, {', '.join(allowed)}")
    for name in required:
        if name not in block:
            raise ConfigError(f"{key} needs {name!r}")
    return {**allowed, **{k: v for k, v in block.items() if k != "type"}}


def _conv_block(block: dict, shape: _Shape, act: str, key: str) -> list[nn.Module]:
    a = _block_args(block, key, {"channels": None, "kernel": 3, "stride": 1, "padding": 0, "activation": act},
                    required=("channels",))
    if not isinstance(a["channels"], int) or a["channels"] < 1:
        raise ConfigError(f"{key}.channels = {a['channels']!r} is not allowed: use an integer >= 1")
    kernel, stride, padding = (_pair(a[k], shape.dims, f"{key}.{k}") for k in ("kernel", "stride", "padding"))
    shape.spatial = [conv_output_size(w, f, s, p, where=key)
                     for w, f, s, p in zip(shape.spatial, kernel, stride, padding, strict=True)]
    conv = (nn.Conv1d if shape.dims == 1 else nn.Conv2d)(shape.channels, a["channels"], kernel, stride, padding)
    shape.channels = a["channels"]
    return [conv, activation(a["activation"])]


def _pool_block(block: dict, shape: _Shape, act: str, key: str) -> list[nn.Module]:
    a = _block_args(block, key, {"kind": "max", "kernel": 2, "stride": None, "padding": 0})
    kernel = _pair(a["kernel"], shape.dims, f"{key}.kernel")
    stride = _pair(a["stride"] if a["stride"] is not None else a["kernel"], shape.dims, f"{key}.stride")
    padding = _pair(a["padding"], shape.dims, f"{key}.padding")
    shape.spatial = [conv_output_size(w, f, s, p, where=key)
                     for w, f, s, p in zip(shape.spatial, kernel, stride, padding, strict=True)]
    pools = {"max": (nn.MaxPool1d, nn.MaxPool2d), "avg": (nn.AvgPool1d, nn.AvgPool2d)}
    if a["kind"] not in pools:
        raise ConfigError(f"{key}.kind = {a['kind']!r} is not allowed: use one of {', '.join(pools)}")
    return [pools[a["kind"]][shape.dims - 1](kernel, stride, padding)]


BLOCKS: dict[str, Callable[[dict, _Shape, str, str], list[nn.Module]]] = {
    "conv": _conv_block,
    "pool": _pool_block,
}


def build_cnn(input_shape: tuple[int, ...], blocks: list[dict], dense: list[int], num_classes: int,
              act: str = "relu") -> nn.Sequential:
    """Blocks (conv/pool, 1-D or 2-D by the input's rank) -> Flatten -> dense layers -> Linear(num_classes)."""
    shape = _Shape(tuple(input_shape))
    layers: list[nn.Module] = []
    for i, block in enumerate(blocks):
        key = f"model.blocks[{i}]"
        kind = block.get("type")
        if kind not in BLOCKS:
            raise ConfigError(f"{key}.type = {kind!r} is not allowed: use one of {', '.join(BLOCKS)}")
        layers += BLOCKS[kind](block, shape, act, key)
    layers.append(nn.Flatten())
    layers += build_mlp((shape.channels, *shape.spatial), dense, num_classes, act)[1:]
    return nn.Sequential(*layers)


def build_model(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Build the model that ``cfg`` (a ModelConfig) describes for inputs of ``input_shape``."""
    if cfg.kind == "mlp":
        return build_mlp(tuple(input_shape), list(cfg.hidden), num_classes, cfg.activation)
    if cfg.kind == "cnn":
        return build_cnn(tuple(input_shape), list(cfg.blocks), list(cfg.dense), num_classes, cfg.activation)
    raise ConfigError(f"model.kind = {cfg.kind!r} is not allowed: use 'mlp' or 'cnn'")
