"""The doctor on habits of users' own loops: an optimizer built layer by layer over a shared block, gradients
clipped by value, and the causes named when the data's scale or the loss's form is what fails."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

from .user_loop import epoch


class SharedBlockNet(nn.Module):
    """One residual block applied at four depths (ALBERT-style weight sharing)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Linear(20, 32)
        block = nn.Sequential(nn.Linear(32, 32), nn.Tanh())
        self.layers = nn.ModuleList([block] * 4)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        h = self.inp(x)
        for layer in self.layers:
            h = h + layer(h)
        return self.head(h)


def _sgd(model, per_layer):
    params = [p for m in [model.inp, *model.layers, model.head] for p in m.parameters()] if per_layer \
        else model.parameters()
    with warnings.catch_warnings():  # torch warns once about the duplicates, and keeps them
        warnings.simplefilter("ignore")
        return torch.optim.SGD(params, lr=0.05, momentum=0.9)


@pytest.mark.slow  # 0.32 s each on a 2-core CPU (RESULTS §51)
def test_a_shared_block_listed_once_per_position_in_the_optimizer_fails_in_check_and_watch():
    torch.manual_seed(1)
    x = torch.randn(256, 20)
    y = x[:, :4].argmax(1)
    for per_layer in (False, True):
        model = SharedBlockNet()
        opt = _sgd(model, per_layer)
        held = next(v for v in doctor.check(model, x, y, nn.CrossEntropyLoss(), optimizer=opt)
                    if v.check == "optimizer holds the parameters") if per_layer else None
        loop = next(v for v in epoch(model, opt, x, y).report() if v.check == "loop: optimizer holds the parameters")
        if per_layer:
            assert held.status == "fail" and "layers.0.0.*" in held.value and "4 times" in held.value
            assert loop.status == "fail" and "4 times" in loop.value and "model.parameters()" in loop.advice
        else:
            assert loop.status == "pass"


def _clipped_by_value(clip_value, make_opt):
    torch.manual_seed(0)
    x = torch.randn(1024, 20)
    y = (x[:, :4] + x[:, 4:8]).argmax(1)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = make_opt(model.parameters())
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, len(x), 32):
            loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), clip_value)
            opt.step()
            w.step(loss)
    report = w.report()
    return {v.check: v for v in report}


@pytest.mark.slow  # 0.40 s each on a 2-core CPU (RESULTS §51)
def test_clip_grad_value_below_the_gradients_elements_is_named_and_the_flat_curve_defers_to_it():
    sgd = lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)  # noqa: E731
    tight = _clipped_by_value(1e-4, sgd)
    flow = tight["loop: gradients at optimizer.step()"]
    assert flow.status == "warn" and "clipped by value" in flow.value and "+-0.0001" in flow.value
    assert "clip_value" in flow.advice
    curve = tight["learning rate (loss curve)"]
    assert curve.status not in ("fail", "warn")
    assert _clipped_by_value(1.0, sgd)["loop: gradients at optimizer.step()"].status == "pass"
    adam = _clipped_by_value(1e-4, lambda ps: torch.optim.Adam(ps, lr=1e-3))
    assert adam["loop: gradients at optimizer.step()"].status == "info"


class TabularNet(nn.Module):
    """Embeddings for two categorical columns beside numeric features: ``model(categories, numeric)``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.city, self.plan = nn.Embedding(10, 4), nn.Embedding(5, 3)
        self.mlp = nn.Sequential(nn.Linear(4 + 3 + 2, 64), nn.ReLU(), nn.Linear(64, 3))

    def forward(self, cat, num):
        return self.mlp(torch.cat([self.city(cat[:, 0]), self.plan(cat[:, 1]), num], 1))


@pytest.mark.slow  # 0.41 s each on a 2-core CPU (RESULTS §51)
def test_numeric_features_in_raw_units_are_named_as_the_cause_of_a_failed_overfit():
    g = torch.Generator().manual_seed(0)
    cat = torch.stack([torch.randint(10, (256,), generator=g), torch.randint(5, (256,), generator=g)], 1)
    age, income = 20 + 50 * torch.rand(256, generator=g), 20000 + 80000 * torch.rand(256, generator=g)
    y = torch.bucketize((cat[:, 0] % 3).float() + (age - 45) / 15 + (income - 60000) / 25000,
                        torch.tensor([0.0, 1.5]))
    report = doctor.check(TabularNet(), (cat, torch.stack([age, income], 1)), y, nn.CrossEntropyLoss())
    overfit = next(v for v in report if v.check == "overfit a tiny subset")
    assert overfit.status == "fail"
    assert overfit.advice.startswith("fix 'initial loss' first: the input x[1] is far from unit scale")
    scaled = torch.stack([(age - 45) / 14.4, (income - 60000) / 23000], 1)
    fine = doctor.check(TabularNet(), (cat, scaled), y, nn.CrossEntropyLoss())
    assert next(v for v in fine if v.check == "overfit a tiny subset").status == "pass"


@pytest.mark.slow  # 0.38 s each on a 2-core CPU (RESULTS §51)
def test_an_autoencoder_on_raw_sensor_units_names_the_targets_scale_for_its_failed_overfit():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(256, 3, generator=g) @ torch.randn(3, 12, generator=g)
    x = raw * 15 + torch.tensor([290.0] * 4 + [1013.0] * 4 + [0.0] * 4)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 3), nn.Linear(3, 32), nn.ReLU(),
                          nn.Linear(32, 12))
    overfit = next(v for v in doctor.check(model, x, x, nn.MSELoss()) if v.check == "overfit a tiny subset")
    assert overfit.status == "fail" and "far from" in overfit.advice.split(";")[0]
    assert "capacity" not in overfit.advice.split(";")[0]


def _dice_loss(logits, y, softmax=True, classes=3):
    """A soft Dice loss written by hand over the batch (1 - mean per-class Dice)."""
    p = logits.softmax(1) if softmax else logits
    onehot = F.one_hot(y, classes).permute(0, 3, 1, 2).float()
    inter = (p * onehot).sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (p.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)).mean()


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_dice_loss_on_raw_scores_has_its_baseline_failure_traced_to_the_unbounded_loss():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, 12, 12, generator=g) * 0.3, torch.zeros(64, 12, 12, dtype=torch.long)
    for i in range(64):
        r, c = torch.randint(0, 7, (2,), generator=g).tolist()
        y[i, r : r + 5, c : c + 5] = 1 + i % 2
        x[i, 1 + i % 2, r : r + 5, c : c + 5] += 1.0
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 1))
    report = {v.check: v for v in doctor.check(model, x, y, lambda o, t: _dice_loss(o, t, softmax=False))}
    assert str(report["overfit a tiny subset"].value).startswith("the loss falls without bound")
    baseline = report["input-independent baseline"]
    assert baseline.status in ("fail", "warn") and "margin" not in baseline.advice
    assert baseline.advice.startswith("fix 'overfit a tiny subset' first")
