"""An example's output that depends on where the example sits in the batch, not only on the example itself.

The examples may not mix (batch independence passes) and each output may still read its row's index: the most
common way is the PyTorch tutorial's positional encoding, written for (T, B, d) inputs (a buffer ``pe`` of shape
(max_len, 1, d), ``x + pe[:x.size(0)]``), kept in a model whose inputs are batch-first (B, T, d). ``x.size(0)`` is
then the batch, and example b gets position b's vector at every one of its tokens: the tokens carry no position at
all (word order is invisible to attention) and each example is shifted by a vector that depends on its row in the
batch, so the same sequence scores differently in another batch order. Any code that indexes a buffer by
``x.size(0)`` or ``torch.arange(len(x))`` does the same.

Read in eval mode on up to 8 examples: the batch in reverse order must give the same outputs in reverse order. A
model that samples in eval mode (a VAE's ``mu + eps * std``) gives each row other noise in another order; it is
not read (its outputs change with the seed alone). Where one input tensor is given, the first module whose output
changes while its input does not is named (reusing :func:`~trainwell.doctor.mixing_site._events`).
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.bags import Bags
from trainwell.doctor.batch_axis import batch_axis, pairwise
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.mixing_site import _differ, _events
from trainwell.doctor.verdict import Verdict

NAME = "batch independence"
ADVICE = ("each example's output must not depend on its row in the batch: a positional encoding written for "
          "(T, B, d) inputs (pe of shape (max_len, 1, d), x + pe[:x.size(0)]) adds position b's vector to every "
          "token of example b when the inputs are batch-first (B, T, d): slice pe[:, :x.size(1)] of a (1, max_len, "
          "d) buffer (or transpose the inputs to (T, B, d)); likewise for anything indexed by x.size(0) or "
          "torch.arange(len(x))")


def batch_position(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """A fail when reversing the order of up to 8 examples changes their outputs (beyond float32 round-off)
    other than by the same reversal along the output's axis of examples; None when the outputs follow
    the examples, when fewer than 2 examples differ, or when the reading does not apply (a bag of variable-size
    examples, an output without a tensor, a model that samples in eval mode)."""
    if isinstance(x, Bags) or len(x) < 2:
        return None
    xs = x[: min(len(x), 8)]
    n = len(xs)
    back = torch.arange(n - 1, -1, -1)
    reversed_xs = xs[back]
    if _same_rows(xs, reversed_xs):
        return None  # a batch of one repeated example reads the same in any order
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            a = O.logits(_seeded(model, xs, 0))
            if a is None or a.dim() == 0 or not a.is_floating_point():
                return None
            pair = O.logits(_seeded(model, xs[:2], 0))
            axis = batch_axis(pair, a, n)
            if a.shape[axis] != n:
                return None
            if _differ(a.double(), O.logits(_seeded(model, xs, 1)).double()):
                return None  # the outputs change with the seed alone: it samples in eval mode
            b = O.logits(_seeded(model, reversed_xs, 0)).index_select(axis, back)
            if pairwise(pair, a, n):  # a score matrix over the batch's pairs: its candidates reordered too
                b = b.index_select(1, back)
    finally:
        model.train(was)
    if b.shape != a.shape or not _differ(a.double(), b.double()):
        return None
    change = float((a - b).nan_to_num().abs().max())
    site = _site(model, xs, reversed_xs, back)
    where = f"; it first appears at the output of '{site}', whose input follows the examples" if site else ""
    return Verdict(NAME, "fail", f"the outputs change by up to {change:.3g} when the same {n} examples come in "
                   f"reverse order: an example's output depends on its position in the batch{where}", "0", ADVICE)


def _seeded(model: nn.Module, xs, seed: int):
    """The model's output on ``xs`` from a fixed RNG state (the caller's state restored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return call(model, xs)


def _same_rows(xs, reversed_xs) -> bool:
    """Whether the reversed batch equals the batch (every tensor of it)."""
    pairs = zip(xs.tensors(), reversed_xs.tensors(), strict=True) if isinstance(xs, Inputs) else [(xs, reversed_xs)]
    return all(torch.equal(s, t) for s, t in pairs)


def _site(model: nn.Module, xs, reversed_xs, back: torch.Tensor) -> str | None:
    """The first module whose output, read in reverse order, differs from the forward order's while its input
    does not (one input tensor only); None when no module tells."""
    if not isinstance(xs, torch.Tensor):
        return None
    try:
        a, b = _events(model, xs), _events(model, reversed_xs)
    except Exception:  # noqa: BLE001 - a model the hooks cannot follow keeps the general advice
        return None
    if len(a) != len(b):
        return None
    last_input: dict[str, bool] = {}
    for (where, name, ta), (_, _, tb) in zip(a, b, strict=True):
        if ta.dim() == 0 or ta.shape != tb.shape or ta.shape[0] != len(xs) or not ta.is_floating_point():
            continue
        moved = _differ(ta.double(), tb.index_select(0, back).double())
        if where == "input":
            last_input[name] = moved
        elif moved and not last_input.get(name, True):
            return name or None
    return None
