"""A classifier whose forward returns a ReLU's output as its scores (its hidden block's activation, the final
Linear forgotten; or a ReLU put after the last layer): cross-entropy then reads scores that are never negative.
The loss's verdict asks for a ReLU (or other non-negative activation) after the last layer, and the output units
that die there are named once, as a consequence of it, not as a learning-rate or init problem."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.monitors import OUTPUT_UNITS


def _watched(model: nn.Module, lr: float) -> dict:
    torch.manual_seed(0)
    x = torch.randn(512, 20)
    y = (x @ torch.randn(20, 10)).argmax(1)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(3):
            perm = torch.randperm(512)
            for i in range(0, 512, 64):
                idx = perm[i:i + 64]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
    return {v.check: v for v in w.report()}


def test_scores_after_a_relu_ask_for_the_activation_and_explain_the_dead_outputs():
    torch.manual_seed(0)
    # the hidden block's activation returned as the scores: no Linear after the last ReLU
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
    report = _watched(model, lr=0.5)
    loss = report["loop: loss"]
    assert loss.status == "warn" and "non-negative" in loss.value
    assert "a ReLU (or other non-negative activation) after the last layer?" in loss.advice
    dead = report["monitor: dead ReLUs"]
    assert OUTPUT_UNITS in dead.value and dead.value.startswith("'3' (ReLU after Linear(64 -> 32)) at step")
    assert dead.status == "info" and "explained by 'loop: loss'" in dead.value
    assert "learning rate" not in dead.advice


def test_dead_hidden_units_of_a_healthy_head_keep_their_advice():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10))
    with torch.no_grad():
        model[0].bias.fill_(-10.0)  # most hidden units dead from the start
    report = _watched(model, lr=0.05)
    assert report["loop: loss"].status == "pass"
    dead = report["monitor: dead ReLUs"]
    assert dead.status == "warn" and OUTPUT_UNITS not in dead.value and "learning rate" in dead.advice
