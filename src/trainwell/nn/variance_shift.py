"""Measure and repair the dropout -> BatchNorm variance shift (Li et al. 2019, "Understanding the disharmony
between dropout and batch normalization by variance shift").

Inverted dropout with keep probability p on inputs of mean c and variance v has variance (c^2 + v)/p - c^2 at
training time but v at test time. A BatchNorm layer after it stores the training variance as its running
variance, then at test time normalizes inputs whose variance is smaller: with c = 0 the ratio is exactly p.

- :func:`variance_shift` measures, per BatchNorm layer, the ratio of the eval-time input variance to the stored
  running variance (1 = no shift).
- :func:`recompute_bn_stats` re-estimates every BatchNorm's running statistics on training data with dropout off
  (a cumulative average over the data), which removes the shift.
- The two structural fixes are model options: dropout only after the last BatchNorm
  (``model.dropout_where = "last"``), or Uout noise instead of dropout (``model.dropout_mode = "uout"``).
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.nn.modes import module_modes, restore_modes

_BN = nn.modules.batchnorm._BatchNorm


def _channel_var(x: torch.Tensor) -> torch.Tensor:
    # (N, C, *spatial) -> per-channel variance over every axis but C
    dims = [0, *range(2, x.dim())]
    return x.var(dim=dims, unbiased=True)


@torch.no_grad()
def variance_shift(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> list[dict]:
    """For each BatchNorm layer: mean running variance, mean eval-time input variance, and their ratio.

    The model is run in eval mode on ``x`` (its mode is restored afterwards).
    """
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, _BN) and m.track_running_stats]
    if not layers:  # nothing to compare: no forward
        return []
    inputs: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: inputs[name].append(args[0].detach()))
             for name, m in layers]
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    report = []
    for name, m in layers:
        eval_var = _channel_var(torch.cat(inputs[name]))
        running = m.running_var
        report.append({
            "layer": name,
            "running_var": float(running.mean()),
            "eval_var": float(eval_var.mean()),
            "ratio": float((eval_var / running.clamp_min(1e-12)).mean()),
        })
    return report


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """Re-estimate every BatchNorm's running mean/variance on ``x`` with dropout (and other noise) off.

    BatchNorm layers run in train mode with ``momentum=None`` (a cumulative average over all batches); every
    other module runs in eval mode. Each module's own mode and each momentum are restored afterwards. A last batch
    of one example (whose batch variance is undefined) is left out; no autograd graph is recorded.
    """
    bns = [m for m in model.modules() if isinstance(m, _BN)]
    saved = [(m, m.momentum) for m in bns]
    modes = module_modes(model)
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    end = len(x) - 1 if len(x) > batch_size and len(x) % batch_size == 1 else len(x)
    try:
        with torch.no_grad():
            for i in range(0, end, batch_size):
                model(x[i : min(i + batch_size, end)])
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        restore_modes(modes)
    return model
