"""Magnitude pruning masks (Han et al. 2015; Frankle & Carbin 2019, "The lottery ticket hypothesis").

Masks are data: ``dict[module name -> 0/1 tensor]`` shaped like that module's weight. They are applied with
``torch.nn.utils.prune`` (the weight becomes ``weight_orig * weight_mask``), so pruned weights stay exactly zero
through training and pruning is reversible until :func:`remove`.

- :func:`magnitude_masks`: prune ``rate`` of the *surviving* weights of each layer by |w| (the output layer at half
  the rate by default, as in the paper), or with one global threshold. The output layer is the one named by
  ``output_layer=`` or an ``nn.Sequential``'s last Linear/Conv (as in :func:`trainwell.init.apply`).
- :func:`random_masks`: the control: random positions at the same per-layer density.
- :func:`sparsity_report`: per-layer and total density.
- :func:`rewind`: reset a pruned model's survivors to θ₀ (or the weights at step K), keeping its masks.

After k rounds at rate p the density of a hidden layer is (1 - p)^k (0.8^7 = 20.97%).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from trainwell.errors import ParameterError
from trainwell.init import output_module
from trainwell.regularize import warn_skipped

_PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prunable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _PRUNABLE)]


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The masks now on ``model`` (all ones for unpruned layers)."""
    return {name: (m.weight_mask.detach().clone() if hasattr(m, "weight_mask") else torch.ones_like(m.weight))
            for name, m in prunable(model)}


def _check_rate(name: str, value) -> float:
    """``value`` as a float if it is a number in [0, 1) (a NumPy scalar or a 0-dim tensor too); else one line
    naming ``name``."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool and not value.is_complex():
        value = value.item()
    if isinstance(value, torch.Tensor):  # several numbers: its repr would take many lines
        raise ValueError(f"{name}=<tensor of shape {tuple(value.shape)}> is not allowed: use a number in [0, 1)")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        got = f", got {type(value).__name__}" if value is not None else ""
        raise ParameterError(name, value, f"is not allowed: use a number in [0, 1) (a fraction, e.g. 0.2){got}")
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        shown = value if type(value) in (int, float) else float(value)  # not np.float32(20.0)
        raise ParameterError(name, shown, "is not allowed: use a number in [0, 1)")
    return float(value)


def _prune_rate(scores: torch.Tensor, mask: torch.Tensor, rate: float) -> torch.Tensor:
    alive = mask.bool()
    k = int(round(rate * int(alive.sum())))
    new = mask.clone()
    if k == 0:
        return new
    values = scores[alive]
    threshold_idx = torch.topk(values, k, largest=False).indices
    flat_alive = alive.reshape(-1).nonzero().flatten()
    new.reshape(-1)[flat_alive[threshold_idx]] = 0.0
    return new


@torch.no_grad()
def magnitude_masks(model: nn.Module, rate: float = 0.2, output_rate: float | None = None,
                    masks: dict[str, torch.Tensor] | None = None, scope: str = "layer", *,
                    output_layer: nn.Module | str | list | None = None) -> dict[str, torch.Tensor]:
    """New masks that remove ``rate`` of the surviving weights with the smallest |w|; the model is not changed.

    Args:
        rate: fraction of surviving weights to prune per round (0.2 in the paper).
        output_rate: the output layer's rate with ``scope="layer"`` (default ``rate / 2``).
        masks: the current masks (default: those on the model).
        scope: ``"layer"`` (each layer loses ``rate`` of its own survivors, the paper's rule) or ``"global"``
            (one magnitude threshold across all layers; layers end up with different densities).
        output_layer: the layer that produces the model's output, as the module itself or its name in
            ``model.named_modules()`` (e.g. ``"head"``), or a list of them (several output heads), as in
            :func:`trainwell.init.apply`. Without it, an
            ``nn.Sequential``'s last Linear/Conv is the output layer (its registration order is its order of
            computation); for any other model with several layers the output layer is unknown, and a different
            ``output_rate`` raises instead of guessing.

    Only ``nn.Linear`` and ``nn.Conv1d/2d/3d`` weights are pruned; other layers with weight matrices
    (``nn.LSTM``, ``nn.Embedding``, ...) keep all their weights, with a
    :class:`~trainwell.regularize.SkippedLayersWarning` naming them; a model without a Linear/Conv layer gets no
    masks (``{}``) in either scope.

    Raises:
        ParameterError: ``rate`` or ``output_rate`` that is not a number in [0, 1) (a string, None or a bool is
            refused by name too; a NumPy scalar or 0-dim tensor counts as its number), or an unknown ``scope``.
        ValueError: an ``output_layer`` that is not in the model; a model other than an ``nn.Sequential``, with
            several layers, pruned per layer at a different output rate without ``output_layer``.
    """
    rate = _check_rate("rate", rate)
    if output_rate is not None:
        output_rate = _check_rate("output_rate", output_rate)
    if scope not in ("layer", "global"):
        raise ParameterError("scope", scope, "is not allowed: use 'layer' or 'global'")
    layers = prunable(model)
    output_rate = rate / 2 if output_rate is None else output_rate
    outs = output_module(model, output_layer, [m for _, m in layers])
    if scope == "layer" and output_rate != rate and not outs and layers:
        names = ", ".join(name for name, _ in layers)
        raise ValueError(
            f"magnitude_masks cannot tell which layer of {type(model).__name__} is its output layer (only an "
            f"nn.Sequential's order says so): pass output_layer= one of {names} (or the module), or "
            f"output_rate={rate} to prune every layer alike")
    masks = masks or current_masks(model)
    warn_skipped(model, _PRUNABLE, "magnitude_masks", "they are not pruned", in_place=False)  # a mask: one module
    if scope == "global" and layers:  # no prunable layer: no masks, as per layer (the warning names the rest)
        scores = torch.cat([m.weight.detach().abs().reshape(-1) for _, m in layers])
        alive = torch.cat([masks[name].reshape(-1) for name, _ in layers])
        merged = _prune_rate(scores, alive, rate)
        result, start = {}, 0
        for name, m in layers:
            n = m.weight.numel()
            result[name] = merged[start : start + n].reshape(m.weight.shape)
            start += n
        return result
    return {name: _prune_rate(m.weight.detach().abs(), masks[name],
                              output_rate if any(m is o for o in outs) else rate)
            for name, m in layers}


def random_masks(model: nn.Module, like: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Masks with the same number of survivors per layer as ``like``, at random positions."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, mask in like.items():
        keep = int(mask.sum())
        new = torch.zeros(mask.numel())
        new[torch.randperm(mask.numel(), generator=g)[:keep]] = 1.0
        out[name] = new.reshape(mask.shape)
    return out


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Attach ``masks`` to the model's layers (weight = weight_orig * mask from now on)."""
    modules = dict(prunable(model))
    unknown = sorted(set(masks) - set(modules))
    if unknown:
        raise ValueError(f"mask for unknown layer {unknown[0]!r}: the model's prunable layers are "
                         f"{', '.join(modules)}")
    for name, mask in masks.items():
        module = modules[name]
        if mask.shape != module.weight.shape:
            raise ValueError(f"mask for layer {name!r} has shape {tuple(mask.shape)}, its weight "
                             f"{tuple(module.weight.shape)}")
        if hasattr(module, "weight_mask"):
            torch_prune.remove(module, "weight")
        torch_prune.custom_from_mask(module, "weight", mask.to(module.weight.device))
    return model


