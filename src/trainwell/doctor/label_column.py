"""``loop: labels among the inputs``: the label left as a column of the features (target leakage).

Tabular code that builds the feature matrix from the whole table (``X = df.values`` or ``df.drop(columns=[...])``
with the label's name misspelt) and the labels from its label column hands the model its answer: the training and
validation losses fall to about 0, and the model is useless where the label is unknown.

Read on the observed steps from the forward's floating-point inputs of shape (rows, features), two features or
more, and the integer labels (or 0/1 float labels) given to ``w.step(loss, y=labels)``, one per row: a fail when on
:data:`MIN_READS` observed steps or more, every one read, one and the same column equals the labels on every row
while the labels take two values or more. A label passed as a tensor of its own (an ArcFace or CosFace margin head,
``head(features, labels)``; a conditional model's class input) is not a column and passes."""

from __future__ import annotations

import torch

from trainwell.doctor.verdict import Verdict

NAME = "loop: labels among the inputs"
MIN_READS = 3  # observed steps read, each with the column
MIN_ROWS = 16  # rows per read


class LabelColumns:
    """Per observed step: which input column equals the labels (None: none does; not kept: not read)."""

    def __init__(self):
        self.reads: list[tuple[int, int] | None] = []  # (input index, column) or None per read step

    def read(self, tensors: list, y) -> None:
        """One observed step's forward tensors and the labels given to ``w.step``."""
        if not isinstance(y, torch.Tensor) or y.is_complex() or len(self.reads) >= 16:
            return
        labels = y.detach().reshape(-1) if y.dim() == 2 and y.shape[1] == 1 else y.detach()
        if labels.dim() != 1 or len(labels) < MIN_ROWS or (labels.is_floating_point() and not bool(
                ((labels == 0) | (labels == 1)).all())) or bool((labels == labels[0]).all()):
            return
        inputs = [(k, t) for k, t in enumerate(tensors) if isinstance(t, torch.Tensor) and t.is_floating_point()
                  and t.dim() == 2 and t.shape[0] == len(labels) and t.shape[1] >= 2]
        if not inputs:
            return
        found = None
        for k, t in inputs:
            equal = (t.detach().to(labels.device).double() == labels.double()[:, None]).all(0)
            if bool(equal.any()):
                found = (k, int(equal.nonzero()[0]))
                break
        self.reads.append(found)

    def verdict(self) -> Verdict | None:
        """A fail when every read step (3 or more) found one and the same column equal to the labels."""
        if len(self.reads) < MIN_READS or self.reads[0] is None or any(r != self.reads[0] for r in self.reads):
            return None
        k, column = self.reads[0]
        where = f"column {column} of the inputs" if k == 0 else f"column {column} of the model's input {k}"
        return Verdict(NAME, "fail", f"{where} equals the labels on every row of {len(self.reads)} observed steps: "
                       "the label is among the features (target leakage), so the model reads its answer",
                       "features that do not hold the label", "drop the label's column from the features before "
                       "training (X = df.drop(columns=[label]).values): where the label is unknown the model has "
                       "nothing it learned to use")
