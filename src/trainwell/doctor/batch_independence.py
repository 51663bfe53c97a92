"""Pre-flight check: in eval mode no sample of a batch affects another's output (Karpathy's recipe)."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor import checkpointing
from trainwell.doctor import outputs as O
from trainwell.doctor.bags import Bags
from trainwell.doctor.batch_axis import batch_axis, pairwise
from trainwell.doctor.batch_position import batch_position
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict


def batch_independence(model: nn.Module, x: torch.Tensor | Inputs, i: int | None = None) -> Verdict:
    """In eval mode, sample j must not affect sample i's output: d out_i / d x_j = 0 for j != i (for integer
    inputs such as token ids: out_i must not change when the other samples are replaced, by a rotation of them or
    by copies of sample i: attention over the batch axis ignores the others' order). Read for the first and
    the last of up to 8 samples (``i`` None), or for sample ``i``: a mix that runs one way along the batch (a
    recurrence over the batch axis, a cumulative sum) never reaches the first sample's output. Sample i's output is
    read along the output's own axis of examples (axis 1 of CTC's (T, B, C) log-probabilities); of a score matrix
    over the batch's pairs (a CLIP model's (B, B) logits, whose row i scores example i against every candidate by
    design), it is the diagonal entry (i, i).

    With several inputs both are read: the gradient with respect to every floating-point input, and out_i when
    the other samples' integer and boolean inputs (ids, masks) are replaced by sample i's own. With ``i`` None,
    samples that do not mix must also not depend on their position in the batch
    (:mod:`~trainwell.doctor.batch_position`)."""
    if i is not None:
        return _one(model, x, i)
    last = min(len(x), 8) - 1
    verdicts = [_one(model, x, 0)] + ([_one(model, x, last)] if last > 0 else [])
    failed = next((v for v in verdicts if v.status == "fail"), None)
    if failed is not None or verdicts[0].status != "pass":
        return failed or verdicts[0]
    return batch_position(model, x) or verdicts[0]


def _one(model: nn.Module, x: torch.Tensor | Inputs, i: int) -> Verdict:
    xs = x[: min(len(x), 8)]
    was = model.training
    model.eval()
    try:
        pair = O.logits(call(model, xs[:2]))
        if pair is None:
            return Verdict("batch independence", "skip", "skipped: no output tensor to compare", "0", "")
        whole = O.logits(call(model, xs))
        axis = -1 if pairwise(pair, whole, len(xs)) else batch_axis(pair, whole, len(xs))
        if isinstance(xs, Inputs):
            others, what = _several(model, xs, i, axis)
        elif xs.is_floating_point():
            xs = xs.detach().clone().requires_grad_(True)
            out = _own(O.logits(model(xs)), axis, i).sum()
            (grad,) = checkpointing.input_gradients(model, out, [xs])
            leak = grad.reshape(len(xs), -1).abs().sum(dim=1) if grad is not None else torch.zeros(len(xs))
            others = float(torch.cat([leak[:i], leak[i + 1 :]]).max()) if len(xs) > 1 else 0.0
            what = f"max |d out_{i} / d x_j| = {others:.3g}"
            others = _beyond_round_off(others, float(leak[i]))
        else:
            with torch.no_grad():  # a rotation of the others, and copies of sample i (attention over the
                # batch axis, a set function of the others, ignores their order)
                a = _own(O.logits(_same_noise(model, xs)), axis, i)
                others = max(float((a - _own(O.logits(_same_noise(model, moved)), axis, i)).abs().max())
                             for moved in (_others_moved(xs, i), xs[i : i + 1].expand_as(xs).clone()))
            what = f"max |out_{i} change| when the others change = {others:.3g}"
            others = _beyond_round_off(others, float(a.abs().max()))
    finally:
        model.train(was)
    ok = others == 0.0
    return Verdict("batch independence", "pass" if ok else "fail", what, "0",
                   "" if ok else "samples mix inside the batch in eval mode: a BatchNorm left in train mode, a "
                                 "reduction over the batch axis, or a recurrent layer reading (B, T, F) inputs as "
                                 "(T, B, F) (nn.LSTM/GRU/RNN or nn.TransformerEncoderLayer without "
                                 "batch_first=True)")


def _own(out: torch.Tensor, axis: int, i: int) -> torch.Tensor:
    """Example ``i``'s own output: its slice along the output's ``axis`` of examples, or, for a score matrix over
    the batch's pairs (``axis`` -1: :func:`~trainwell.doctor.batch_axis.pairwise`), its diagonal entry (i, i),
    the score of its own pair, which no other example may move."""
    return out[i, i] if axis == -1 else out.select(axis, i)


def _beyond_round_off(leak: float, own: float) -> float:
    """``leak`` if it exceeds the float32 round-off of a quantity of size ``own`` (a masked attention's softmax
    over padded keys leaves ~1e-7 of it), else 0."""
    return leak if leak > 1e-5 * max(own, 1e-30) else 0.0


def _same_noise(model: nn.Module, xs: torch.Tensor | Inputs):
    """The model's output on ``xs`` from one fixed RNG state: a forward that samples in eval mode too (a VAE's
    reparameterized ``mu + eps * std``) draws the same noise for both batches compared, so only the other samples
    can change sample i's output. The caller's RNG state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return call(model, xs)


