"""Skip-gram with negative sampling: the positive score and the negative scores are outputs whose targets are fixed by
their position, so one free constant output (positives high, negatives low) reaches a loss of ~0 at once. The model
cannot produce that constant (both scores are dot products of the same embeddings), and the loss reads no targets:
the input-independent baseline says it has no baseline to beat instead of failing with "the loss has nothing to
teach". A classifier whose labels are all one class, which the constant matches, still fails so."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.baseline import input_independent_baseline
from trainwell.doctor.inputs import as_inputs

V = 50


class SkipGram(nn.Module):
    def __init__(self, d=16):
        super().__init__()
        self.inp = nn.Embedding(V, d)
        self.out = nn.Embedding(V, d)
        nn.init.uniform_(self.inp.weight, -0.5 / d, 0.5 / d)
        nn.init.zeros_(self.out.weight)

    def forward(self, center, context, negatives):
        c = self.inp(center)
        pos = (c * self.out(context)).sum(-1)
        neg = torch.bmm(self.out(negatives), c[:, :, None]).squeeze(-1)
        return pos, neg


def sgns_loss(out, _y):
    pos, neg = out
    return -(F.logsigmoid(pos) + F.logsigmoid(-neg).sum(1)).mean()


def _batch():
    g = torch.Generator().manual_seed(0)
    center = torch.randint(0, V, (128,), generator=g)
    context = (center // 10) * 10 + torch.randint(0, 10, (128,), generator=g)
    negatives = torch.randint(0, V, (128, 5), generator=g)
    return as_inputs((center, context, negatives)), torch.zeros(128)


def test_skip_gram_is_not_told_its_loss_has_nothing_to_teach():
    torch.manual_seed(0)
    x, y = _batch()
    verdict = input_independent_baseline(SkipGram(), x, y, sgns_loss, steps=30)
    assert verdict.status == "skip", verdict
    assert "out of the model's reach" in verdict.value


def test_labels_the_constant_already_matches_still_fail():
    torch.manual_seed(0)
    x = torch.randn(128, 8)
    y = torch.zeros(128, dtype=torch.long)  # every label the same class
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    verdict = input_independent_baseline(model, x, y, F.cross_entropy, steps=30)
    assert verdict.status == "fail", verdict
    assert "nothing to teach" in verdict.advice
