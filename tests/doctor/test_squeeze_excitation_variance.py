"""A user's MobileNet-style network with squeeze-and-excitation (Hu et al. 2018): depthwise-separable blocks whose
gate, ``x * sigmoid(fc2(relu(fc1(pool(x)))))``, reads a pooled summary of the stream and returns a factor near 0.5.
The gate's layers carry the gate's gradient, about 16x below the stream's at its 1x1 convolutions: read as steps in
depth (fc1 -> fc2 -> pw, three blocks) they multiplied to a gradient ratio of 0.00023, and variance propagation
failed on a healthy init. The steps into and out of a gate's end are not read; a stream whose own layers shrink the
signal (0.05x weights, no normalization) still fails."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.activations import variance_propagation
from trainwell.doctor.residual_ends import gate_end_ids


class SE(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class DWSep(nn.Module):
    def __init__(self, cin, cout, stride, norm=True):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin) if norm else nn.Identity()
        self.se = SE(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout) if norm else nn.Identity()

    def forward(self, x):
        x = F.hardswish(self.bn1(self.dw(x)))
        return F.hardswish(self.bn2(self.pw(self.se(x))))


def mobile(norm=True):
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16) if norm else nn.Identity(),
                         nn.Hardswish(), DWSep(16, 32, 2, norm), DWSep(32, 64, 2, norm), DWSep(64, 64, 1, norm),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 4))


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 3, 16, 16, generator=g), torch.randint(0, 4, (64,), generator=g)


def test_the_gates_of_a_squeeze_excitation_network_are_not_steps_in_depth():
    torch.manual_seed(0)
    x, y = _batch()
    verdict = variance_propagation(mobile(), x, y, F.cross_entropy)
    assert verdict.status == "pass", verdict
    assert "3.se.fc2" in verdict.value and "end a gate" in verdict.value


def test_a_shrinking_stream_with_gates_still_fails():
    torch.manual_seed(0)
    model = mobile(norm=False)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d) and ".se." not in f".{name}.":
                m.weight.mul_(0.05)  # the bug: the stream's own layers scaled far below He's init
    x, y = _batch()
    assert variance_propagation(model, x, y, F.cross_entropy).status == "fail"


def test_a_gated_linear_unit_is_no_gate_end_of_another_path():
    lin = nn.Linear(8, 16)
    h = lin(torch.randn(4, 8))
    a, b = h.chunk(2, -1)
    out = a * torch.sigmoid(b)  # GLU: both factors come from the same layer, the stream itself
    assert gate_end_ids(out, [h]) == set()
    x = torch.relu(nn.Linear(8, 8)(torch.randn(4, 8)))  # the stream, computed from the input
    g = nn.Linear(8, 8)(x.mean(0, keepdim=True))
    se = x * torch.sigmoid(g)
    assert gate_end_ids(se, [g]) == {id(g)}
