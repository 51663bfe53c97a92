"""A copy of the watched model whose normalization layers' running statistics were never updated: an exponential
moving average of the weights written by hand, ``ema = copy.deepcopy(model)`` then after each step
``for e, p in zip(ema.parameters(), model.parameters()): e.mul_(0.999).add_(p, alpha=0.001)``. ``parameters()``
holds no buffer, so the copy's BatchNorm ``running_mean`` and ``running_var`` stay at their initial 0 and 1: the
EMA, evaluated, normalizes every layer with mean 0 and variance 1 instead of the statistics its weights were
trained under, and its validation loss is far above the model's. torch's ``AveragedModel`` averages the buffers
with ``use_buffers=True`` and copies the model's at each ``update_parameters`` otherwise (SWA then recomputes them
with ``update_bn``, Izmailov et al. 2018); a hand-written EMA copies them after each update.

Read at the report from the copies of the model (its class, its parameters' shapes, none of its tensors:
:func:`~trainwell.doctor.evaluated_copies.model_copies`) that the code asking for the report holds in the frames
above the call, or that ``trainwell watch`` found in the script: a copy whose weights moved since the watch began
(a snapshot of the initial weights, kept to measure their drift, does not) and whose every module with running
statistics counted no batch and holds its initial values, while the watched model's counted batches.
"""

from __future__ import annotations

import types

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.optim.swa_utils import AveragedModel

from trainwell.doctor.evaluated_copies import model_copies
from trainwell.doctor.restored_weights import weight_sums
from trainwell.doctor.verdict import Verdict

NAME = "loop: copy's running statistics"
#: the frames read for copies: the one asking for the report and those above it
FRAMES = 3


def copies_held(frame: types.FrameType | None, model: nn.Module) -> list[nn.Module]:
    """The copies of ``model`` that ``frame`` or the :data:`FRAMES` - 1 frames above it hold as locals."""
    namespaces = []
    for _ in range(FRAMES):
        if frame is None:
            break
        namespaces.append(dict(frame.f_locals))
        frame = frame.f_back
    return model_copies(model, namespaces)


def _running(module: nn.Module) -> list[_NormBase]:
    return [m for m in module.modules() if isinstance(m, _NormBase) and m.track_running_stats and
            m.running_mean is not None and m.num_batches_tracked is not None]


def _initial(norm: _NormBase) -> bool:
    """Whether ``norm``'s running statistics are the ones it was built with: no batch counted, mean 0, variance 1."""
    return int(norm.num_batches_tracked) == 0 and bool((norm.running_mean == 0).all()) and \
        bool((norm.running_var == 1).all())


def stale_statistics(model: nn.Module, copies: list[nn.Module], start: torch.Tensor | None) -> Verdict | None:
    """A warning when one of ``copies`` moved away from the weights the watch began with (``start``: their
    :func:`~trainwell.doctor.restored_weights.weight_sums`) while its running statistics are all initial and the
    model's counted batches; None otherwise, and when ``start`` is None (a lazy model: no weights to compare)."""
    if start is None:
        return None
    mine = _running(model)
    counted = max((int(m.num_batches_tracked) for m in mine), default=0)
    if not counted:
        return None
    for copy in copies:
        inner = copy.module if isinstance(copy, AveragedModel) else copy
        theirs = _running(inner)
        if not theirs or not all(_initial(m) for m in theirs):
            continue
        sums = weight_sums(list(inner.parameters()))
        if sums.shape == start.shape and torch.allclose(sums, start, rtol=1e-9, atol=0.0):
            continue  # the initial weights, kept as they were
        return Verdict(NAME, "warn", f"a copy of the model held beside it ({type(copy).__name__}, its weights moved "
                       f"since the watch began) has {len(theirs)} normalization "
                       f"{'layer whose' if len(theirs) == 1 else 'layers whose'} running statistics are still their "
                       f"initial mean 0 and variance 1 (no batch counted), while the model's counted "
                       f"{counted} batches: evaluated, the copy normalizes with those", "the copy's running "
                       "statistics following the model's",
                       "an EMA of model.parameters() leaves the buffers behind: copy them after each update (for b, "
                       "mb in zip(ema.buffers(), model.buffers()): b.copy_(mb)), or use torch.optim.swa_utils."
                       "AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)")
    return None
