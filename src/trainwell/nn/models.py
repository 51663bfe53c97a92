"""Build MLPs and CNNs from a :class:`~trainwell.config.ModelConfig`.

A CNN is a list of blocks then dense layers. A block is a dict with a ``type``; each type has a builder in
:data:`BLOCKS`, so new layer kinds (normalization, dropout, ...) plug in by adding an entry. Every convolution
and pooling layer's geometry is checked with :func:`~trainwell.nn.geometry.conv_output_size`, so an impossible
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
from dataclasses import dataclass

from torch import nn

from trainwell.config_io import suggest
from trainwell.errors import ConfigError, TrainwellError
from trainwell.nn.dropout import DropActivation, Dropout, Uout
from trainwell.nn.geometry import conv_output_size
from trainwell.nn.l0 import L0Conv1d, L0Conv2d, L0Linear
from trainwell.nn.layers import SkipMLP
from trainwell.nn.norm import make_norm
from trainwell.nn.pool import GaussianPool, L2Pool
from trainwell.nn.sdr import SDRLinear

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "linear": nn.Identity,
}


def activation(name: str, drop_keep: float = 0.95) -> nn.Module:
    if name == "drop_activation":
        return DropActivation(keep_prob=drop_keep)
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}: allowed are {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@dataclass(frozen=True)
class LayerOptions:
    """What goes around each hidden layer: normalization (before or after the nonlinearity) and dropout."""

    activation: str = "relu"
    norm: str = "none"
    norm_placement: str = "before"
    norm_groups: int = 32
    dropout_keep: float = 1.0
    dropout_mode: str = "inverted"
    uout_beta: float = 0.1
    dropout_where: str = "all"
    drop_activation_keep: float = 0.95
    l0: bool = False
    sdr: bool = False
    sdr_sigma0: float = 0.05
    geometry: str = "floor"

    @classmethod
    def from_config(cls, cfg) -> LayerOptions:
        return cls(cfg.activation, cfg.norm, cfg.norm_placement, cfg.norm_groups, cfg.dropout_keep,
                   cfg.dropout_mode, cfg.uout_beta, cfg.dropout_where, cfg.drop_activation_keep, cfg.l0, cfg.sdr,
                   cfg.sdr_sigma0, cfg.geometry)

    def linear(self, n_in: int, n_out: int) -> nn.Module:
        """A dense layer: plain, L0-gated or stochastic-delta-rule."""
        if self.l0:
            return L0Linear(n_in, n_out)
        if self.sdr:
            return SDRLinear(n_in, n_out, sigma0=self.sdr_sigma0)
        return nn.Linear(n_in, n_out)

    def conv(self, dims: int, *args) -> nn.Module:
        if self.l0:
            return (L0Conv1d if dims == 1 else L0Conv2d)(*args)
        return (nn.Conv1d if dims == 1 else nn.Conv2d)(*args)

    def noise(self) -> nn.Module | None:
        if self.dropout_mode == "uout":
            return Uout(self.uout_beta) if self.uout_beta > 0 else None
        return Dropout(keep_prob=self.dropout_keep, mode=self.dropout_mode) if self.dropout_keep < 1.0 else None

    def wrap(self, layer: nn.Module, channels: int, spatial_dims: int, last: bool, act: str | None = None):
        """layer -> [norm] -> activation -> [norm] -> [dropout]: the paper puts BN before the nonlinearity."""
        out = [layer]
        norm = make_norm(self.norm, channels, spatial_dims, self.norm_groups)
        if norm is not None and self.norm_placement == "before":
            out.append(norm)
        out.append(activation(act or self.activation, self.drop_activation_keep))
        if norm is not None and self.norm_placement == "after":
            out.append(norm)
        noise = self.noise()
        if noise is not None and (self.dropout_where == "all" or last):
            out.append(noise)
        return out


def build_mlp(input_shape: tuple[int, ...], hidden: list[int], num_classes: int, act: str = "relu",
              options: LayerOptions | None = None) -> nn.Sequential:
    """Flatten -> [Linear -> (norm) -> activation -> (norm) -> (dropout)] per hidden width -> Linear(classes)."""
    opts = options or LayerOptions(activation=act)
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for i, h in enumerate(hidden):
        layers += opts.wrap(opts.linear(width, h), h, 0, last=i == len(hidden) - 1)
        width = h
    layers.append(opts.linear(width, num_classes))
    return nn.Sequential(*layers)


def _image_hint(input_shape: tuple[int, ...]) -> str:
    """For flat features that could be a square image's pixels (64, 784): how a CSV of pixels gets its shape."""
    if len(input_shape) != 1 or input_shape[0] < 16:
        return ""
    side = math.isqrt(input_shape[0])
    if side * side != input_shape[0]:
        return ""
    return (f", or, if they are the pixels of {side}x{side} images, data.options.shape = [{side}, {side}] "
            f"(data.name = 'csv')")


