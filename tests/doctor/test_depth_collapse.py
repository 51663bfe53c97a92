"""Weights initialized too small for a deep net (N(0, 0.01) in six tanh layers): the activations collapse through
depth, which watch names, and the learning-rate advice defers to it (a larger rate does not restore the signal);
variance-preserving and torch's default inits are not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.depth_collapse import NAME

D, C = 16, 4


def blobs(n=640, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(C, D, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, C, (n,), generator=g)
    x = centers[y] + torch.randn(n, D, generator=g)
    return (x - x.mean(0)) / x.std(0), y


def deep(act, init=None, depth=6, width=64):
    torch.manual_seed(0)
    layers, d = [], D
    for _ in range(depth):
        layers += [nn.Linear(d, width), act()]
        d = width
    model = nn.Sequential(*layers, nn.Linear(d, C))
    for m in model.modules():
        if isinstance(m, nn.Linear) and init is not None:
            init(m.weight)
            nn.init.zeros_(m.bias)
    return model


def small(w):
    nn.init.normal_(w, 0.0, 0.01)


def watched(model, lr=0.01, epochs=3):
    x, y = blobs()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
            for i in range(0, len(x), 32):
                idx = perm[i : i + 32]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
    return {v.check: v for v in w.report()}


@pytest.mark.slow  # 0.28 s each on a 2-core CPU (RESULTS §51)
def test_small_init_in_a_deep_tanh_net_is_named_and_the_rate_advice_defers():
    got = watched(deep(nn.Tanh, small))
    assert got[NAME].status == "warn" and "xavier" in got[NAME].advice
    warned = [v for v in got.values() if v.status in ("warn", "fail")]
    assert not any("raise the learning rate" in (v.advice or "") for v in warned), [v.check for v in warned]
    for name in ("learning rate (loss curve)", "monitor: update/weight ratio", "monitor: vanishing gradients"):
        if name in got:
            assert got[name].status == "info" and NAME in got[name].value


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_small_init_in_a_deep_relu_net_names_he_init():
    got = watched(deep(nn.ReLU, small))
    assert got[NAME].status == "warn" and "kaiming" in got[NAME].advice
    assert got.get("monitor: dead ReLUs") is None or got["monitor: dead ReLUs"].status == "info"


@pytest.mark.slow  # seconds each
def test_variance_preserving_and_default_inits_are_not_named():
    assert NAME not in watched(deep(nn.Tanh, nn.init.xavier_normal_))
    assert NAME not in watched(deep(nn.ReLU, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu")))
    assert NAME not in watched(deep(nn.ReLU, depth=8), lr=0.05)  # torch's default init: 0.41x per layer
    assert NAME not in watched(deep(nn.Tanh, depth=8), lr=0.05)


@pytest.mark.slow  # seconds each
def test_check_points_a_failed_overfit_at_the_vanishing_signal():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, D, generator=g), torch.randint(0, C, (256,), generator=g)  # memorized, not learned
    model = deep(nn.Tanh, small, depth=8)
    got = {v.check: v for v in doctor.check(model, x[:256], y[:256], F.cross_entropy)}
    assert got["variance propagation"].status == "fail"
    assert got["overfit a tiny subset"].status == "fail"
    assert got["overfit a tiny subset"].advice.startswith("fix 'variance propagation' first")