@torch.no_grad()
def rewind(model: nn.Module, state: dict, masks: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Reset a pruned model to the weights ``state`` (θ₀, or the weights at step K for late rewinding: a plain
    ``state_dict`` taken before pruning, or one of a pruned model) and keep it pruned by ``masks`` (default: the
    masks on the model): the survivors take their values in ``state``, the pruned weights stay 0. This is the
    lottery ticket's reset (Frankle & Carbin 2019), which ``model.load_state_dict(theta0)`` cannot do on a pruned
    model (its weights are then ``weight_orig`` and ``weight_mask``)."""
    masks = current_masks(model) if masks is None else masks
    plain = _plain_state(state)
    _check_same_architecture(_plain_state(model.state_dict()), plain)
    remove(model)
    model.load_state_dict(plain)
    return apply_masks(model, masks)


def _plain_state(state: dict) -> dict:
    """``state`` as an unpruned model's ``state_dict``: ``weight_orig`` read as ``weight``, masks left out."""
    return {key.removesuffix("_orig") if key.endswith(".weight_orig") else key: value
            for key, value in state.items() if not key.endswith(".weight_mask")}


def _check_same_architecture(model_state: dict, state: dict) -> None:
    """Refuse, before the model is touched, a ``state`` of another architecture: the first parameter or buffer
    it lacks, has in excess, or holds in another shape, in one line."""
    def shape(v):
        return tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__

    fix = ("rewind takes the state of this same model (theta0 = copy.deepcopy(model.state_dict()) before "
           "training)")
    for key, value in model_state.items():
        if key not in state:
            raise ValueError(f"rewind: the state has no {key!r}, which the model has (shape {shape(value)}): {fix}")
        if shape(state[key]) != shape(value):
            raise ValueError(f"rewind: the state's {key!r} has shape {shape(state[key])} but the model's is "
                             f"{shape(value)}: {fix}")
    extra = [key for key in state if key not in model_state]
    if extra:
        raise ValueError(f"rewind: the state has {extra[0]!r} (shape {shape(state[extra[0]])}), which the model "
                         f"does not have{f' (and {len(extra) - 1} more)' if len(extra) > 1 else ''}: {fix}")


def remove(model: nn.Module) -> nn.Module:
    """Make pruning permanent: plain weights with zeros, no mask buffers."""
    for _, module in prunable(model):
        if hasattr(module, "weight_mask"):
            torch_prune.remove(module, "weight")
    return model


def sparsity_report(masks: dict[str, torch.Tensor]) -> dict:
    """Per-layer density and the total density of ``masks``."""
    layers = {name: {"kept": int(m.sum()), "total": m.numel(), "density": float(m.mean())} for name, m in masks.items()}
    kept, total = sum(v["kept"] for v in layers.values()), sum(v["total"] for v in layers.values())
    return {"layers": layers, "kept": kept, "total": total, "density": kept / max(total, 1)}
