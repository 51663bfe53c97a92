"""LoRA-style fine-tuning (Hu et al. 2021): a pretrained MLP frozen whole, low-rank adapters beside each Linear
(B zero-initialized) trained on a new labelling. The frozen head's scores are as confident as its pretraining made
them, so the first loss on the new labels stands far above ln C; no init of the user's made it, and re-initializing
the frozen head (the advice for a large-init last layer) would discard what it learned: information, not a
warning. A trainable head that starts with large weights still warns."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.initial_loss import initial_loss


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, r: int = 4):
        super().__init__()
        self.base = base
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))

    def forward(self, x):
        return self.base(x) + x @ self.A.t() @ self.B.t() * 2.0


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g)
    return x, x[:, :5].argmax(1)


def _pretrained():
    torch.manual_seed(0)
    x, y = _data()
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 5))
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_a_frozen_pretrained_head_under_adapters_is_information():
    model = _pretrained()
    model.requires_grad_(False)
    model[0], model[2] = LoRALinear(model[0]), LoRALinear(model[2])
    x, y = _data()
    v = initial_loss(model, x, (y + 1) % 5, F.cross_entropy)  # the new task: another labelling of the rows
    assert v.value > 2 * math.log(5), v
    assert v.status == "info", v
    assert "'2.base' is frozen" in v.advice and "unfreeze" in v.advice, v


def test_a_trainable_head_with_large_weights_still_warns():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 5))
    with torch.no_grad():
        model[2].weight.mul_(30)
    x, y = _data()
    v = initial_loss(model, x, y, F.cross_entropy)
    assert v.status in ("warn", "fail"), v
    assert "small weights" in v.advice, v
