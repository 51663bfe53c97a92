"""Skip-gram with negative sampling (Mikolov et al. 2013), its input vectors initialized uniform in +-0.5/d and its
output vectors at zero, under Adam at 1e-2: ||dw|| / ||w|| is over 0.1 on the first steps (the vectors are 50x
smaller than a default embedding's) and settles near 3e-3 as they grow. The monitor warned "updates are large: lower
the learning rate" from the first observed step alone; a warning whose ratio stays inside the band from mid-run on
and ends within 10x of the healthy ~1e-3, the loss having fallen, is information. A rate that keeps the updates large
is still warned."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

V = 50
RATIO = "monitor: update/weight ratio"


class SGNS(nn.Module):
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


def sgns_loss(out):
    pos, neg = out
    return -(F.logsigmoid(pos) + F.logsigmoid(-neg).sum(1)).mean()


def _ratio_verdict(lr):
    torch.manual_seed(0)
    n = 4096
    center = torch.randint(0, V, (n,))
    context = (center // 10) * 10 + torch.randint(0, 10, (n,))  # 5 topics of 10 words
    model = SGNS()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with doctor.watch(model, opt, every=8) as w:
        for _ in range(4):
            perm = torch.randperm(n)
            for i in range(0, n, 256):
                idx = perm[i : i + 256]
                loss = sgns_loss(model(center[idx], context[idx], torch.randint(0, V, (len(idx), 5))))
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
    report = w.report()
    return report[RATIO] if RATIO in report.checks else None


@pytest.mark.slow  # about a second
def test_large_first_updates_of_small_word_vectors_that_settle_are_information():
    v = _ratio_verdict(1e-2)
    assert v is not None and v.status == "info" and "settled" in v.value, v


@pytest.mark.slow  # about a second
def test_updates_that_stay_large_are_still_warned():
    v = _ratio_verdict(1.0)
    assert v is not None and v.status == "warn" and "lower the learning rate" in v.advice, v
