"""Pre-flight check: ReLU units that no example of the batch activates at initialization ("dead" units).

A ReLU unit whose input is negative for every example outputs 0 and passes no gradient back, so its incoming
weights never change (cs231n, "Commonly used activation functions": as much as 40% of a network can end up dead,
and a large negative bias or a bad initialization kills units from the start). Read on one forward pass in the
mode of the first training step; a unit is one output feature of an ``nn.ReLU`` / ``nn.ReLU6`` (a feature of a
dense layer; a channel of an image or volume feature map (N, C, H, W) or (N, C, D, H, W), whose filter shares its
weights over the positions and learns wherever it fires: one that is off at some positions for every example, a
border or a region where the data has no structure, still learns; so is a channel of a sequence's (N, C, L) map fed
by a 1-D convolution, a temporal conv net's), dead when it is 0 for every example; also of an
``F.relu`` / ``torch.relu`` call in a module of the user's own, named after the layer that feeds it
(:mod:`~trainwell.doctor.functional_activations`).

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> with torch.no_grad(): _ = model[0].bias.fill_(-100.0)  # every pre-activation negative
    >>> dead_units(model, torch.randn(32, 4)).status
    'fail'
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.advice_voice import bias_fix, init_fix
from trainwell.doctor.forward import _training_forward, hooked_forward
from trainwell.doctor.functional_activations import _FEEDERS, FunctionalActivations, calls_functions
from trainwell.doctor.inputs import Inputs
from trainwell.doctor.layer_labels import layer_label
from trainwell.doctor.silent_branch_units import constant_feeder, silent_branch_advice, zero_scaled_norms
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import module_modes, restore_modes

_RECTIFIERS = (nn.ReLU, nn.ReLU6)  # exact zeros below the kink (LeakyReLU, GELU, ELU pass a gradient there)
#: torch's layers that apply their activation as a function inside their own forward (not read)
_TRANSFORMER_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def unit_peaks(out: torch.Tensor, channels: int | None = None) -> torch.Tensor:
    """Each unit's largest output over the batch ``out`` (examples first): per feature of a (N, F) or (N, ...)
    output, per channel of an (N, C, H, W) or (N, C, D, H, W) feature map (over its positions too), and per channel
    of an (N, C, L) map when ``channels`` (the output channels of the 1-D convolution that fed it, see
    :func:`conv1d_channels`) is C."""
    a = out.detach()
    if a.dim() in (4, 5) or (a.dim() == 3 and channels is not None and a.shape[1] == channels):
        return a.transpose(0, 1).reshape(a.shape[1], -1).amax(1)
    return a.reshape(a.shape[0], -1).amax(0)


def conv1d_channels(feeder: nn.Module | None) -> int | None:
    """The output channels of ``feeder`` when it is a 1-D convolution (its output is an (N, C, L) map of C
    channels), else None: a 3-D output after a Linear is (N, T, F) or any other layout, read per position."""
    return feeder.out_channels if isinstance(feeder, (nn.Conv1d, nn.ConvTranspose1d)) else None


def dead_fractions(model: nn.Module, x: torch.Tensor | Inputs) -> list[tuple[str, float, str]]:
    """(layer name, fraction of its units that are 0 for every example of ``x``, the layer as a report names it:
    :func:`~trainwell.doctor.layer_labels.layer_label`) for every ReLU layer, in order of the forward pass; the
    model's modes are restored."""
    found: list[tuple[str, float, str]] = []
    modules = dict(model.named_modules())
    feeder: list[nn.Module | None] = [None]  # the weighted layer that ran last (a Conv1d makes (N, C, L) maps)

    def keep(name: str, _inp, out) -> None:
        if isinstance(modules.get(name), _FEEDERS):
            feeder[0] = modules[name]
        elif isinstance(out, torch.Tensor) and out.is_floating_point() and out.dim() >= 2 and len(out) > 0:
            found.append((name, float((unit_peaks(out, conv1d_channels(feeder[0])) <= 0).float().mean()),
                          layer_label(name, modules.get(name), feeder[0])))

    modes = module_modes(model)
    _training_forward(model)
    functional = None
    if calls_functions(model):  # a user's module may call F.relu / torch.relu in its forward
        functional = FunctionalActivations(model, lambda name, kind, out: kind == "ReLU" and keep(name, None, out),
                                           graph_only=False)
    try:
        if functional is not None:
            with functional:
                hooked_forward(model, x, _RECTIFIERS + _FEEDERS, keep)
        else:
            hooked_forward(model, x, _RECTIFIERS + _FEEDERS, keep)
    finally:
        restore_modes(modes)
    return found


def dead_units(model: nn.Module, x: torch.Tensor | Inputs, warn: float = 0.5) -> Verdict:
    """Fail when a ReLU layer is dead as a whole (nothing passes it: no gradient reaches the layers below), warn
    when more than ``warn`` of a layer's units are dead; skip when the model has no ReLU layer."""
    name = "dead units"
    layers = dead_fractions(model, x)
    if not layers:
        inside = sorted({type(m).__name__ for m in model.modules() if isinstance(m, _TRANSFORMER_LAYERS)})
        if inside:
            return Verdict(name, "skip", f"skipped: the activations inside torch's Transformer layers "
                           f"({', '.join(inside)}) are not read, and the model has no other ReLU (nn.ReLU, "
                           "F.relu in a module of its own)", "-", "")
        return Verdict(name, "skip", "skipped: no ReLU to read (no nn.ReLU / nn.ReLU6 module, no F.relu call)", "-",
                       "")
    where, worst, label = max(layers, key=lambda r: r[1])
    value = (f"{worst:.0%} of the units of {label} are 0 on all {len(x)} examples (worst of {len(layers)} "
             f"layer{'s' if len(layers) != 1 else ''})")
    expected = f"<= {warn:.0%} dead units per ReLU layer at init"
    norms = zero_scaled_norms(model) if worst > warn else []
    feeder = constant_feeder(model, x, where) if norms else None
    if feeder is not None:  # the zero init's doing: named, not read as a bias or init scale gone wrong
        return Verdict(name, "warn", f"{value}; the input of {feeder} is the same for every example",
                       expected, silent_branch_advice(norms, feeder))
    if worst >= 1.0:
        return Verdict(name, "fail", value, expected,
                       f"a whole ReLU layer is dead: no gradient passes it; look for a large negative bias "
                       f"({bias_fix()}), an init scale far too small or large, or unnormalized inputs")
    if worst > warn:
        return Verdict(name, "warn", value, expected,
                       f"most units of a ReLU layer never fire on this batch: check {bias_fix()} and the weights' "
                       f"init ({init_fix('he_normal')} for ReLU), or use LeakyReLU")
    return Verdict(name, "pass", value, expected)
