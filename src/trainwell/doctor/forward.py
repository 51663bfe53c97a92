"""How the pre-flight checks run a model: in the mode of its first training step, with the weighted
layers' inputs and outputs recorded, the layer that scales the signal most named, and accuracy when the targets
are classes."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.inputs import Inputs, call, fields
from trainwell.doctor.loss_kinds import reads_class_scores
from trainwell.train.uncompiled import uncompiled

_KINKS = (nn.ReLU, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d, nn.Hardtanh, nn.ReLU6)


_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.GELU, nn.ELU, nn.Hardtanh, nn.SiLU,
                nn.Softplus, nn.Mish)


_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def input_scale(x: torch.Tensor | Inputs) -> str | None:
    """A sentence when floating-point inputs are far from unit scale (raw 0..255 pixels, unscaled features), the
    usual cause of a huge initial loss or saturated first layer; None when they are fine or not floating point.
    With several inputs each floating-point one is read, and the sentence names the first that is off."""
    for name, t in fields(x):
        if not t.is_floating_point() or t.numel() < 2:
            continue
        std, top = float(t.float().std()), float(t.float().abs().max())
        if math.isfinite(std) and (std > 5.0 or top > 50.0):
            which = "the inputs are" if isinstance(x, torch.Tensor) else f"the input {name} is"
            return (f"{which} far from unit scale (std {std:.3g}, max |x| {top:.3g}): normalize them (e.g. "
                    f"divide 0..255 pixels by 255, or standardize each feature with the training mean and std)")
    return None


def _training_forward(model: nn.Module) -> nn.Module:
    """Put ``model`` in the mode its first training step sees, minus the noise: dropout (and every other module)
    in eval mode, BatchNorm normalizing with the batch's statistics as in training (at init its running
    statistics are 0 and 1, which no training step uses). Deterministic for a given batch. Returns the model."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    return model


def samples_in_forward(model: nn.Module, x: torch.Tensor | Inputs) -> bool:
    """Whether the model's training-mode forward draws noise of its own: two forwards of the same input on a copy,
    its dropout modules off, differ (a VAE's reparameterized sample ``mu + std * randn``, noise injection, a
    functional dropout). Its outputs are then tied to each other through the noise: no free output per example
    is a floor it can reach. The user's model and RNG are untouched."""
    m = copy.deepcopy(model).train()
    for mod in m.modules():
        if isinstance(mod, nn.modules.dropout._DropoutNd):
            mod.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]), uncompiled(m):
        first, again = O.leaves(call(m, x)), O.leaves(call(m, x))
    return any(a.shape != b.shape or not torch.allclose(a, b, rtol=1e-3, atol=1e-6, equal_nan=True)
               for a, b in zip(first, again, strict=False) if a.is_floating_point())


def hooked_forward(model: nn.Module, x: torch.Tensor | Inputs, types: tuple[type, ...], record) -> None:
    """One forward pass of ``x`` without gradients, calling ``record(name, input, output)`` for every module of
    ``types`` (``input`` is its first positional argument, None if it has none); the hooks are removed
    afterwards, also on an exception."""
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: record(name, args[0] if args else None, out))
             for name, m in model.named_modules() if isinstance(m, types)]
    try:
        with torch.no_grad(), uncompiled(model):  # a compiled forward would not call hooks added after it
            call(model, x)
    finally:
        for h in hooks:
            h.remove()


def _outputs(model: nn.Module, x: torch.Tensor | Inputs) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, input, output) of every Linear/Conv layer on one forward pass."""
    seen = []
    hooked_forward(model, x, _WEIGHTED, lambda name, inp, out: seen.append((name, inp, out)))
    return seen


def trainable_layer(model: nn.Module, name: str) -> bool:
    """Whether the layer ``name`` has a parameter of its own that trains (a frozen, pretrained layer has none)."""
    return any(p.requires_grad for p in model.get_submodule(name).parameters(recurse=False))


def _suspect_layer(model: nn.Module, x: torch.Tensor | Inputs, trainable: bool = False) -> str:
    """The weighted layer whose output std / input std ratio is furthest from 1 (in log scale); ``trainable``:
    among the layers that train only (the init of a frozen one is not the user's to change)."""
    scale = input_scale(x)
    if scale is not None:
        return scale
    rows = [(name, float(out.std() / inp.std().clamp_min(1e-12))) for name, inp, out in _outputs(model, x)
            if isinstance(out, torch.Tensor) and isinstance(inp, torch.Tensor) and inp.is_floating_point()
            and out.numel() > 1 and inp.numel() > 1 and (not trainable or trainable_layer(model, name))]
    if not rows:
        return "no trainable Linear/Conv layer found" if trainable else "no Linear/Conv layer found"
    name, ratio = max(rows, key=lambda r: abs(math.log(max(r[1], 1e-12))))
    return f"layer '{name}' scales the signal std by {ratio:.3g}"


_ATTENTION = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.TransformerEncoder,
              nn.TransformerDecoder, nn.Transformer)


