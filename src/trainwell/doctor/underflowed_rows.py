"""Rows of a saturated softmax whose cross-entropy gradient underflowed, for :func:`~trainwell.doctor.loss_form.
read_form`.

Cross-entropy's gradient for row i is ``a_i (softmax(z_i) - e_{y_i})``. A row whose softmax puts all its mass on
its label in the gradient's precision (logits far from unit scale: inputs in raw units, a first update far too
large) sends ``p_y - 1 = 0`` at the label and ``a_i p_c`` below the smallest normal number elsewhere: a gradient of
zeros and subnormals, from which ``a_i`` cannot be read (a subnormal keeps a few bits, a zero none), nor the label
where other classes' entries are 0 as well. Such a row is
still one of the loss's rows: a mean over N rows gives it 1/N like the others. Leaving it out would read a mean
over 64 rows, 21 of them saturated, as weights summing to 43/64, and the first loss would be compared with
43/64 x ln C instead of ln C. The weight is read from the other rows instead; where they share one weight (a plain
mean or sum), the underflowed rows are counted at it.

Example:
    >>> import torch, torch.nn.functional as F
    >>> z = torch.randn(8, 4); z[:3] = torch.tensor([200.0, 0.0, 0.0, 0.0])  # 3 rows saturated on class 0
    >>> y = torch.tensor([0, 0, 0, 1, 2, 3, 1, 2]); _ = z.requires_grad_()
    >>> F.cross_entropy(z, y).backward()
    >>> readable, under = split_underflowed(z.detach().double(), z.grad.double(), z.grad.dtype)
    >>> int(readable.sum()), int(under.sum())
    (5, 3)
"""

from __future__ import annotations

import torch

#: the largest ratio of the readable rows' weights for them to count as one shared weight (a mean, a sum)
EQUAL = 1e-3


def split_underflowed(z: torch.Tensor, g: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(readable, underflowed) masks over the (N, C) rows ``z, g`` (in float64; ``dtype``: the gradient's own
    precision): readable rows have a gradient entry in ``dtype``'s normal range and one entry below all the others
    (the label's); underflowed ones do not (all zero or subnormal, or the label's 0 tied with other classes' 0) and
    their softmax in ``dtype`` is one class's alone (its largest probability rounds to 1)."""
    if not dtype.is_floating_point:
        dtype = torch.float32
    low = g.amin(1, keepdim=True)
    # the label is the one entry below the others: a row whose label and some other classes all read 0 has none
    labelled = (low.squeeze(1) < 0) | ((g == low).sum(1) == 1)
    readable = (g.abs().amax(1) >= torch.finfo(dtype).tiny) & labelled
    one_hot = torch.softmax(z.to(dtype), 1).amax(1) == 1
    return readable, ~readable & one_hot


def counted_at_shared_weight(found: dict | None, underflowed: int) -> dict | None:
    """``found`` (a :func:`~trainwell.doctor.loss_form.read_form` reading of the readable rows) with ``underflowed``
    more rows counted at the weight the readable rows share, when it is a cross-entropy whose rows share one weight;
    else None (class weights, label smoothing, another form: the underflowed rows' weights are unknown)."""
    if found is None or found.get("form") != "cross_entropy" or found.get("smoothing") or not found["rows"] or \
            found.get("spread") is None or found["spread"] > 1 + EQUAL:
        return None
    each = found["weight"] / found["rows"]
    return {**found, "weight": found["weight"] + underflowed * each, "rows": found["rows"] + underflowed,
            "underflowed": underflowed}
