"""Attention-based multiple-instance learning (Ilse et al. 2018) trains on one bag per step, a few instances each:
the monitors' saturated share of a layer is read on that one bag. A bag of one bright instance saturates the gated
attention's tanh on its step, and the next snapshots read the layer far below the threshold again: ``info``, with
the last reading. An attention branch whose weights start 30x too wide stays saturated on every bag: a warning."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class GatedAttentionMIL(nn.Module):
    def __init__(self):
        super().__init__()
        self.feat = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
        self.V = nn.Linear(32, 16)
        self.U = nn.Linear(32, 16)
        self.w = nn.Linear(16, 1)
        self.cls = nn.Linear(32, 1)

    def forward(self, bag):
        h = self.feat(bag)
        a = torch.softmax(self.w(torch.tanh(self.V(h)) * torch.sigmoid(self.U(h))), dim=0)
        return self.cls((a * h).sum(0, keepdim=True)).squeeze(1)


def _saturation(bright_step: int | None, v_gain: float = 1.0):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = GatedAttentionMIL()
    with torch.no_grad():
        model.V.weight.mul_(v_gain)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=5) as w:
        for step in range(1, 101):
            bag = torch.randn(6, 16, generator=g)
            if step == bright_step:
                bag = bag[:1] * 25  # a bag of one bright instance
            label = (bag[:, 0] > 1).any().float().reshape(1)
            loss = F.binary_cross_entropy_with_logits(model(bag), label)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=label)
    return w.report()


def test_a_layer_saturated_on_one_bag_only_is_information():
    v = _saturation(bright_step=50)["monitor: saturated units"]
    assert v.status == "info" and "out of saturation again: the saturation came from that one batch" in v.value, v
    assert v.value.startswith("'F.tanh after V' at step 50"), v


def test_an_attention_branch_saturated_on_every_bag_still_warns():
    report = _saturation(bright_step=None, v_gain=30.0)
    v = report["monitor: saturated units"]
    assert v.status == "warn" and "out of saturation" not in v.value, v
