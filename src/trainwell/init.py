"""Weight initializers from the lecture, mirroring ``torch.nn.init``: in place, under ``no_grad``, return the tensor.

- zeros: every hidden unit computes the same function (symmetry is never broken).
- small normal N(0, 0.01^2): activations shrink layer after layer in deep nets (cs231n).
- "standard" U[-1/sqrt(n), 1/sqrt(n)], n = fan_in: n Var(w) = 1/3 (LeCun et al. 1998; torch's Linear default).
- Xavier/Glorot (Glorot & Bengio 2010): Var(w) = 2 / (fan_in + fan_out).
- He/Kaiming (He et al. 2015): Var(w) = 2 / fan_in for ReLU (fan_out preserves the backward variance).
For a convolution, fan_in = in_channels * kernel size (kh * kw).
torch's names work too (``kaiming_normal``, ``kaiming_uniform``, ``xavier_uniform_``, ``normal``, ``uniform``,
``zeros``); :func:`apply` initializes a whole model and treats its declared output layer as a linear unit.

Example:
    >>> import torch
    >>> w = he_normal_(torch.empty(256, 128), generator=torch.Generator().manual_seed(0))
    >>> round(float(w.std()) * (128 ** 0.5), 1)  # std = sqrt(2 / fan_in)
    1.4
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch
from torch import nn

from trainwell.regularize import SkippedLayersWarning, warn_skipped

SCHEMES = ("default", "zeros", "small_normal", "standard", "xavier_uniform", "xavier_normal", "he_normal",
           "he_uniform", "lecun_normal", "lecun_uniform", "normal", "uniform")
# torch.nn.init's names for the same schemes (a trailing "_" is accepted too: "kaiming_normal_")
ALIASES = {"kaiming_normal": "he_normal", "kaiming_uniform": "he_uniform", "glorot_uniform": "xavier_uniform",
           "glorot_normal": "xavier_normal"}


def fans(tensor: torch.Tensor) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)``: for weights (out, in, *kernel), fan_in = in * prod(kernel)."""
    if tensor.dim() < 2:
        raise ValueError(f"fan_in/fan_out need a weight with >= 2 dims, got shape {tuple(tensor.shape)}")
    receptive = math.prod(tensor.shape[2:]) if tensor.dim() > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


MODES = ("fan_in", "fan_out")


def _check_mode(mode: str) -> None:
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode={mode!r} is not allowed: use 'fan_in' or 'fan_out'")


def _check_std(std) -> float:
    """``std`` as a float if it is a finite number >= 0 (the normal/uniform schemes' standard deviation)."""
    if isinstance(std, bool) or not isinstance(std, numbers.Real):
        raise TypeError(f"std={std!r} is not allowed: use a number >= 0 (the standard deviation of the normal and "
                        f"uniform schemes, e.g. 0.01)")
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"std={std} is not allowed: use a finite number >= 0 (the standard deviation of the normal "
                         f"and uniform schemes, e.g. 0.01)")
    return float(std)


def _fan(tensor: torch.Tensor, mode: str) -> int:
    _check_mode(mode)
    fan_in, fan_out = fans(tensor)
    return fan_in if mode == "fan_in" else fan_out


@torch.no_grad()
def zeros_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill with zeros (the symmetric, never-learning init the lecture warns about)."""
    return tensor.zero_()


@torch.no_grad()
def small_normal_(tensor: torch.Tensor, std: float = 0.01, generator: torch.Generator | None = None):
    """Fill from N(0, std^2), std = 0.01 by default (cs231n's "small random numbers")."""
    return tensor.normal_(0.0, _check_std(std), generator=generator)


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


def canonical(scheme: str) -> str:
    """Return trainwell's name for ``scheme``, which may also be torch's (``kaiming_normal``, ``xavier_uniform_``).

    Raises:
        ValueError: an unknown name; the message lists the allowed ones.
    """
    if not isinstance(scheme, str):
        raise TypeError(f"scheme={scheme!r} is not allowed: use a name such as 'he_normal' or 'kaiming_normal'")
    name = scheme[:-1] if scheme.endswith("_") else scheme
    name = ALIASES.get(name, name)
    if name not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}: allowed are {', '.join(SCHEMES)} "
                         f"(or torch's {', '.join(ALIASES)})")
    return name


