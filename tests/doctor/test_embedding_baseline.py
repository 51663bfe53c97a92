"""The input-independent baseline on an embedding trained with class labels (:mod:`trainwell.doctor.
neighbour_classes`): a batch-hard triplet loss's held-out value stays near its margin (the constant embedding's)
while the embedding sorts the held-out examples by class, which their nearest training examples' labels show;
labels shuffled against the inputs still show nothing."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.baseline import input_independent_baseline
from trainwell.doctor.neighbour_classes import nearest_classes


def batch_hard_triplet(emb, y, margin=0.3):
    """Hermans et al. 2017: each anchor's farthest positive and nearest negative in the batch."""
    dist = torch.cdist(emb, emb)
    same = y.unsqueeze(0) == y.unsqueeze(1)
    hardest_pos = (dist * same.float()).max(1).values
    hardest_neg = dist.masked_fill(same, float("inf")).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16))

    def forward(self, x):
        return F.normalize(self.net(x), dim=1)


def _clusters(n=256, classes=8, spread=1.5):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, classes, (n,), generator=g)
    centres = torch.randn(classes, 16, generator=g)
    return centres[y] + spread * torch.randn(n, 16, generator=g), y


@pytest.mark.slow  # ~1 s each on a 2-core CPU
@pytest.mark.parametrize("shuffled", [False, True])
def test_a_triplet_embedding_is_judged_by_its_held_out_nearest_neighbours(shuffled):
    torch.manual_seed(0)
    x, y = _clusters()
    if shuffled:
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    verdict = input_independent_baseline(Embed(), x, y, batch_hard_triplet)
    if shuffled:
        assert verdict.status in ("warn", "fail")
    else:
        assert verdict.status == "pass" and "class predictions" in verdict.value


def test_nearest_classes_are_the_nearest_training_examples_labels():
    trained = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    held = torch.tensor([[1.0, 1.0], [9.0, -1.0], [-1.0, 8.0], [6.0, 0.0]])
    assert nearest_classes(held, trained, torch.tensor([4, 5, 6])).tolist() == [4, 5, 6, 5]
    assert nearest_classes(held, trained, torch.tensor([0.0, 1.0, 2.0])) is None  # not class labels
    assert nearest_classes(held[:, :1].squeeze(1), trained, torch.tensor([4, 5, 6])) is None  # not embeddings