class _Shape:
    """Running (channels, spatial sizes) while blocks are added."""

    def __init__(self, input_shape: tuple[int, ...]):
        if len(input_shape) not in (2, 3):
            raise ConfigError(f"model.kind = 'cnn' needs (C, L) or (C, H, W) inputs, got input shape {input_shape}: "
                              f"set model.kind = 'mlp' for flat features{_image_hint(input_shape)}")
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
        raise ConfigError(f"unknown key {key}.{unknown[0]!r}: {suggest(unknown[0], allowed)}allowed keys are type, "
                          f"{', '.join(allowed)}")
    for name in required:
        if name not in block:
            raise ConfigError(f"{key} needs {name!r}")
    return {**allowed, **{k: v for k, v in block.items() if k != "type"}}


def _conv_block(block: dict, shape: _Shape, opts: LayerOptions, key: str) -> list[nn.Module]:
    a = _block_args(block, key, {"channels": None, "kernel": 3, "stride": 1, "padding": 0,
                                 "activation": opts.activation}, required=("channels",))
    if not isinstance(a["channels"], int) or a["channels"] < 1:
        raise ConfigError(f"{key}.channels = {a['channels']!r} is not allowed: use an integer >= 1")
    kernel, stride, padding = (_pair(a[k], shape.dims, f"{key}.{k}") for k in ("kernel", "stride", "padding"))
    shape.spatial = [conv_output_size(w, f, s, p, where=key, strict=opts.geometry == "strict")
                     for w, f, s, p in zip(shape.spatial, kernel, stride, padding, strict=True)]
    conv = opts.conv(shape.dims, shape.channels, a["channels"], kernel, stride, padding)
    shape.channels = a["channels"]
    return opts.wrap(conv, shape.channels, shape.dims, last=False, act=a["activation"])


def _norm_block(block: dict, shape: _Shape, opts: LayerOptions, key: str) -> list[nn.Module]:
    a = _block_args(block, key, {"kind": "batch", "groups": opts.norm_groups})
    return [make_norm(a["kind"], shape.channels, shape.dims, a["groups"], where=f"{key}.kind",
                      groups_key=f"{key}.groups" if "groups" in block else "model.norm_groups")]


def _dropout_block(block: dict, shape: _Shape, opts: LayerOptions, key: str) -> list[nn.Module]:
    a = _block_args(block, key, {"keep_prob": 0.5, "mode": "inverted"})
    return [Dropout(keep_prob=a["keep_prob"], mode=a["mode"])]


def _uout_block(block: dict, shape: _Shape, opts: LayerOptions, key: str) -> list[nn.Module]:
    a = _block_args(block, key, {"beta": 0.1})
    return [Uout(a["beta"])]