def _others_moved(xs: torch.Tensor, i: int) -> torch.Tensor:
    """``xs`` with every sample but ``i`` replaced by another of them (a rotation of the others): a different
    batch around sample ``i``, whatever its position."""
    others = [j for j in range(len(xs)) if j != i]
    moved = xs.clone()
    moved[others] = xs[others[1:] + others[:1]]
    return moved


def _several(model: nn.Module, xs: Inputs, i: int, axis: int = 0) -> tuple[float, str]:
    """The largest influence of the other samples on sample ``i``'s output, and its description: gradients
    with respect to the floating-point inputs, and the change of out_i when the other samples' integer/boolean
    inputs become copies of sample i's (a different batch, not a reordering of the same one)."""
    floats = [name for name, t in xs.items() if t.is_floating_point()]
    found, parts = 0.0, []
    if floats:
        xg = xs.map(lambda t: t.detach().clone().requires_grad_(True) if t.is_floating_point() else t)
        leaves = [t for t in xg.tensors() if t.is_floating_point()]
        out = _own(O.logits(call(model, xg)), axis, i).sum()
        grads = checkpointing.input_gradients(model, out, leaves)
        leak = torch.zeros(len(xs), device=leaves[0].device)
        for t, g in zip(leaves, grads, strict=True):
            if g is not None:
                rows = g.reshape(len(g), -1).abs().sum(dim=1).to(leak.dtype)
                bags = xg.bag_of_rows(t) if isinstance(xg, Bags) else None  # a bag's tokens are one example's
                leak = leak + (rows if bags is None else torch.zeros_like(leak).index_add_(0, bags, rows))
        others = float(torch.cat([leak[:i], leak[i + 1 :]]).max()) if len(xs) > 1 else 0.0
        found = max(found, _beyond_round_off(others, float(leak[i])))
        parts.append(f"max |d out_{i} / d x_j| = {others:.3g} ({', '.join(floats)})")
    fixed = [name for name, t in xs.items() if not t.is_floating_point()]
    if fixed and len(xs) > 1:

        def copies(t: torch.Tensor) -> torch.Tensor:
            if t.is_floating_point():
                return t
            return t[i : i + 1].expand_as(t).clone()  # every sample's ids become sample i's own

        with torch.no_grad():
            a = _own(O.logits(_same_noise(model, xs)), axis, i)
            moved = xs[torch.full((len(xs),), i)] if isinstance(xs, Bags) else xs.map(copies)  # whole bags
            b = _own(O.logits(_same_noise(model, moved)), axis, i)
        change = float((a - b).abs().max())
        found = max(found, _beyond_round_off(change, float(a.abs().max())))
        parts.append(f"max |out_{i} change| when the others' {', '.join(fixed)} change = {change:.3g}")
    return found, "; ".join(parts)
