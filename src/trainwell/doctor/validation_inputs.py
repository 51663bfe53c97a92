"""``loop: validation inputs``: validation batches on another scale than the training batches.

A preprocessing step applied to the training set and forgotten on the validation set (the training features
standardized with their mean and std, the validation ones left raw; pixels divided by 255 for training only) gives
a validation error far above the training error that reads as overfitting. The watch sees both: the inputs of the
training forwards on observed steps, and those of the forwards without gradients before the first
``w.validate()`` (the validation batches, each read once however often the pass gives it to the model; later
validations repeat the same set, as a rule), or, when none ran without gradients, those of the eval-mode forwards
(a validation without ``torch.no_grad()``). Per input feature
(each element of a row; the whole tensor as one feature when the rows' shapes differ) it compares the validation
inputs' mean and spread with the training inputs':

- a feature is *off* when its validation std is over :data:`RATIO` x or under 1 / :data:`RATIO` x the training
  std, or its mean lies over :data:`SHIFT` training stds from the training mean, and that difference is over
  :data:`Z` standard errors of sampling noise (the mean's: the training std / sqrt(n); the variance's: from the
  training kurtosis, so a sparse feature that happens to be 0 in a small validation set is not off);
- the verdict warns when half the features that vary in training or more are off, and names the median feature's
  ratio and shift. Splits of one data set preprocessed alike sit near 1x and 0 stds; a real shift between the
  splits moves some features, not the spread of most of them by 2.5x or their means by 3 stds. (Standardized
  training features beside raw 0..1 pixels: a validation spread 3.8x smaller; beside raw tabular units, 7x larger
  and more.)
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.repeated_batches import first_of_each
from trainwell.doctor.verdict import Verdict

NAME = "loop: validation inputs"
RATIO = 2.5  # a feature's std, validation over training, beyond this factor either way
SHIFT = 3.0  # a feature's mean, validation minus training, in training stds
Z = 5.0  # standard errors of sampling noise that a difference must also exceed
MIN_ROWS = 32  # rows on each side before the inputs are compared
ROWS = 8192  # rows read on each side, at most


class Moments:
    """Running per-feature sums of powers 1..4 of a stream of batches (rows along dim 0), in float64, about a pivot
    (the first batch's mean) so that large offsets do not cancel; the whole tensor's as one feature too."""

    def __init__(self, rows: int = ROWS):
        self.rows, self.n, self.count_all = rows, 0, 0  # rows read; values read
        self.shape: tuple | None = None  # the rows' shape; None before the first batch
        self.per_feature = True  # every batch's rows had one shape
        self.pivot = self.pivot_all = self.sums = self.overall = None

    def add(self, x) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 1 or not len(x) or \
                self.n >= self.rows:
            return
        x = x.detach()[: self.rows - self.n]
        # float64 where the device has it (not Apple's MPS); the pivot keeps float32 close
        flat = x.reshape(len(x), -1).to(torch.float32 if x.device.type == "mps" else torch.float64)
        if self.shape is None:
            self.shape, self.pivot, self.pivot_all = tuple(x.shape[1:]), flat.mean(0), flat.mean()
        elif tuple(x.shape[1:]) != self.shape:
            self.per_feature, self.sums = False, None
        if self.per_feature:
            d = flat - self.pivot
            powers = torch.stack([d.sum(0), (d * d).sum(0), (d ** 3).sum(0), (d ** 4).sum(0)])
            self.sums = powers if self.sums is None else self.sums + powers
        d = (flat - self.pivot_all).reshape(-1)
        powers = torch.stack([d.sum(), (d * d).sum(), (d ** 3).sum(), (d ** 4).sum()])
        self.overall = powers if self.overall is None else self.overall + powers
        self.n += len(x)
        self.count_all += flat.numel()

    def stats(self, per_feature: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """(mean, std, kurtosis, rows) per feature, or of every value as one feature."""
        if per_feature:
            sums, n, pivot = self.sums.cpu(), self.n, self.pivot.cpu()
        else:
            sums, n, pivot = self.overall.cpu().unsqueeze(1), self.count_all, self.pivot_all.cpu().reshape(1)
        m1, m2, m3, m4 = (s / n for s in sums)
        var = (m2 - m1 ** 2).clamp_min(0)
        c4 = m4 - 4 * m1 * m3 + 6 * m1 ** 2 * m2 - 3 * m1 ** 4
        kurtosis = (c4 / var.clamp_min(1e-300) ** 2).clamp(1.0, float(n))
        return pivot + m1, (var * n / max(n - 1, 1)).sqrt(), kurtosis, n


def validation_inputs(train: Moments, val: Moments) -> Verdict | None:
    """The verdict on the validation inputs against the training inputs; None when no validation forward of the
    watched model was seen (or it took no floating-point input)."""
    if val.n == 0 or train.n == 0:
        return None
    if val.n < MIN_ROWS or train.n < MIN_ROWS:
        return Verdict(NAME, "skip", f"skipped: {train.n} training and {val.n} validation rows read (under "
                       f"{MIN_ROWS})", "-", "")
    per_feature = train.per_feature and val.per_feature and train.shape == val.shape
    mt, st, kurt, nt = train.stats(per_feature)
    mv, sv, _, nv = val.stats(per_feature)
    varies = (st > 0) & (st > 1e-6 * float(st.max())) & torch.isfinite(st) & torch.isfinite(sv)
    if not bool(varies.any()):
        return Verdict(NAME, "skip", "skipped: no input feature varies in training", "-", "")
    mt, st, kurt, mv, sv = (t[varies] for t in (mt, st, kurt, mv, sv))
    shift = (mv - mt).abs() / st
    ratio = sv / st
    z_mean = shift / math.sqrt(1 / nv + 1 / nt)
    z_var = (sv ** 2 - st ** 2).abs() / (st ** 2 * ((kurt - 1).clamp_min(1e-3) * (1 / nv + 1 / nt)).sqrt())
    scaled = ((ratio > RATIO) | (ratio < 1 / RATIO)) & (z_var > Z)
    moved = (shift > SHIFT) & (z_mean > Z)
    off = scaled | moved
    features = int(varies.sum())
    median_ratio, median_shift = float(ratio.median()), float(shift.median())
    what = (f"{features} input features" if per_feature else "the inputs as a whole (rows of varying shape)")
    reading = (f"the median feature's std is {median_ratio:.3g}x the training std and its mean "
               f"{median_shift:.2g} training stds from the training mean")
    if 2 * int(off.sum()) < features:
        return Verdict(NAME, "pass", f"{nv} validation rows vs {nt} training rows over {what}: {reading}", "-")
    return Verdict(NAME, "warn", f"the validation inputs are on another scale than the training inputs: "
                   f"{int(off.sum())} of {what} differ far beyond sampling noise ({nv} validation rows, {nt} "
                   f"training rows); {reading}",
                   f"validation inputs distributed like the training inputs (std within {RATIO:g}x, mean within "
                   f"{SHIFT:g} training stds)",
                   "the validation set is not preprocessed like the training set (standardized with the training "
                   "mean and std, divided by 255, ...): apply the training set's exact preprocessing, with the "
                   "training statistics, to the validation inputs; the validation error reads the mismatch, not "
                   "overfitting")



class SplitInputs:
    """The training inputs (the first argument of the training forwards on observed steps) and the validation
    inputs (that of the forwards without gradients since the last step, when the first ``w.validate()`` follows,
    those on a training batch only when there are no others, else that of the eval-mode forwards with gradients:
    kept by reference, 16 batches and 2^24 values at most, and read then)."""

    def __init__(self):
        self.train, self.val = Moments(), Moments()
        self._pending: list[torch.Tensor] = []
        self._on_training: list[torch.Tensor] = []  # the forwards without gradients on a training batch
        self._graded: list[torch.Tensor] = []  # the eval-mode forwards with gradients since the last step

    def training(self, x) -> None:
        self.train.add(x)

    def no_grad(self, x, on_training: bool = False) -> None:
        """A forward without gradients (``on_training``: on a training batch, a training accuracy logged)."""
        self._keep(self._on_training if on_training else self._pending, x)

    def eval_with_grad(self, x) -> None:
        """An eval-mode forward with gradients enabled: a validation's when none without gradients precedes
        ``w.validate()``."""
        self._keep(self._graded, x)

    def _keep(self, kept: list[torch.Tensor], x) -> None:
        if isinstance(x, torch.Tensor) and x.is_floating_point() and not self.val.n and len(kept) < 16 and \
                sum(t.numel() for t in kept) + x.numel() <= 2 ** 24:
            kept.append(x.detach())

    def stepped(self) -> None:
        """An optimizer step: the forwards without gradients before it were not a validation's."""
        self._pending, self._on_training, self._graded = [], [], []

    def validated(self) -> None:
        """``w.validate()``: the forwards without gradients since the last step were the validation's (the
        eval-mode ones with gradients when there are none)."""
        if not self.val.n:
            batches = self._pending or self._on_training or self._graded
            for i in first_of_each(batches):  # a batch given twice (accuracy, then loss) is read once
                self.val.add(batches[i])
        self._pending, self._on_training, self._graded = [], [], []

    def verdict(self) -> Verdict | None:
        return validation_inputs(self.train, self.val)
