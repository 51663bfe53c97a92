"""Inputs far below unit scale (pixels divided by 255 twice): named by check ('input scale') and watch
('loop: inputs'), with the verdicts that follow from them deferring; legitimate small-scale inputs pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.input_scale import SMALL, nonzero_abs_quantile

D, C = 16, 4


def blobs(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(C, D, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, C, (n,), generator=g)
    return centers[y] + torch.randn(n, D, generator=g), y


def mlp(bn=False):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D, 64), *([nn.BatchNorm1d(64)] if bn else []), nn.ReLU(), nn.Linear(64, 64),
                         nn.ReLU(), nn.Linear(64, C))


def watched(x, y, model, lr=0.05, epochs=3):
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


def checked(x, y, model):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    return {v.check: v for v in doctor.check(model, x[:256], y[:256], F.cross_entropy, optimizer=opt)}


def test_nonzero_quantile_reads_sparse_features_at_the_scale_of_their_ones():
    onehot = F.one_hot(torch.arange(300) % 1000, 1000).float()  # 99.9% zeros
    assert float(torch.quantile(onehot.abs().reshape(-1), 0.99)) == 0.0
    assert nonzero_abs_quantile(onehot) == 1.0


def test_watch_names_inputs_divided_twice_and_the_monitors_defer():
    x, y = blobs()
    tiny = (x - x.min()) / (x.max() - x.min()) / 255  # scaled to [0, 1], then by 255 once more
    got = watched(tiny, y, mlp())
    assert got["loop: inputs"].status == "warn" and "far below unit scale" in got["loop: inputs"].value
    for name in ("learning rate (loss curve)", "monitor: update/weight ratio", "monitor: vanishing gradients",
                 "monitor: dead ReLUs"):
        if name in got:
            assert got[name].status not in ("warn", "fail"), (name, got[name].value)
    assert "raise the learning rate" not in " ".join(str(v.advice) for v in got.values() if v.status == "warn")


@pytest.mark.slow  # 0.35 s each on a 2-core CPU (RESULTS §51)
def test_check_names_inputs_divided_twice_before_the_failed_fit():
    x, y = blobs()
    tiny = (x - x.min()) / (x.max() - x.min()) / 255
    torch.manual_seed(0)
    sigmoid = nn.Sequential(nn.Linear(D, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, C))
    got = checked(tiny, y, sigmoid)
    assert got["input scale"].status == "warn" and "far below unit scale" in got["input scale"].value
    flagged = [v for v in got.values() if v.check in ("overfit a tiny subset", "input-independent baseline",
                                                      "variance propagation", "dead units")
               and v.status in ("warn", "fail")]
    assert flagged, "the tiny inputs should leave the sigmoid net unable to fit 20 examples"
    assert all("fix 'input scale' first" in v.advice for v in flagged)
    torch.manual_seed(0)
    healthy = checked(x, y, nn.Sequential(nn.Linear(D, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Sigmoid(),
                                          nn.Linear(64, C)))
    assert "input scale" not in healthy and healthy["overfit a tiny subset"].status == "pass"


@pytest.mark.slow  # seconds each
def test_legitimate_small_scale_inputs_pass():
    x, y = blobs()
    standardized = (x - x.mean(0)) / x.std(0)
    onehot = F.one_hot(torch.arange(512) % D, D).float() + 0.0 * x  # one-hot rows
    audio = 0.1 * torch.tanh(x)  # a quiet recording in [-1, 1]
    for inputs in (standardized, onehot, audio, x / x.abs().max()):
        assert nonzero_abs_quantile(inputs) > SMALL
        assert "input scale" not in checked(inputs, y, mlp())
        assert watched(inputs, y, mlp(), epochs=1)["loop: inputs"].status == "pass"


@pytest.mark.slow  # 0.46 s each on a 2-core CPU (RESULTS §51)
def test_batchnorm_after_the_first_layer_is_left_alone_only_where_it_restores_the_scale():
    x, y = blobs()
    standardized = (x - x.mean(0)) / x.std(0)
    restored = standardized / 150  # the first layer's output variance well above BatchNorm's eps
    assert nonzero_abs_quantile(restored) < SMALL
    assert "input scale" not in checked(restored, y, mlp(bn=True))
    assert watched(restored, y, mlp(bn=True), epochs=1)["loop: inputs"].status == "pass"
    tiny = (x - x.min()) / (x.max() - x.min()) / 255  # its variance under eps: BatchNorm divides by sqrt(eps)
    assert checked(tiny, y, mlp(bn=True))["input scale"].status == "warn"
    assert watched(tiny, y, mlp(bn=True), epochs=1)["loop: inputs"].status == "warn"


def layer_norm_mlp(bias: bool):
    """The first Linear feeds a LayerNorm: with no bias it divides the input's scale out of every example."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D, 64, bias=bias), nn.LayerNorm(64), nn.ReLU(), nn.Linear(64, C))


@pytest.mark.slow  # 0.30 s each on a 2-core CPU (RESULTS §51)
def test_layer_norm_after_a_bias_free_first_layer_restores_the_scale_and_after_a_biased_one_does_not():
    x, y = blobs()
    small = (x - x.mean(0)) / x.std(0) / 150  # a unit converted twice; the first layer's output variance above eps
    assert nonzero_abs_quantile(small) < SMALL
    assert "input scale" not in checked(small, y, layer_norm_mlp(bias=False))
    assert watched(small, y, layer_norm_mlp(bias=False), epochs=1)["loop: inputs"].status == "pass"
    # with a bias the LayerNorm normalizes the bias, the same for every example: the input's part stays small
    assert checked(small, y, layer_norm_mlp(bias=True))["input scale"].status == "warn"
    assert watched(small, y, layer_norm_mlp(bias=True), epochs=1)["loop: inputs"].status == "warn"


@pytest.mark.slow  # seconds each
def test_group_norm_after_a_bias_free_convolution_is_read_like_a_batchnorm():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (256,), generator=g)
    images = torch.randn(256, 1, 8, 8, generator=g) + y[:, None, None, None] * torch.linspace(-1, 1, 8)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.GroupNorm(2, 8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(512, 2))
    restored = images / 255 / 255 * 350  # its output variance above GroupNorm's eps
    tiny = images / 255 / 255 * 60  # under it: GroupNorm divides by sqrt(eps)
    assert nonzero_abs_quantile(restored) < SMALL
    assert "input scale" not in checked(restored, y, model)
    assert checked(tiny, y, model)["input scale"].status == "warn"
