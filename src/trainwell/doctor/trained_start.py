"""A model that already predicts its labels before its first update: its weights were trained before.

Random initial weights predict labels at chance, whatever the data: their accuracy is the most frequent class's
share at best (a bias set to the label prior answers that class everywhere), and a label leaked into the inputs is
learned, not known at initialization. An accuracy above that share by three binomial standard errors, on the batch
``doctor.check`` is given or on a watched loop's first batch, says the weights were fitted to such data before: a
model reused from an earlier cross-validation fold (whose validation fold it has trained on), or loaded weights.

Examples are not independent trials when the data are a few tight clusters: a random network gives every example of
a cluster nearly the same scores, so it maps whole clusters to classes, and with four clusters it names two of them
right about one time in four. The evidence is therefore also counted per group of examples with near-identical scores
(each within GROUP_RADIUS of the scores' median pairwise distance from the group's first example): the mean of the
groups' accuracies must beat the most frequent class's share by three standard errors of as many trials as there
are groups. Spread-out scores form many groups; a small binary batch forms few, and is read only when far beyond.
"""

from __future__ import annotations

import math

import torch

#: what a model trained before a cross-validation fold is told to do
ADVICE = ("build a new model and optimizer for every fold: one reused from an earlier fold has trained on this "
          "fold's validation examples")
#: examples needed to read the accuracy
MIN_EXAMPLES = 20
#: radius of a group of near-identical scores, as a share of the scores' median pairwise distance
GROUP_RADIUS = 0.4
#: examples grouped at most (a random subset beyond)
MAX_GROUPED = 1024


def _beats_chance(accuracy: float, majority: float, trials: int) -> bool:
    """Whether ``accuracy`` exceeds the ``majority`` share by three binomial standard errors of ``trials``."""
    return accuracy > majority + 3 * math.sqrt(max(majority * (1 - majority), 0.05) / trials)


def score_groups(scores: torch.Tensor) -> torch.Tensor:
    """(N,) group index of each row of the (N, C) ``scores``: a row joins the first group whose first row lies within
    GROUP_RADIUS of the median pairwise distance, else it starts a group (no chaining across a spread of scores)."""
    s = scores.double()
    distances = torch.cdist(s, s)
    median = float(distances[torch.triu(torch.ones_like(distances, dtype=torch.bool), 1)].median())
    radius = GROUP_RADIUS * median
    group = torch.full((len(s),), -1, dtype=torch.long)
    leaders = []
    for i in range(len(s)):
        if group[i] >= 0:
            continue
        members = (group < 0) & (distances[i] <= radius)
        members[i] = True  # a row of non-finite scores is a group of its own
        group[members] = len(leaders)
        leaders.append(i)
    return group


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
    y, kept_scores = labels[kept], scores[kept].detach().float()
    hits = (kept_scores.argmax(1) == y).float()
    accuracy = float(hits.mean())
    majority = float(torch.bincount(y).max()) / len(y)
    if not _beats_chance(accuracy, majority, len(y)):
        return None
    if len(y) > MAX_GROUPED:
        chosen = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:MAX_GROUPED]
        hits, kept_scores = hits[chosen], kept_scores[chosen]
    group = score_groups(kept_scores)
    groups = int(group.max()) + 1
    per_group = torch.zeros(groups, dtype=torch.double).index_add_(0, group, hits.double()) / \
        torch.bincount(group, minlength=groups).double()
    if not _beats_chance(float(per_group.mean()), majority, groups):
        return None
    return f"accuracy {accuracy:.0%} before any update, the most frequent class {majority:.0%}"
