r"""One activation layer's output read on a monitored step: its mean, std, histogram, saturated fraction (tanh
\|a\| > 0.99, sigmoid a < 0.01 or > 0.99) and dead fraction (ReLU units never positive on the batch), as
:class:`~trainwell.doctor.monitors.Monitor` records them (Glorot & Bengio 2010, figs. 6-7)."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwell.doctor.dead_units import unit_peaks


def _hist(t: torch.Tensor, bins: int, hi: float | None = None) -> dict:
    """A histogram of the finite values (``torch.histc`` cannot take a non-finite range); all-NaN gives none.
    ``hi``: the values' largest, where the caller knows it (a ReLU's, from its units' peaks): one pass fewer."""
    t = t.detach().float().reshape(-1)
    if t.numel() == 0:
        return {"lo": 0.0, "hi": 0.0, "counts": []}
    lo, hi = _extremes(t, hi)  # NaN propagates: one check covers all values
    if not (math.isfinite(lo) and math.isfinite(hi)):
        t = t[torch.isfinite(t)]
        if t.numel() == 0:
            return {"lo": 0.0, "hi": 0.0, "counts": []}
        lo, hi = _extremes(t)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return {"lo": lo, "hi": hi, "counts": uniform_counts(t, bins, lo, hi)}


def _extremes(t: torch.Tensor, hi: float | None = None) -> tuple[float, float]:
    """``(min, max)`` of ``t`` as floats: ``amin`` and ``amax``, two passes that take 0.6x the time of
    ``torch.aminmax``'s one on a CPU (256,000 float32 values: 39 against 63 us)."""
    return float(t.amin()), (float(t.amax()) if hi is None else hi)


def uniform_counts(t: torch.Tensor, bins: int, lo: float, hi: float) -> list[int]:
    """``torch.histc(t, bins, lo, hi)`` for finite values of a 1-D float tensor ``t`` that all lie in ``[lo, hi]``
    (``lo < hi``), as integers: bin ``floor((v - lo) * bins / (hi - lo))``, ``hi`` in the last bin.

    Computed as small integers (``int8`` below 127 bins, ``uint8`` up to 255) and ``torch.bincount``: 1.4-1.8x
    faster than ``histc`` on a CPU (256,000 values: 0.53-0.69 against 0.96 ms), which is most of a monitor
    snapshot's cost; ``int8`` because torch converts float32 to it with vector instructions and to ``uint8`` without
    (256,000 values: ~20 against ~80-160 us). A value within a rounding error of an inner edge may land in the
    neighbouring bin, where ``histc`` compares it with the edge itself.
    """
    scale = bins / (hi - lo)
    dtype = torch.int8 if bins < 127 else torch.uint8 if bins < 256 else torch.int32
    if scale > 1e30:  # a range of a few subnormal float32 steps: its scale overflows float32
        t = t.double()
    # subtract first: lo is within the values' range, so (v - lo) is exact where a large offset would round
    # (a ReLU's output starts at 0: nothing to subtract)
    idx = (t.mul(scale) if lo == 0.0 else torch.sub(t, lo).mul_(scale)).to(dtype)  # truncation: floor for v >= 0
    counts = (_paired_bincount(idx, bins + 1) if dtype == torch.int8 and idx.numel() >= PAIRED_FROM
              else torch.bincount(idx, minlength=bins + 1)).tolist()
    counts[bins - 1] += sum(counts[bins:])  # v == hi (and rounding at the top edge) belongs to the last bin
    return counts[:bins]


PAIRED_FROM = 4096
"""From this many values :func:`uniform_counts` counts them two at a time (:func:`_paired_bincount`)."""


def _paired_bincount(idx: torch.Tensor, length: int) -> torch.Tensor:
    """``torch.bincount(idx, minlength=length)`` of a contiguous 1-D ``int8`` (or ``uint8``) tensor whose values
    are all in ``[0, length)`` (``length`` <= 128), counting two values at a time: each pair of bytes read as one
    ``int16`` ``a + 256 b`` (non-negative: ``b`` < 128) (or
    ``b + 256 a`` on a big-endian machine; the sum below is the same) is counted into ``256 length`` bins, and a
    value's count is its row's sum plus its column's. ``bincount``'s cost is per counted element (~1.2 ns here),
    so half the elements take 0.4x the time (256,000 values: 300 -> 122 us, RESULTS section 37)."""
    n = idx.numel()
    even = idx[: n - n % 2]
    pairs = torch.bincount(even.view(torch.int16), minlength=256 * length).view(length, 256)[:, :length]
    counts = pairs.sum(0) + pairs.sum(1)
    if n % 2:
        counts[int(idx[-1])] += 1
    return counts