def _finite(value) -> bool:
    """Whether every floating-point tensor in ``value`` (a tensor, or a tuple/list/dict of them) is finite."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, tuple | list) else [value]
    return all(bool(torch.isfinite(t).all()) for t in items if isinstance(t, torch.Tensor) and t.is_floating_point())


def first_nonfinite(model: nn.Module, x: torch.Tensor | Inputs) -> str | None:
    """The module (in the order modules finish their forward) whose output is the first to hold NaN/Inf while
    its input was finite, as a sentence; None when every module's output is finite (or the inputs are not).
    An attention whose every key is masked (a padding mask inverted: ``True`` means *ignore* in torch) softmaxes
    a row of -inf into NaN, and is named as such."""
    if not all(_finite(t) for _, t in fields(x)):
        return None
    found: list[tuple[str, nn.Module]] = []
    modules = dict(model.named_modules())

    def record(name, inp, out):
        if not found and (inp is None or _finite(inp)) and not _finite(out):
            found.append((name, modules[name]))

    try:
        hooked_forward(model, x, (nn.Module,), record)
    except Exception:  # noqa: BLE001 - a model that raises is reported by the check that ran it
        return None
    if not found:
        # hooks turn off torch's fused Transformer path (eval mode, no gradients): a NaN it alone gives is its own
        fused = [n for n, m in modules.items() if isinstance(m, _ATTENTION)]
        if not fused:
            return None
        return (f"the outputs are finite when '{fused[0]}' runs torch's unfused Transformer path and NaN in its "
                "fused path (eval mode, no gradients), which gives NaN for a row whose every key is masked: is the "
                "key padding mask inverted? torch's src_key_padding_mask / key_padding_mask mark with True what to "
                "ignore")
    name, module = found[0]
    where = f"'{name or type(module).__name__}' ({type(module).__name__}) is the first module to output NaN/Inf " \
            "from finite inputs"
    if isinstance(module, _ATTENTION):
        return where + ": a row whose every key is masked gives NaN (softmax of -inf); is the key padding mask " \
                       "inverted? torch's src_key_padding_mask / key_padding_mask mark with True what to ignore"
    return where + (": a softmax over a row that is all -inf (every attention key masked), a log of 0, a division "
                    "by 0, a sqrt of a negative number, or an overflow in it")


def _accuracy(out, y: torch.Tensor, loss_fn=None) -> float | None:
    """Classification accuracy when the targets are class indices (or 0/1 for one logit); None for regression,
    and None when ``loss_fn`` does not read the outputs as class scores (an embedding under a triplet loss, an
    ordinal model's cumulative logits: :func:`~trainwell.doctor.loss_kinds.reads_class_scores`). ``out`` may be
    any output structure (its logits are used); targets outside [0, C) (``ignore_index``) are not counted;
    (B, T, C) scores with (B, T) targets are read per position."""
    if not isinstance(y, torch.Tensor) or loss_fn is not None and not reads_class_scores(loss_fn, out, y):
        return None  # several targets (a tuple or dict): which one holds the class labels is not known
    out = O.logits(out)
    if out is None:
        return None
    if not y.is_floating_point() and out.dim() >= 2 and out.shape[-1] > 1 and (
            out.dim() == 2 and y.dim() == 1 or out.shape[:-1] == y.shape):
        pred = out.argmax(-1)
        keep = (y >= 0) & (y < out.shape[-1])
        return float((pred == y)[keep].float().mean()) if bool(keep.any()) else None
    if out.shape == y.shape and out.dim() == 2 and out.shape[1] > 1 and y.is_floating_point() and \
            bool((y >= 0).all()) and bool(((y.sum(1) - 1).abs() < 1e-4).all()):
        # class probabilities per row (one-hot, label-smoothed or mixed targets for cross-entropy): the class is
        # the row's most probable one, where it has a majority
        keep = y.max(1).values > 0.5
        return float((out.argmax(1) == y.argmax(1))[keep].float().mean()) if bool(keep.any()) else None
    if out.shape == y.shape and y.is_floating_point() and bool(((y == 0) | (y == 1)).all()):
        return float(((out > 0).to(y.dtype) == y).float().mean())  # binary targets with logits
    return None
