"""A classifier whose last layer is wider than its labels: it scores C classes while every label of the run lies in
0..K-1 with K at most C / 2.

Cross-entropy on ``nn.Linear(hidden, hidden)`` where ``nn.Linear(hidden, 10)`` was meant (the last Linear
forgotten, or the hidden width passed as the class count) runs without an error, since every label is below the
width, and trains: the softmax learns to put nothing on the C - K outputs no label names. Only the numbers show it:
the first loss starts near ln C, not ln K (ln 32 = 3.47 against ln 10 = 2.30), and the labels never reach the
upper outputs. A label set that skips classes is not read (every class of 0..K-1 must appear), nor is a model
with several outputs (a head per task, whose widths differ), nor targets of more than one label per row (token
sequences over a vocabulary that holds more tokens than a text uses).
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.memorizing_curve import mean_cross_entropy_classes
from trainwell.doctor.verdict import Verdict

#: the labels must leave at least this share of the outputs unused (K <= C / 2)
UNUSED_SHARE = 0.5
#: the fewest batches, and labelled rows per output, over which the unused outputs never came up as a label
MIN_BATCHES = 5
MIN_ROWS_PER_OUTPUT = 4
#: how the warning starts: the loss curve and the update sizes read as they are (the softmax learns to leave the
#: unused outputs out), so nothing downstream defers to it
UNUSED_OUTPUTS = "the model scores"


def wider_than_labels(verdict: Verdict, ys: list[torch.Tensor], steps: list[dict], multi_output: bool,
                      first_loss: float | None) -> Verdict:
    """``verdict`` (the labels' own, ``loop: labels``), or, where it passed, a warning when the scores' width C
    under a mean cross-entropy (:func:`~trainwell.doctor.memorizing_curve.mean_cross_entropy_classes`, the same C
    on every observed step) is at least twice the K classes the (B,) integer labels ``ys`` of the run span, every
    one of 0..K-1 present. ``first_loss``: the loop's first loss, set beside ln C and ln K."""
    classes = mean_cross_entropy_classes(steps)
    if verdict.status != "pass" or multi_output or classes is None or \
            any(s["classes"] != classes for s in steps if s.get("form") is not None):
        return verdict
    if len(ys) < MIN_BATCHES or any(y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool for y in ys):
        return verdict
    labels = torch.cat([y.long() for y in ys])
    labels = labels[labels >= 0]  # ignore_index
    if len(labels) < MIN_ROWS_PER_OUTPUT * classes:
        return verdict
    used = int(labels.max()) + 1
    if used < 2 or used > UNUSED_SHARE * classes or int((torch.bincount(labels) > 0).sum()) != used:
        return verdict
    start = ""
    if first_loss is not None and math.isfinite(first_loss):
        start = (f"; the first loss {first_loss:.3g} starts near ln {classes} = {math.log(classes):.3g}, not "
                 f"ln {used} = {math.log(used):.3g}")
    return Verdict(verdict.check, "warn", f"{UNUSED_OUTPUTS} {classes} classes but the labels of all {len(ys)} "
                   f"batches ({len(labels)} rows) are 0..{used - 1}: {classes - used} outputs are never a label"
                   f"{start}", f"as many outputs as classes ({used})",
                   f"give the last layer {used} outputs (nn.Linear(..., {used})): a last Linear forgotten, or the "
                   f"hidden width passed as the class count? (If the data holds {classes} classes, the labels of "
                   f"{classes - used} of them never reach the loop.)")
