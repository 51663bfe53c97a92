"""One BatchNorm module applied after two different layers: ``self.bn = nn.BatchNorm2d(64)`` defined once and
called after ``conv1`` and again after ``conv2`` (the channel counts match, so nothing fails).

In train mode each call normalizes by its own batch's statistics and the training loss looks right. But the
module keeps one pair of running statistics, which every call updates: in eval mode both layers are normalized by a
blend of the two layers' means and variances, right for neither, and the validation loss sits far above the
training loss (a network that reaches 99.6% validation accuracy with one BatchNorm per layer: 73% with one shared by
two layers). Its affine weights are shared too. A layer of its own per place (``self.bn1``, ``self.bn2``) is the
fix. A module applied to several inputs after the same layer (a Siamese encoder called on both inputs, a block
applied several times) normalizes one layer's outputs and is not named.

Read in eval mode (the running statistics are not touched) on up to 8 examples: for each normalization module that
keeps running statistics, the module with parameters that ran last before each of its calls.
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import module_modes, restore_modes

NAME = "batchnorm reuse"


def shared_batchnorm(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """A warning naming the first module with running statistics that runs after two or more different layers in
    one forward; None when there is none."""
    norms = {name: m for name, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats}
    if not norms:
        return None
    last: list[str | None] = [None]
    before: dict[str, list[str | None]] = {}

    def norm_called(name):
        def hook(module, args):
            before.setdefault(name, []).append(last[0])
        return hook

    def weighted_ran(name):
        def hook(module, args, out):
            last[0] = name
        return hook

    hooks = [m.register_forward_pre_hook(norm_called(name)) for name, m in norms.items()]
    hooks += [m.register_forward_hook(weighted_ran(name)) for name, m in model.named_modules()
              if name not in norms and any(True for _ in m.parameters(recurse=False))]
    modes = module_modes(model)
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            call(model, x[: min(len(x), 8)])
    finally:
        for h in hooks:
            h.remove()
        restore_modes(modes)
    for name, layers in before.items():
        distinct = list(dict.fromkeys(layers))
        if len(distinct) >= 2:
            after = ", ".join(f"'{n}'" if n is not None else "the input" for n in distinct)
            kind = type(norms[name]).__name__
            return Verdict(NAME, "warn", f"one {kind} '{name}' normalizes the outputs of {len(distinct)} layers "
                           f"({after}): its running statistics blend them, right for none in eval mode",
                           "one normalization layer per place",
                           f"give each place a {kind} of its own (self.bn1 = nn.{kind}(...), self.bn2 = "
                           f"nn.{kind}(...)): the shared one's running mean and variance, used in eval mode, "
                           "average layers whose outputs differ, and the validation loss pays for it")
    return None
