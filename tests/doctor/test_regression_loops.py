"""Regression loops as users write them (their own MLP on standardized features and targets, a DataLoader, MSE,
``w.step(loss, y=yb)`` after ``opt.step()``), each bug beside its healthy twin: gradient accumulation without
dividing the loss by k (also under AMP's GradScaler, and with the step's total given to ``w.step``), a loss counted
twice, a sum over the output columns of per-column means, and ``F.kl_div`` given probabilities or raw outputs
instead of log-probabilities. The bug is named under ``loop: loss``; the twin gets no loop alarm."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

ACCUMULATE = 4


class MLP(nn.Module):
    def __init__(self, d_in=8, d_out=1, log_softmax=False):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, d_out))
        self.log_softmax = log_softmax

    def forward(self, x):
        out = self.net(x)
        return F.log_softmax(out, dim=-1) if self.log_softmax else out


def _standardized(columns=1, n=1024, d=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = torch.tanh(x @ torch.randn(d, columns, generator=g)) + 0.1 * torch.randn(n, columns, generator=g)
    return (x - x.mean(0)) / x.std(0), (y - y.mean(0)) / y.std(0)


def _loader(x, y):
    """Built once per run: one generator shuffles every epoch anew."""
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))


def _optimizer(model, kind):
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-2)
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def _accumulating(divide, optimizer="adam", amp=False, logged="last", epochs=4):
    """A regression loop with gradient accumulation over ACCUMULATE micro-batches (optionally under autocast and a
    GradScaler); ``logged``: the loss given to ``w.step`` is the last micro-batch's, or the step's running total."""
    torch.manual_seed(0)
    x, y = _standardized()
    model = MLP()
    opt = _optimizer(model, optimizer)
    scaler = torch.amp.GradScaler("cpu") if amp else None
    loader = _loader(x, y)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            total = 0.0
            for i, (xb, yb) in enumerate(loader):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    loss = F.mse_loss(model(xb).float(), yb)
                if divide:
                    loss = loss / ACCUMULATE
                if amp:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
                total += loss.item()
                if (i + 1) % ACCUMULATE == 0:
                    if amp:
                        scaler.step(opt)
                        scaler.update()
                    else:
                        opt.step()
                    opt.zero_grad()
                    w.step(loss if logged == "last" else total, y=yb)
                    total = 0.0
    return w.report()


def _loop_alarms(report):
    return [f"{v.check}: {v.value}" for v in report if v.check.startswith("loop:") and v.status in ("warn", "fail")]


@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize("optimizer, logged", [("adam", "last"), ("sgd", "last"), ("adam", "total")])
def test_accumulation_without_dividing_by_k_fails_and_the_divided_loop_passes(optimizer, logged):
    bug = _accumulating(divide=False, optimizer=optimizer, logged=logged)["loop: loss"]
    assert bug.status == "fail"
    assert bug.value.startswith(f"{ACCUMULATE} micro-batches accumulated per step") and \
        f"{ACCUMULATE}x the mean's" in bug.value
    assert f"divide each micro-batch's loss by {ACCUMULATE}" in bug.advice
    twin = _accumulating(divide=True, optimizer=optimizer, logged=logged)
    assert twin["loop: loss"].status == "pass"
    assert twin["loop: loss"].value.startswith("mean squared error over 32 output elements")
    assert f"{ACCUMULATE} micro-batches, each loss divided by {ACCUMULATE}" in twin["loop: loss"].value
    assert _loop_alarms(twin) == []


@pytest.mark.slow  # 0.3-1.2 s each
def test_grad_scaler_factor_is_divided_out_of_the_regression_reading():
    """Under autocast (bfloat16) and a GradScaler, backward() runs on the loss x 65536: the reading divides the
    scale out, so the undivided accumulation still fails as a 4x gradient, and the divided one passes."""
    bug = _accumulating(divide=False, amp=True)["loop: loss"]
    assert bug.status == "fail" and f"{ACCUMULATE}x the mean's" in bug.value
    assert "GradScaler's scale 65536 divided out" in bug.value
    twin = _accumulating(divide=True, amp=True)
    assert twin["loop: loss"].status == "pass" and twin["loop: loss"].value.startswith("mean squared error")
    assert "GradScaler's scale 65536 divided out" in twin["loop: loss"].value
    assert _loop_alarms(twin) == []


def _plain(loss_fn, columns=1, amp=False, optimizer="adam", epochs=4):
    """One backward per step, optionally under autocast and a GradScaler."""
    torch.manual_seed(0)
    x, y = _standardized(columns)
    model = MLP(d_out=columns)
    opt = _optimizer(model, optimizer)
    scaler = torch.amp.GradScaler("cpu") if amp else None
    loader = _loader(x, y)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            for xb, yb in loader:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    out = model(xb).float()
                loss = loss_fn(out, yb)
                opt.zero_grad()
                if amp:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                w.step(loss, y=yb)
    return w.report()


@pytest.mark.slow  # seconds each
def test_grad_scaler_leaves_the_sum_and_the_mean_readings_as_they_are():
    summed = _plain(lambda out, y: F.mse_loss(out, y, reduction="sum"), amp=True, optimizer="sgd")["loop: loss"]
    assert summed.status == "info" and summed.value.startswith("summed squared error over 32 output elements")
    assert "32x the mean's" in summed.advice
    mean = _plain(F.mse_loss, amp=True)["loop: loss"]
    assert mean.status == "pass" and mean.value.startswith("mean squared error over 32 output elements")


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_loss_counted_twice_warns():
    def twice(out, y):
        loss = F.mse_loss(out, y)
        loss = loss + F.mse_loss(out, y)  # the criterion added a second time
        return loss

    bug = _plain(twice)["loop: loss"]
    assert bug.status == "warn" and "gradient is 2x that of its mean" in bug.value
    assert "counted twice" in bug.advice
    twin = _plain(F.mse_loss)
    assert twin["loop: loss"].status == "pass" and _loop_alarms(twin) == []


@pytest.mark.slow  # seconds each
@pytest.mark.parametrize("columns", [2, 3])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_per_column_means_summed_are_named_not_read_as_a_bug(columns, optimizer):
    """sum(F.mse_loss(out[:, j], y[:, j]) for j) is `columns` x the mean over all elements: named like
    reduction='sum' (info), never as a loss counted twice (2 columns give the same factor) or another alarm."""
    def per_column(out, y):
        return sum(F.mse_loss(out[:, j], y[:, j]) for j in range(columns))

    report = _plain(per_column, columns=columns, optimizer=optimizer)
    verdict = report["loop: loss"]
    assert verdict.status == "info"
    assert verdict.value.startswith(f"summed over the {columns} output columns")
    assert f"{columns}x the mean over all {32 * columns} elements" in verdict.value
    assert _loop_alarms(report) == []
    assert not [v for v in report if "counted twice" in str(v.value)]
    lr = report["learning rate (loss curve)"]
    assert not (lr.status in ("warn", "fail") and "raise" in (lr.advice or ""))
    twin = _plain(lambda out, y: F.mse_loss(out, y), columns=columns, optimizer=optimizer)
    assert twin["loop: loss"].status == "pass" and _loop_alarms(twin) == []


def _distillation(loss_fn, log_softmax=False, epochs=4, temperature=1.0):
    """A student fitted to target distributions over 5 classes (a teacher's probabilities, softened by
    ``temperature``), the targets given to ``w.step(loss, y=p)``."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 8, generator=g)
    p = torch.softmax(x @ torch.randn(8, 5, generator=g) / temperature, dim=-1)
    model = MLP(d_out=5, log_softmax=log_softmax)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = _loader(x, p)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            for xb, pb in loader:
                loss = loss_fn(model(xb), pb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=pb)
    return w.report()


