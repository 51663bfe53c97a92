"""Binary and multi-label classifiers trained with binary cross-entropy, written as a user writes them: doctor.check
judges a loss wrapped in a lambda at ln 2 and names BCEWithLogitsLoss given sigmoid(outputs); doctor.watch reads
the loss's reduction from its gradient and fails that double sigmoid."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.binary_floor import read_binary

pytestmark = pytest.mark.slow  # each test trains a user's loop (0.1-0.6 s): the fast set keeps its budget

D = 20


class Tagger(nn.Module):
    """A small MLP giving one logit per label (``k`` labels); ``squash`` ends it with torch.sigmoid."""

    def __init__(self, k=5, squash=False):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(D, 64), nn.Linear(64, 64), nn.Linear(64, k)
        self.squash = squash

    def forward(self, x):
        z = self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))
        return torch.sigmoid(z) if self.squash else z


def _data(k=5, n=1024, soft=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, D, generator=g)
    scores = x @ torch.randn(D, k, generator=g)
    y = torch.sigmoid(scores) if soft else (scores > 0.3).float()
    return x, y


CRIT = nn.BCEWithLogitsLoss()
LOSSES = {
    "logits": lambda out, t: CRIT(out, t),
    "functional_logits": lambda out, t: F.binary_cross_entropy_with_logits(out, t),
    "bce_on_sigmoid": lambda out, t: F.binary_cross_entropy(torch.sigmoid(out), t),
    "sigmoid_into_logits_loss": lambda out, t: CRIT(torch.sigmoid(out), t),
    "functional_sigmoid_into_logits_loss": lambda out, t: F.binary_cross_entropy_with_logits(out.sigmoid(), t),
}


def _check(loss, k=5, soft=False, model=None):
    x, y = _data(k, soft=soft)
    torch.manual_seed(0)
    model = model or Tagger(k)
    return doctor.check(model, x[:256], y[:256], LOSSES[loss] if isinstance(loss, str) else loss,
                        optimizer=torch.optim.Adam(model.parameters(), 1e-3))


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("loss", ["sigmoid_into_logits_loss", "functional_sigmoid_into_logits_loss"])
def test_check_fails_bce_with_logits_given_sigmoid_outputs(loss, k):
    v = _check(loss, k)["overfit a tiny subset"]
    assert v.status == "fail" and "BCEWithLogitsLoss is given sigmoid(outputs)" in v.advice, v
    assert "pass the raw logits" in v.advice


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("loss", ["logits", "functional_logits", "bce_on_sigmoid"])
def test_check_passes_the_healthy_twins(loss, k):
    r = _check(loss, k)
    assert r["overfit a tiny subset"].status == "pass", r["overfit a tiny subset"]
    assert not any("sigmoid(outputs)" in f"{v.value} {v.advice}" for v in r), r


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("loss", ["logits", "functional_logits"])
def test_check_judges_a_wrapped_bce_with_logits_against_ln_2(loss, soft):
    v = _check(loss, soft=soft)["initial loss"]
    assert v.status == "pass" and "ln 2" in v.expected, v
    # oracle: the value expected is the loss on zero logits, ln 2 whatever the targets
    assert abs(float(v.expected.rsplit("= ", 1)[1]) - math.log(2)) < 1e-3, v


def test_check_judges_a_summed_wrapped_bce_with_logits_and_large_initial_logits():
    x, y = _data()
    torch.manual_seed(0)
    model = Tagger()
    with torch.no_grad():
        model.out.weight.mul_(30.0)  # logits of std ~10 at init: far above ln 2 per output
    loss = lambda out, t: F.binary_cross_entropy_with_logits(out, t, reduction="sum")  # noqa: E731
    v = doctor.check(model, x[:256], y[:256], loss, optimizer=torch.optim.Adam(model.parameters(), 1e-3))[
        "initial loss"]
    assert v.status in ("warn", "fail") and "ln 2" in v.expected, v
    assert abs(float(v.expected.rsplit("= ", 1)[1]) - 256 * 5 * math.log(2)) < 1e-2, v


def _watch(loss, k=5, epochs=3, squash=False):
    x, y = _data(k)
    torch.manual_seed(0)
    model = Tagger(k, squash)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = LOSSES.get(loss, loss) if isinstance(loss, str) else loss
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            for xb, yb in loader:
                out = model(xb)
                loss_value = loss_fn(out, yb)
                opt.zero_grad()
                loss_value.backward()
                opt.step()
                w.step(loss_value, y=yb)
    return w.report()


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("loss", ["sigmoid_into_logits_loss", "functional_sigmoid_into_logits_loss"])
def test_watch_fails_bce_with_logits_given_sigmoid_outputs_and_the_curve_defers(loss, k):
    r = _watch(loss, k)
    v = r["loop: loss"]
    assert v.status == "fail" and v.value.startswith("BCEWithLogitsLoss is given sigmoid(outputs)"), v
    curve = r["learning rate (loss curve)"]
    assert curve.status == "info" and "explained by 'loop: loss'" in curve.value, curve


@pytest.mark.parametrize("k", [1, 5])
def test_watch_reads_a_plain_bce_with_logits_loop_as_a_mean(k):
    v = _watch(nn.BCEWithLogitsLoss(), k)["loop: loss"]
    assert v.status == "pass" and v.value.startswith(f"mean binary cross-entropy with logits over {64 * k} output"), v


def test_watch_reads_bce_on_a_sigmoid_as_a_mean_on_probabilities():
    v = _watch(nn.BCELoss(), squash=True)["loop: loss"]
    assert v.status == "pass" and v.value.startswith("mean binary cross-entropy on probabilities"), v


def test_watch_names_a_summed_bce_with_logits():
    r = _watch(nn.BCEWithLogitsLoss(reduction="sum"), epochs=1)
    v = r["loop: loss"]
    assert v.status == "info" and v.value.startswith("summed binary cross-entropy with logits over 320 output"), v


def test_watch_reads_a_per_example_sum():
    loss = lambda out, t: F.binary_cross_entropy_with_logits(out, t, reduction="sum") / len(out)  # noqa: E731
    v = _watch(loss, epochs=1)["loop: loss"]
    assert v.status == "pass" and "summed over each example's outputs" in v.value, v


def test_read_binary_recovers_targets_and_floor_of_a_double_sigmoid():
    g = torch.Generator().manual_seed(2)
    z = (3 * torch.randn(32, 4, generator=g, dtype=torch.float64)).requires_grad_(True)
    y = torch.rand(32, 4, generator=g, dtype=torch.float64).round()
    loss = F.binary_cross_entropy_with_logits(torch.sigmoid(z), y)
    loss.backward()
    read = read_binary(z.detach(), z.grad, float(loss.detach()))
    assert read["on"] == "sigmoid_logits" and read["reduction"] == "mean"
    assert torch.allclose(read["targets"], y, atol=1e-9)
    # oracle: the lowest value over inputs in [0, 1], by a fine grid
    s = torch.linspace(0, 1, 10001, dtype=torch.float64)
    lowest = (F.softplus(s)[None, :] - y.reshape(-1, 1) * s[None, :]).min(1).values.mean()
    assert abs(read["floor"] - float(lowest)) < 1e-6


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.slow  # 0.19 s each on a 2-core CPU (RESULTS §51)
def test_watch_fails_a_sigmoid_layer_before_bce_with_logits_naming_the_layer(k, soft):
    x, y = _data(k, soft=soft)
    torch.manual_seed(0)
    model = nn.Sequential(Tagger(k), nn.Sigmoid())
    r = _watched_loop(model, nn.BCEWithLogitsLoss(), x, y)
    v = r["loop: loss"]
    assert v.status == "fail" and v.value.startswith("BCEWithLogitsLoss is given sigmoid(outputs)"), v
    assert "nn.Sigmoid (module '1')" in v.value and "remove the Sigmoid module '1'" in v.advice, v
    curve = r["learning rate (loss curve)"]
    assert "explained by 'loop: loss'" in curve.value, curve


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_watch_fails_a_sigmoid_in_forward_before_bce_with_logits():
    x, y = _data()
    torch.manual_seed(0)
    v = _watched_loop(Tagger(squash=True), nn.BCEWithLogitsLoss(), x, y)["loop: loss"]
    assert v.status == "fail" and "all lie inside (0, 1)" in v.value, v


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_check_fails_a_sigmoid_layer_before_bce_with_logits_naming_it():
    v = _check(nn.BCEWithLogitsLoss(), model=nn.Sequential(Tagger(), nn.Sigmoid()))["overfit a tiny subset"]
    assert v.status == "fail" and "Sigmoid (module '1')" in v.advice, v


def _watched_loop(model, loss_fn, x, y, scaler=None, epochs=2):
    """A user's loop over shuffled batches, under ``scaler`` (a GradScaler) when given: ``w.step`` gets the loss
    before it is scaled."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    with doctor.watch(model, opt, every=4) as w:
        for _ in range(epochs):
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                opt.zero_grad()
                if scaler is None:
                    loss.backward()
                    opt.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                w.step(loss, y=yb)
    return w.report()


@pytest.mark.parametrize("loss, status, start", [
    (nn.BCEWithLogitsLoss(), "pass", "mean binary cross-entropy with logits over 320 output elements"),
    (LOSSES["sigmoid_into_logits_loss"], "fail", "BCEWithLogitsLoss is given sigmoid(outputs)"),
    (nn.BCEWithLogitsLoss(reduction="sum"), "info", "summed binary cross-entropy with logits over 320")])
@pytest.mark.slow  # ~1.0 s: a watched loop or check run
def test_watch_reads_binary_cross_entropy_under_a_grad_scaler(loss, status, start):
    x, y = _data()
    torch.manual_seed(0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    v = _watched_loop(Tagger(), loss, x, y, scaler)["loop: loss"]
    assert v.status == status and v.value.startswith(start), v
    if status == "pass":
        assert "the loss scale 4096 divided out" in v.value, v