def _std(t: torch.Tensor, mean: float) -> float:
    """``float(t.std())`` (n - 1 in the denominator) from the sum of squares, ``(Σx² - n·mean²) / (n - 1)``: one
    ``dot`` instead of torch's two-pass kernel (256,000 values: 41 against 176 us). Used only where that cannot
    cancel (``mean²`` at most half the mean square) and the squares do not overflow; else ``t.std()``."""
    n = t.numel()
    if n > 1 and t.dtype == torch.float32 and t.is_contiguous():
        flat = t.view(-1)
        square = float(torch.dot(flat, flat)) / n
        if math.isfinite(square) and mean * mean <= 0.5 * square:
            return math.sqrt(max(square - mean * mean, 0.0) * n / (n - 1))
    return float(t.std())


def _finite_fraction(t: torch.Tensor) -> float:
    return float(torch.isfinite(t).float().mean()) if t.numel() else 1.0


def activation_stats(module: nn.Module, out: torch.Tensor, bins: int = 30,
                     earlier: tuple[torch.Tensor, int] | None = None, channels: int | None = None) -> dict:
    """Mean, std, saturated and dead fractions and a histogram of one activation layer's output; NaN/Inf
    values are counted (``nonfinite``, a fraction) and left out of the other statistics.

    ``earlier``: the units' peaks and the number of rows of the layer's other forwards in the same step (a
    meta-learner's many small tasks, a discriminator's real and fake batches): a unit is dead only when it was off
    for all of them, and the rows count together towards ``DEAD_MIN_ROWS``. The pooled peaks and rows are returned
    under ``"_peaks"`` for the next forward."""
    a = out.detach()
    mean = float(a.mean())  # needed anyway; NaN/Inf anywhere makes it non-finite, so the check costs nothing
    finite = 1.0 if math.isfinite(mean) else _finite_fraction(a)
    if finite < 1.0:
        kept = a[torch.isfinite(a)].float()
        return {"kind": type(module).__name__, "nonfinite": 1.0 - finite,
                "mean": float(kept.mean()) if kept.numel() else math.nan,
                "std": float(kept.std()) if kept.numel() > 1 else math.nan, "hist": _hist(a, bins)}
    # a unit is dead when its largest output on the batch is not positive (a leaky ReLU never is: it passes a
    # gradient below 0), read on batches of DEAD_MIN_ROWS examples or more; a feature map's unit is a channel.
    # The units' peaks also give the histogram its top (the largest peak is the largest value).
    peaks = unit_peaks(a, channels) if isinstance(module, nn.ReLU) and a.dim() >= 1 else None
    top = float(peaks.amax()) if peaks is not None and peaks.numel() else None
    stats = {"kind": type(module).__name__, "mean": mean, "std": _std(a, mean), "hist": _hist(a, bins, top)}
    if isinstance(module, nn.Tanh):
        stats["saturated"] = float((a.abs() > 0.99).float().mean())
    elif isinstance(module, nn.Sigmoid):
        stats["saturated"] = float(((a < 0.01) | (a > 0.99)).float().mean())
    if peaks is None:
        return stats
    rows = a.shape[0]
    if earlier is not None and earlier[0].shape == peaks.shape:
        peaks, rows = torch.maximum(peaks, earlier[0]), rows + earlier[1]
    stats["_peaks"] = (peaks, rows)
    if rows >= DEAD_MIN_ROWS:  # (amax: ~10x faster than (units > 0).any)
        stats["dead"] = int(torch.count_nonzero(peaks <= 0)) / peaks.numel() if peaks.numel() else math.nan
    return stats


DEAD_MIN_ROWS = 8
"""A unit is called dead only on a batch of at least this many examples: a healthy ReLU unit is off for about half
of them, so on a short batch (a loader's last one) many would look dead by chance (0.5^8 = 0.4% on 8)."""