def init_tensor_(tensor: torch.Tensor, scheme: str, *, mode: str = "fan_in", std: float = 0.01,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Initialize one weight tensor with the scheme named ``scheme`` (see :func:`apply`; not "default").

    ``normal`` is N(0, std^2) and ``uniform`` is U[-sqrt(3) std, sqrt(3) std] (the same variance), with
    ``std`` = 0.01 by default; torch's ``normal_``/``uniform_`` defaults (std 1, U[0, 1]) make no sense for a
    weight matrix.
    """
    scheme = canonical(scheme)
    _check_mode(mode)
    std = _check_std(std)
    if scheme == "normal":
        return small_normal_(tensor, std=std, generator=generator)
    if scheme == "uniform":
        with torch.no_grad():
            return tensor.uniform_(-math.sqrt(3.0) * std, math.sqrt(3.0) * std, generator=generator)
    if scheme == "lecun_normal":
        return lecun_normal_(tensor, generator=generator)
    if scheme == "lecun_uniform":
        return lecun_uniform_(tensor, generator=generator)
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
    raise ValueError(f"scheme={scheme!r} initializes no tensor: it keeps torch's own init (use it with apply)")


_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_RELU_SCHEMES = {"he_normal": lecun_normal_, "he_uniform": lecun_uniform_}


def output_module(model: nn.Module, output_layer, weighted: list[nn.Module]) -> list[nn.Module]:
    """The output layers: those declared (a module, its name, or a list of them for a model with several heads),
    else the last weighted layer of an ``nn.Sequential`` (or of a model with one); ``[]`` when unknown."""
    if isinstance(output_layer, (list, tuple)):
        if not output_layer:
            raise ValueError("output_layer=[] is not allowed: name the layer(s) that produce the model's outputs")
        found = [m for layer in output_layer for m in output_module(model, layer, weighted)]
        return list({id(m): m for m in found}.values())
    if isinstance(output_layer, str):
        modules = dict(model.named_modules())
        if output_layer not in modules:
            names = [n for n, m in model.named_modules() if isinstance(m, _WEIGHTED)]
            raise ValueError(f"output_layer={output_layer!r} is not a submodule of {type(model).__name__}: "
                             f"use one of {', '.join(names)}")
        output_layer = modules[output_layer]
    if isinstance(output_layer, nn.Module):
        if not any(output_layer is m for m in model.modules()):
            raise ValueError(f"output_layer={type(output_layer).__name__}(...) is not a submodule of the model")
        inside = [m for m in output_layer.modules() if isinstance(m, _WEIGHTED)]
        if len(inside) != 1:
            raise ValueError(f"output_layer={type(output_layer).__name__}(...) holds {len(inside)} Linear/Conv "
                             f"layers: name the single layer that produces the output (a list names several heads)")
        return inside
    if output_layer is not None:
        raise TypeError(f"output_layer={output_layer!r} is not allowed: pass the module or its name "
                        f"(a key of model.named_modules()), or a list of them for several output heads")
    if isinstance(model, nn.Sequential) or len(weighted) == 1:
        return weighted[-1:]  # registration order is the order of computation
    return []


@torch.no_grad()
def apply(model: nn.Module, scheme: str, bias: float = 0.0, *, mode: str = "fan_in", std: float = 0.01,
          generator: torch.Generator | None = None, output_layer: nn.Module | str | list | None = None,
          output_init: str = "linear", frozen: bool = False) -> nn.Module:
    """Initialize every Linear/Conv weight of ``model`` with ``scheme`` and set their biases to ``bias``.

    Args:
        model: any ``nn.Module``; its ``nn.Linear`` and ``nn.Conv1d/2d/3d`` layers are initialized.
        scheme: ``default`` (keep torch's own init: nothing is touched), ``zeros``, ``small_normal`` / ``normal``
            (N(0, std^2)), ``uniform`` (U[-sqrt(3) std, sqrt(3) std]), ``standard``, ``xavier_uniform``,
            ``xavier_normal``, ``he_normal``, ``he_uniform``, ``lecun_normal``, ``lecun_uniform``; torch's names
            ``kaiming_normal``, ``kaiming_uniform``, ``xavier_*_`` (with or without the trailing ``_``) too.
        bias: value for every bias (0.01 starts ReLU units in their active region, the lecture's advice).
        mode: ``fan_in`` or ``fan_out`` for the He schemes.
        output_layer: the layer that produces the model's output, as the module itself or its name in
            ``model.named_modules()`` (e.g. ``"head"``), or a list of them for a model with several output heads
            (``["heads.cls", "heads.reg"]``). Without it, an ``nn.Sequential``'s last Linear/Conv is
            the output layer (its registration order is its order of computation); for any other model with
            several layers the output layer is unknown, and a scheme that treats it specially raises.
        output_init: ``linear`` (default): He's factor 2 compensates for the ReLU after a layer, and the output
            layer feeds none (it feeds the softmax), so the He schemes give it the linear-unit variance
            1 / fan_in (LeCun) instead, which keeps the initial loss near ln C. ``same``: every layer alike.
            (The config key ``init.output_layer`` sets this.)
        frozen: also initialize layers whose weight is frozen (``requires_grad=False``). By default they keep
            their weights - a pretrained backbone being fine-tuned - and a warning names them.

    Returns:
        The model, for chaining. Layers with weight matrices that are not Linear/Conv (``nn.LSTM``,
        ``nn.Embedding``, ...) keep their weights, with a :class:`~trainwell.regularize.SkippedLayersWarning`
        naming them.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` (None, ``model.parameters()``); ``bias`` or ``std`` is not a
            number.
        ValueError: unknown scheme, mode (checked whatever the scheme) or output_init; a non-finite ``bias``; a
            negative or non-finite ``std``; an output layer that is not in the model; a He scheme with
            ``output_init="linear"`` on a non-Sequential model with Linear/Conv layers and no ``output_layer``.

    Warns:
        SkippedLayersWarning: layers with weights that are not Linear/Conv (named), or a model without any
            Linear/Conv layer (nothing was initialized), whatever the scheme; frozen layers left as they were.

    Example:
        >>> import torch
        >>> class Net(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.head = torch.nn.Linear(64, 10)  # registered first, computed last
        ...         self.body = torch.nn.Linear(32, 64)
        ...     def forward(self, x):
        ...         return self.head(torch.relu(self.body(x)))
        >>> net = apply(Net(), "kaiming_normal", output_layer="head")
    """
    if not isinstance(model, nn.Module):  # None, model.parameters(), a list of layers: one line, not AttributeError
        simple = model is None or isinstance(model, (str, numbers.Number))
        shown = repr(model) if simple else f"<{type(model).__name__}>"
        raise TypeError(f"model={shown} is not allowed: use an nn.Module (init.apply(model, scheme) initializes its "
                        f"Linear/Conv layers; wrap a list of layers in nn.Sequential)")
    scheme = canonical(scheme)
    if isinstance(bias, bool) or not isinstance(bias, numbers.Real):
        raise TypeError(f"bias={bias!r} is not allowed: use a number (the value every Linear/Conv bias is set to, "
                        f"e.g. 0.0 or 0.01)")
    if not math.isfinite(bias):
        raise ValueError(f"bias={bias} is not allowed: use a finite number (e.g. 0.0 or 0.01)")
    if output_init not in ("linear", "same"):
        raise ValueError(f"output_init={output_init!r} is not allowed: use 'linear' or 'same'")
    _check_mode(mode)  # refused even where no layer reads it: a typo would otherwise pass unseen
    std = _check_std(std)
    if scheme == "default":
        return model
    weighted = [m for m in model.modules() if isinstance(m, _WEIGHTED)]
    outs = output_module(model, output_layer, weighted)
    special = output_init == "linear" and scheme in _RELU_SCHEMES
    if not weighted:  # nothing to initialize, and so no output layer to ask about
        if not warn_skipped(model, _WEIGHTED, f"init.apply({scheme!r})", "initialize them yourself (torch.nn.init "
                            "on their parameters)"):
            warnings.warn(f"init.apply({scheme!r}) acts on Linear/Conv layers only and {type(model).__name__} has "
                          f"none: nothing was initialized", SkippedLayersWarning, stacklevel=3)
        return model
    if special and not outs:
        names = [n for n, m in model.named_modules() if isinstance(m, _WEIGHTED)]
        raise ValueError(
            f"init.apply cannot tell which layer of {type(model).__name__} is its output layer (only an "
            f"nn.Sequential's order says so): pass output_layer= one of {', '.join(names)} (or the module), "
            f"or output_init='same' to give every layer {scheme}")
    kept = [] if frozen else [n for n, m in model.named_modules() if isinstance(m, _WEIGHTED)
                              and not m.weight.requires_grad]
    if kept:
        warnings.warn(f"init.apply({scheme!r}) left these frozen layers (requires_grad=False) as they were: "
                      f"{', '.join(kept)}; pass frozen=True to initialize them too", SkippedLayersWarning,
                      stacklevel=2)
    for module in weighted:
        if not (frozen or module.weight.requires_grad):
            continue
        if special and any(module is o for o in outs):
            _RELU_SCHEMES[scheme](module.weight, generator=generator)
        else:
            init_tensor_(module.weight, scheme, mode=mode, std=std, generator=generator)
        if module.bias is not None:
            module.bias.fill_(bias)
    warn_skipped(model, _WEIGHTED, f"init.apply({scheme!r})", "initialize them yourself (torch.nn.init on "
                 "their parameters)")
    return model
