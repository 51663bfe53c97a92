"""Outputs that one shared function computes from inputs of the same kind: a ranking model's scores of the
positive and the negative item (``score(user, pos)``, ``score(user, neg)``), a Siamese or triplet encoder's
embeddings of its two or three inputs.

The input-independent model that the baseline and the overfit checks compare with is the best *constant* output.
Fitted as one free constant per output tensor, such outputs could take two different constants, positive score
high and negative score low, which no model of this architecture reaches without its inputs: given the same
input, the shared function gives the same output. A BPR loss ``-logsigmoid(pos - neg)`` or a triplet loss with a
margin would then read as met by a constant (a loss of 0), and a healthy model as one whose loss has nothing to
teach. Their constants are tied instead.

Two outputs are tied when they are equal wherever their inputs are: the model is run on a few examples with every
input tensor replaced by the first one of its kind (same shape and dtype), and two floating-point outputs of one
shape that differ on the real inputs come out identical."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.inputs import Inputs, call
from trainwell.nn.modes import kept_modes

#: examples the probe runs the model on
EXAMPLES = 8


def _same_kind_as_first(x: Inputs) -> Inputs | None:
    """``x`` with every tensor replaced by the first earlier tensor of the same shape and dtype; None when no two
    tensors share both."""
    tensors = x.tensors()
    first: dict[tuple, torch.Tensor] = {}
    for t in tensors:
        first.setdefault((tuple(t.shape), t.dtype), t)
    if len(first) == len(tensors):
        return None
    return x.map(lambda t: first[(tuple(t.shape), t.dtype)])


def tied_outputs(model: nn.Module, x: torch.Tensor | Inputs) -> dict[int, int]:
    """For each floating-point output (by its index among the output's floating-point tensors) that a shared
    function computes as it computes an earlier one, that earlier one's index; empty when there is none (one
    input tensor, or none of the same kind as another), or when the model cannot run on the probe's inputs."""
    if not isinstance(x, Inputs) or len(x) < 2:
        return {}
    real = x[:EXAMPLES]
    alike = _same_kind_as_first(real)
    if alike is None:
        return {}
    try:
        with kept_modes(model), torch.no_grad():
            model.eval()
            before = [t for t in O.leaves(call(model, real)) if t.is_floating_point()]
            after = [t for t in O.leaves(call(model, alike)) if t.is_floating_point()]
    except Exception:  # noqa: BLE001 - a model this probe cannot run: its outputs stay untied, as before
        return {}
    if len(before) != len(after):
        return {}
    tied: dict[int, int] = {}
    for j in range(len(after)):
        for i in range(j):
            if i in tied or after[i].shape != after[j].shape or before[i].shape != before[j].shape:
                continue
            if after[j].dim() and torch.equal(after[i], after[j]) and not torch.equal(before[i], before[j]):
                tied[j] = i
                break
    return tied