def _pool_block(block: dict, shape: _Shape, opts: LayerOptions, key: str) -> list[nn.Module]:
    a = _block_args(block, key, {"kind": "max", "kernel": 2, "stride": None, "padding": 0, "sigma": 1.0})
    if a["kind"] not in ("max", "avg", "l2", "rms", "gaussian"):
        raise ConfigError(f"{key}.kind = {a['kind']!r} is not allowed: use one of max, avg, l2, rms, gaussian")
    if a["kind"] in ("l2", "rms", "gaussian"):  # square windows only, no padding
        if not isinstance(a["kernel"], int) or not isinstance(a["stride"] or 0, int) or a["padding"]:
            raise ConfigError(f"{key}: kind = {a['kind']!r} takes an integer kernel and stride and no padding")
        stride = a["stride"] or a["kernel"]
        strict = opts.geometry == "strict"
        shape.spatial = [conv_output_size(w, a["kernel"], stride, 0, where=key, strict=strict) for w in shape.spatial]
        if a["kind"] in ("l2", "rms"):
            return [L2Pool(a["kernel"], stride, rms=a["kind"] == "rms")]
        return [GaussianPool(a["kernel"], stride, a["sigma"])]
    kernel = _pair(a["kernel"], shape.dims, f"{key}.kernel")
    stride = _pair(a["stride"] if a["stride"] is not None else a["kernel"], shape.dims, f"{key}.stride")
    padding = _pair(a["padding"], shape.dims, f"{key}.padding")
    shape.spatial = [conv_output_size(w, f, s, p, where=key, strict=opts.geometry == "strict")
                     for w, f, s, p in zip(shape.spatial, kernel, stride, padding, strict=True)]
    pools = {"max": (nn.MaxPool1d, nn.MaxPool2d), "avg": (nn.AvgPool1d, nn.AvgPool2d)}
    return [pools[a["kind"]][shape.dims - 1](kernel, stride, padding)]


BLOCKS: dict[str, Callable[[dict, _Shape, LayerOptions, str], list[nn.Module]]] = {
    "conv": _conv_block,
    "pool": _pool_block,
    "norm": _norm_block,
    "dropout": _dropout_block,
    "uout": _uout_block,
}


def build_cnn(input_shape: tuple[int, ...], blocks: list[dict], dense: list[int], num_classes: int,
              act: str = "relu", options: LayerOptions | None = None) -> nn.Sequential:
    """Blocks (conv/pool/norm/dropout/uout, 1-D or 2-D by the input's rank) -> Flatten -> dense layers -> Linear.

    With ``dropout_where = "last"`` the only dropout is after the last dense layer (or after Flatten when there
    is none), so no BatchNorm ever sees dropped-out inputs.
    """
    opts = options or LayerOptions(activation=act)
    shape = _Shape(tuple(input_shape))
    layers: list[nn.Module] = []
    for i, block in enumerate(blocks):
        key = f"model.blocks[{i}]"
        kind = block.get("type")
        if kind not in BLOCKS:
            raise ConfigError(f"{key}.type = {kind!r} is not allowed: use one of {', '.join(BLOCKS)}")
        try:
            layers += BLOCKS[kind](block, shape, opts, key)
        except TrainwellError:
            raise
        except (ValueError, TypeError) as exc:  # a layer's own argument check: say which block it came from
            raise ConfigError(f"{key}: {exc}") from None
    layers.append(nn.Flatten())
    noise = opts.noise()
    if not dense and noise is not None and opts.dropout_where == "last":
        layers.append(noise)
    layers += build_mlp((shape.channels, *shape.spatial), dense, num_classes, options=opts)[1:]
    return nn.Sequential(*layers)


def build_model(cfg, input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Build the model that ``cfg`` (a ModelConfig) describes for inputs of ``input_shape``."""
    opts = LayerOptions.from_config(cfg)
    if cfg.kind == "mlp":
        mlp = build_mlp(tuple(input_shape), list(cfg.hidden), num_classes, options=opts)
        if cfg.skip_io:
            return nn.Sequential(SkipMLP(mlp, math.prod(input_shape), num_classes))
        return mlp
    if cfg.kind == "cnn":
        return build_cnn(tuple(input_shape), list(cfg.blocks), list(cfg.dense), num_classes, options=opts)
    raise ConfigError(f"model.kind = {cfg.kind!r} is not allowed: use 'mlp' or 'cnn'")