@pytest.mark.filterwarnings("ignore:reduction. 'mean'")
@pytest.mark.parametrize("reduction", ["mean", "batchmean"])
@pytest.mark.slow  # 0.29 s each on a 2-core CPU (RESULTS §51)
def test_kl_div_on_probabilities_fails(reduction):
    verdict = _distillation(lambda z, p: F.kl_div(F.softmax(z, dim=-1), p, reduction=reduction))["loop: loss"]
    assert verdict.status == "fail" and "not log-probabilities" in verdict.value
    assert "below 0" in verdict.value  # the first loss
    assert "must be log-probabilities" in verdict.advice and "log_softmax" in verdict.advice


@pytest.mark.slow  # 0.30 s each on a 2-core CPU (RESULTS §51)
def test_kl_div_on_raw_outputs_fails():
    verdict = _distillation(lambda z, p: F.kl_div(z, p, reduction="batchmean"))["loop: loss"]
    assert verdict.status == "fail" and "the raw outputs, not log-probabilities" in verdict.value
    assert "log_softmax" in verdict.advice


@pytest.mark.parametrize("log_softmax", [False, True])
@pytest.mark.slow  # 0.31 s each on a 2-core CPU (RESULTS §51)
def test_kl_div_on_log_probabilities_passes(log_softmax):
    """The distillation loss on log_softmax (in the loss, or ending the model) is a mean KL divergence."""
    if log_softmax:
        report = _distillation(lambda out, p: F.kl_div(out, p, reduction="batchmean"), log_softmax=True)
    else:
        report = _distillation(lambda z, p: F.kl_div(F.log_softmax(z, dim=-1), p, reduction="batchmean"))
    verdict = report["loop: loss"]
    assert verdict.status == "pass" and "KL divergence" in verdict.value
    assert "(weights sum to 1)" in verdict.value
    assert _loop_alarms(report) == []


@pytest.mark.slow  # seconds each
def test_kl_div_at_a_distillation_temperature():
    """Hinton et al.'s loss, KL(softmax(teacher / T) || softmax(student / T)) x T^2: given softmax(z / T) where
    log_softmax(z / T) belongs it fails, naming the temperature; the right one passes."""
    T = 4.0

    def wrong(z, p):
        return F.kl_div(F.softmax(z / T, dim=-1), p, reduction="batchmean") * T**2

    def right(z, p):
        return F.kl_div(F.log_softmax(z / T, dim=-1), p, reduction="batchmean") * T**2

    bug = _distillation(wrong, temperature=T)["loop: loss"]
    assert bug.status == "fail" and "softmax(z / 4)" in bug.value and "log_softmax(z / T" in bug.advice
    twin = _distillation(right, temperature=T)
    assert twin["loop: loss"].status == "pass" and "softmax(z / 4) (a distillation temperature)" in \
        twin["loop: loss"].value
    assert _loop_alarms(twin) == []
