"""The doctor on a validation loss averaged with the wrong denominator: batch means summed and divided by the number
of examples (about batch-size times too small), or per-example sums divided by the number of batches (too large).
The watch reads the loss calls the validation makes without gradients and compares the value given to
``w.validate`` with the averages of those batches. The weighted mean per example, the mean of batch means over equal
batches, and a validation loss that differs from the training loss (dropout, label smoothing on training only)
are not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.average_forms import wrong_form

NAME = "loop: validation loss average"


def _splits(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(10, 3, generator=g)
    x, xv = torch.randn(256, 10, generator=g), torch.randn(100, 10, generator=g)
    return TensorDataset(x, (x @ w).argmax(1)), TensorDataset(xv, (xv @ w).argmax(1))


class Net(nn.Module):
    """A small classifier with dropout."""

    def __init__(self):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(10, 32), nn.Dropout(0.2), nn.Linear(32, 3)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def _run(average: str, val_batch: int = 16):
    """Trains 3 epochs and validates after each, the validation loss averaged as ``average`` says."""
    torch.manual_seed(0)
    train_ds, val_ds = _splits()
    train_loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_ds, batch_size=val_batch)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_loss = nn.CrossEntropyLoss(label_smoothing=0.1)  # smoothing in training only
    val_loss_fn = nn.CrossEntropyLoss()
    with doctor.watch(model, opt, every=50) as w:
        for _ in range(3):
            model.train()
            for xb, yb in train_loader:
                loss = train_loss(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            model.eval()
            with torch.no_grad():
                if average == "means_over_examples":
                    v = sum(F.cross_entropy(model(xb), yb).item() for xb, yb in val_loader) / len(val_ds)
                elif average == "sums_over_batches":
                    v = sum(F.cross_entropy(model(xb), yb, reduction="sum").item()
                            for xb, yb in val_loader) / len(val_loader)
                elif average == "weighted":
                    v = sum(val_loss_fn(model(xb), yb).item() * len(yb) for xb, yb in val_loader) / len(val_ds)
                else:  # the mean of the batch means
                    v = sum(val_loss_fn(model(xb), yb).item() for xb, yb in val_loader) / len(val_loader)
            w.validate(v)
    return w.report().verdicts


@pytest.fixture(scope="module")
def reports():
    return {a: _run(a, 20 if a == "mean_of_means" else 16)
            for a in ("means_over_examples", "sums_over_batches", "weighted", "mean_of_means")}


def _verdict(verdicts, check=NAME):
    return next((v for v in verdicts if v.check == check), None)


@pytest.mark.slow
def test_batch_means_over_the_examples_fail(reports):
    v = _verdict(reports["means_over_examples"])
    assert v is not None and v.status == "fail" and "batch means summed" in v.value, v
    assert "100 examples" in v.value and "7 batches" in v.value
    over = _verdict(reports["means_over_examples"], "overfitting")
    assert over.status == "info" and NAME in over.value


@pytest.mark.slow
def test_batch_sums_over_the_batches_fail(reports):
    v = _verdict(reports["sums_over_batches"])
    assert v is not None and v.status == "fail" and "reduction='sum'" in v.value, v


@pytest.mark.slow
def test_weighted_mean_and_mean_of_equal_batch_means_pass(reports):
    for average in ("weighted", "mean_of_means"):  # 100 rows in 5 batches of 20: the mean of means is the mean
        assert _verdict(reports[average]) is None, average
        assert _verdict(reports[average], "overfitting").status == "pass"


def test_forms_of_a_validations_batches():
    calls = [(16, "mean", 0.5), (16, "mean", 0.7), (4, "mean", 0.9)]
    n, means = 36, 0.5 + 0.7 + 0.9
    assert wrong_form(means / n, calls) == "means"
    assert wrong_form((0.5 * 16 + 0.7 * 16 + 0.9 * 4) / 3, calls) == "sums"
    assert wrong_form((0.5 * 16 + 0.7 * 16 + 0.9 * 4) / n, calls) == "right"
    assert wrong_form(means / 3, calls) == "unequal"  # the 4 rows weigh a third: 10% above the mean per example
    near = [(16, "mean", 0.6), (16, "mean", 0.7), (4, "mean", 0.62)]  # the mean of means 1.9% off: not named
    assert wrong_form((0.6 + 0.7 + 0.62) / 3, near) == "right"
    assert wrong_form(0.42, calls) is None  # another loss, or accuracy: not read
    assert wrong_form(0.5, [(1, "mean", 0.4), (1, "mean", 0.6)]) == "right"  # batches of one: all forms agree
    assert wrong_form(0.1, [(36, "mean", 0.1)]) is None  # one batch: nothing to tell


def test_a_mode_of_the_loops_own_around_a_validation_forward_is_left_alone():
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt) as w:
        loss = F.cross_entropy(model(torch.randn(8, 4)), torch.randint(0, 3, (8,)))
        loss.backward()
        opt.step()
        w.step(loss)
        with torch.device("cpu"), torch.no_grad():  # a TorchFunctionMode of the loop's own
            model(torch.randn(8, 4))
        stack = torch.overrides._get_current_function_mode_stack()
        assert not any(isinstance(m, torch.utils._device.DeviceContext) for m in stack)
    assert torch.overrides._get_current_function_mode_stack() == []


def _last_batch_run(n_val: int, average: str):
    """Validates on ``n_val`` examples in batches of 64 (the last one smaller), its last 2 examples mislabeled, the
    loss averaged as the mean of the batch means or per example."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(10, 3, generator=g)
    x, xv = torch.randn(256, 10, generator=g), torch.randn(n_val, 10, generator=g)
    yv = (xv @ w).argmax(1)
    yv[-2:] = (yv[-2:] + 1) % 3  # two wrong labels at the end of the validation set
    train_loader = DataLoader(TensorDataset(x, (x @ w).argmax(1)), batch_size=32, shuffle=True)
    val_loader = DataLoader(TensorDataset(xv, yv), batch_size=64)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=50) as w:
        for _ in range(3):
            for xb, yb in train_loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            with torch.no_grad():
                losses = [(F.cross_entropy(model(xb), yb).item(), len(yb)) for xb, yb in val_loader]
            if average == "mean_of_means":
                w.validate(sum(v for v, _ in losses) / len(losses))
            else:
                w.validate(sum(v * n for v, n in losses) / n_val)
    return _verdict(w.report().verdicts)


@pytest.fixture(scope="module")
def last_batch():
    return {(n, a): _last_batch_run(n, a) for n, a in ((130, "mean_of_means"), (130, "weighted"),
                                                       (1000, "mean_of_means"))}


@pytest.mark.slow
def test_a_mean_of_batch_means_with_a_tiny_last_batch_among_few_warns(last_batch):
    v = last_batch[(130, "mean_of_means")]  # batches of 64, 64 and 2: the 2 weigh a third
    assert v is not None and v.status == "warn" and "3 batch means over batches of 2 to 64 examples" in v.value, v
    assert last_batch[(130, "weighted")] is None


@pytest.mark.slow
def test_a_mean_of_batch_means_with_many_batches_is_not_named(last_batch):
    assert last_batch[(1000, "mean_of_means")] is None  # 15 batches of 64 and one of 40: well under 5% off
