"""What one observed step's tensors say, for :class:`~trainwell.doctor.loop_probe.LoopProbe`: the forward's
tensor arguments, a fingerprint of the batch and the scale of every floating-point input (a quantile of ``|x|``
that a few outlying rows do not move), whether the outputs are log-probabilities (NLL's input), and which of the
output's rows the loss reached."""

from __future__ import annotations

import torch

from trainwell.doctor import outputs as O


def log_probabilities(z: torch.Tensor) -> bool:
    """Whether the outputs an NLL loss reads are log-probabilities: every row's logsumexp over the classes (dim 1)
    is 0 (log_softmax's outputs), to the outputs' precision."""
    if z.dim() < 2:
        return True
    zf = z.float()
    tol = 1e-4 if z.dtype in (torch.float32, torch.float64) else 2e-2
    return any(bool((zf.logsumexp(d).abs() < tol).all()) for d in dict.fromkeys((1, zf.dim() - 1)))  # C on 1 or last


def forward_tensors(args, kwargs) -> list[torch.Tensor]:
    """Every tensor among a forward's arguments, in order (``model(ids, numeric)``: both)."""
    return [t for value in list(args) + list(kwargs.values()) for t in O.leaves(value)]


def input_stats(inputs: list[torch.Tensor], step: int) -> dict:
    """One observed forward's inputs: a fingerprint of the first (its shape, sum and first values: the same batch
    again?) and the scale of every floating-point one (``index``: (k, n), the k-th of the model's n tensor arguments
    is the farthest from unit scale, when it takes several)."""
    xd = inputs[0].detach()
    flat = xd.reshape(-1).float()
    floating = [t.detach() for t in inputs if t.is_floating_point()]
    stats = {"step": step, "shape": tuple(xd.shape), "floating": bool(floating),
             "sum": float(flat.sum()) if flat.numel() else 0.0, "head": flat[:64].tolist()}
    if floating:
        stats["finite"] = all(bool(torch.isfinite(t).all()) for t in floating)
    scales = [(float(t.detach().float().std()), float(t.detach().float().abs().max()), abs_quantile(t.detach()), i)
              for i, t in enumerate(inputs) if t.is_floating_point() and t.numel() > 1]
    if scales:
        stats["std"], stats["max_abs"], stats["q99"], index = max(scales)
        stats["index"] = (index + 1, len(inputs)) if len(inputs) > 1 else None
        stats["columns"] = column_scales(inputs[index].detach())
    return stats


def column_scales(x: torch.Tensor, most: int = 1024) -> dict | None:
    """Per column of a (B, F) table of features (2 <= F <= ``most``, 2 rows or more): the 0.99 quantile of |x|, the
    mean and the std, as lists (one column left in raw units among standardized ones shows in its own column, not in
    the whole batch's std); None for another shape."""
    if x.dim() != 2 or not 2 <= x.shape[1] <= most or len(x) < 2:
        return None
    xf = x.float()
    return {"q99": torch.quantile(xf.abs(), 0.99, dim=0).tolist(), "mean": xf.mean(0).tolist(),
            "std": xf.std(0).tolist()}


def abs_quantile(t: torch.Tensor, q: float = 0.99) -> float:
    """The ``q`` quantile of ``|t|`` (of at most 2**20 evenly strided elements): a scale a few outlying rows (the
    tail of standardized heavy-tailed features) do not move, as they move the maximum."""
    flat = t.detach().reshape(-1)
    if flat.numel() > 2**20:
        flat = flat[:: flat.numel() // 2**20 + 1]
    return float(torch.quantile(flat.float().abs(), q))


def fixed_rows(steps: list[dict]) -> tuple[int, int] | None:
    """(rows reached, rows) when the loss reached a subset of the output's rows on the first of the observed
    ``steps`` (their records' ``reached_rows``, :func:`reached_rows`), not all of them, and none outside it on every
    later one; else None."""
    reads = [s.get("reached_rows") for s in steps]
    if not reads or any(r is None for r in reads) or len({len(r) for r in reads}) != 1:
        return None
    first = reads[0]
    if not 0 < int(first.sum()) < len(first) or any(bool((r & ~first).any()) for r in reads[1:]):
        return None
    return int(first.sum()), len(first)


def reached_rows(z: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor | None:
    """Which rows of the output ``z`` (its examples along the first axis) the loss's gradient ``g`` reached (not all
    0), as a boolean mask; None without a gradient. A loss over a masked subset of the rows (a graph network's
    labelled nodes, ``F.cross_entropy(out[train_mask], y[train_mask])``) reaches the same few rows on every step,
    or fewer of them once some are fitted to float precision (a softmax's gradient underflows to 0)."""
    if g is None or g.dim() == 0 or g.shape != z.shape or len(g) == 0:
        return None
    return g.detach().reshape(len(g), -1).ne(0).any(1).cpu()
