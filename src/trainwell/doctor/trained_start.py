"""A model that already predicts its labels before its first update: its weights were trained before.

Random initial weights predict labels at chance, whatever the data: their accuracy is the most frequent class's
share at best (a bias set to the label prior answers that class everywhere), and a label leaked into the inputs is
learned, not known at initialization. An accuracy above that share by three binomial standard errors, on the batch
``doctor.check`` is given or on a watched loop's first batch, says the weights were fitted to such data before: a
model reused from an earlier cross-validation fold (whose validation fold it has trained on), or loaded weights.
"""

from __future__ import annotations

import math

import torch

#: what a model trained before a cross-validation fold is told to do
ADVICE = ("build a new model and optimizer for every fold: one reused from an earlier fold has trained on this "
          "fold's validation examples")
#: examples needed to read the accuracy
MIN_EXAMPLES = 20


def predicts_labels(scores: torch.Tensor | None, labels) -> str | None:
    """A sentence naming the accuracy when the (N, C) class ``scores`` predict the (N,) ``labels`` above the most
    frequent class's share by three binomial standard errors (labels outside [0, C), ignore_index, left out); None
    otherwise, or when they are not class scores and labels."""
    if scores is None or scores.dim() != 2 or scores.shape[1] < 2 or not isinstance(labels, torch.Tensor) or \
            labels.is_floating_point() or labels.dim() != 1 or len(labels) != len(scores):
        return None
    kept = (labels >= 0) & (labels < scores.shape[1])
    if int(kept.sum()) < MIN_EXAMPLES:
        return None
    y = labels[kept]
    accuracy = float((scores[kept].argmax(1) == y).float().mean())
    majority = float(torch.bincount(y).max()) / len(y)
    if accuracy <= majority + 3 * math.sqrt(max(majority * (1 - majority), 0.05) / len(y)):
        return None
    return f"accuracy {accuracy:.0%} before any update, the most frequent class {majority:.0%}"
