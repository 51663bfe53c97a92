"""Logits nearly equal within each row (the lecture's "small random numbers" initialization in a deep net, where
the activations shrink layer by layer) make cross-entropy on softmax(z) fit the gradient as well as cross-entropy
on z: the loss's reading must stay the plain one, not a double-softmax fail decided by round-off."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.loss_form import read_form


def _deep_tanh(std):
    torch.manual_seed(0)
    layers, width = [], 16
    for _ in range(6):
        layers += [nn.Linear(width, 64), nn.Tanh()]
        width = 64
    model = nn.Sequential(*layers, nn.Linear(64, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)
    return model


def test_nearly_equal_logits_read_as_cross_entropy():
    z = (1e-7 * torch.randn(32, 10, generator=torch.Generator().manual_seed(0))).requires_grad_()
    y = torch.arange(32) % 10
    F.cross_entropy(z, y).backward()
    assert read_form(z, z.grad)["form"] == "cross_entropy"


def test_double_softmax_on_spread_logits_is_still_named():
    z = (2 * torch.randn(32, 10, generator=torch.Generator().manual_seed(0))).requires_grad_()
    y = torch.arange(32) % 10
    F.cross_entropy(torch.softmax(z, 1), y).backward()
    assert read_form(z, z.grad)["form"] == "cross_entropy_on_probabilities"


def test_a_deep_net_with_a_tiny_init_is_not_read_as_a_double_softmax():
    model = _deep_tanh(0.01)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(256, 16, generator=g), torch.randint(0, 10, (256,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=4) as w:
        for i in range(0, 256, 32):
            loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 32])
    v = {v.check: v for v in w.report().verdicts}["loop: loss"]
    assert v.status != "fail" and "probabilities" not in v.value
