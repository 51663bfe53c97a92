"""A training accuracy logged on the last training batch, under torch.no_grad() and still in train mode, right
before the validation: its forward is not the validation's (user loops over a DataLoader with dropout)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(4, 8, generator=torch.Generator().manual_seed(123))
    y = torch.randint(0, 4, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


def _train(eval_for_validation):
    """Three epochs; after each, the last batch's accuracy in train mode, then a validation over two batches in
    eval mode (or with model.eval() forgotten)."""
    torch.manual_seed(0)
    x, y = _blobs(256, 0)
    xv, yv = _blobs(128, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    val_loader = DataLoader(TensorDataset(xv, yv), batch_size=64)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt) as w:
        for _ in range(3):
            model.train()
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            with torch.no_grad():  # the training accuracy of the last batch, for the log
                train_acc = (model(xb).argmax(1) == yb).float().mean().item()
            assert 0 <= train_acc <= 1
            if eval_for_validation:
                model.eval()
            with torch.no_grad():
                val = sum(F.cross_entropy(model(a), b, reduction="sum").item() for a, b in val_loader) / len(xv)
            w.validate(val)
    return w.report()


@pytest.fixture(scope="module")
def healthy():
    return _train(eval_for_validation=True)


def test_a_training_accuracy_before_an_eval_mode_validation_is_not_read_as_the_validation(healthy):
    mode = healthy["loop: train/eval mode"]
    assert mode.status == "pass" and "eval mode in 3 validations" in mode.value, mode


def test_only_the_validation_batches_are_read_as_validation_inputs(healthy):
    inputs = healthy["loop: validation inputs"]
    assert inputs.value.startswith("128 validation rows"), inputs
    rows = healthy["loop: validation examples"]
    assert rows.status == "pass" and "0 of 128 validation rows" in rows.value, rows
    assert "training examples evaluated beside them" not in rows.value, rows


def test_a_validation_left_in_train_mode_is_still_named_beside_a_training_accuracy():
    mode = _train(eval_for_validation=False)["loop: train/eval mode"]
    assert mode.status == "fail" and "3 of 3 validations ran in train mode" in mode.value, mode


def _train_fresh(order, eval_for_validation=True, no_grad=True):
    """Three epochs; after each, a training accuracy over three fresh batches drawn from the training loader again
    (train mode, no gradients), before the eval-mode validation (``order="before"``) or after it, the model put
    back in train mode first (``"after"``); ``no_grad=False``: both written without ``torch.no_grad()``."""
    torch.manual_seed(0)
    x, y = _blobs(256, 0)
    xv, yv = _blobs(128, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def train_accuracy():
        hits = seen = 0
        with torch.set_grad_enabled(not no_grad):
            for i, (xb, yb) in enumerate(loader):
                hits += int((model(xb).argmax(1) == yb).sum())
                seen += len(yb)
                if i == 2:
                    break
        return hits / seen

    with doctor.watch(model, opt) as w:
        for _ in range(3):
            model.train()
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            if order == "before":
                assert 0 <= train_accuracy() <= 1
            if eval_for_validation:
                model.eval()
            with torch.set_grad_enabled(not no_grad):
                val = F.cross_entropy(model(xv), yv).item()
            if order == "after":
                model.train()
                assert 0 <= train_accuracy() <= 1
            w.validate(val)
    return w.report()


@pytest.mark.parametrize("order, no_grad", [("before", True), ("after", True), ("before", False)])
def test_a_training_accuracy_on_fresh_training_batches_beside_an_eval_validation_passes(order, no_grad):
    mode = _train_fresh(order, no_grad=no_grad)["loop: train/eval mode"]
    assert mode.status == "pass" and "eval mode in 3 validations" in mode.value, mode


def test_a_train_mode_validation_after_fresh_training_batches_is_still_named():
    mode = _train_fresh("before", eval_for_validation=False)["loop: train/eval mode"]
    assert mode.status == "fail" and "3 of 3 validations ran in train mode" in mode.value, mode
