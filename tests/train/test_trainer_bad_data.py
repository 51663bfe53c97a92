"""A user's own model and data with the faults data has: empty tensors, NaN or infinite values."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell.train import Trainer


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _trainer(model=None, **kwargs):
    torch.manual_seed(0)
    model = model or Net()
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, **kwargs)


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_empty_tensors_are_named_as_tensors_not_as_a_loader():
    with pytest.raises(ValueError, match=r"^train: got 0 examples \(the inputs and targets are empty\)"):
        _trainer(batch_size=8).fit((torch.empty(0, 4), torch.empty(0, dtype=torch.long)))


def test_an_empty_loader_is_still_named_as_a_loader():
    loader = DataLoader(TensorDataset(torch.empty(0, 4), torch.empty(0, dtype=torch.long)), batch_size=8)
    with pytest.raises(ValueError, match="the DataLoader yielded no batches"):
        _trainer().fit(loader)


def test_nan_inputs_are_named_as_the_cause_of_the_non_finite_loss():
    x, y = _data()
    x[[3, 7], 1] = math.nan
    x[7, 2] = math.inf
    state = _trainer(batch_size=8).fit((x, y))
    assert math.isnan(state.history[0]["train_loss"])  # the oracle: torch's own loss on these rows is NaN
    assert state.failure.startswith("non-finite training loss at epoch 1: the training inputs hold 3 NaN/inf "
                                    "values (in 2 of 40 rows)")
    assert "torch.nan_to_num" in state.failure and len(state.history) == 1


def test_nan_regression_targets_are_named():
    x, _ = _data()
    y = x[:, :3].sum(1, keepdim=True).repeat(1, 3)
    y[5, 0] = math.nan
    state = _trainer(batch_size=8, loss_fn=nn.functional.mse_loss).fit((x, y))
    assert "the training targets hold 1 NaN/inf values (in 1 of 40 rows)" in state.failure
    assert "inputs" not in state.failure.split(":")[1]


def test_clean_data_that_diverges_keeps_the_plain_reason():
    x, y = _data()
    model = Net()
    with torch.no_grad():
        model.a.weight.fill_(math.nan)
    state = _trainer(model, batch_size=8).fit((x, y))
    assert state.failure == "non-finite training loss at epoch 1"


def test_one_hot_integer_labels_are_named_with_both_fixes():
    x, y = _data()
    onehot = nn.functional.one_hot(y, 3)  # int64 (40, 3): torch's cross-entropy fails on it deep inside
    with pytest.raises(RuntimeError):
        nn.functional.cross_entropy(Net()(x), onehot)
    with pytest.raises(ValueError, match=r"one-hot labels \(torch.int64\); give class indices, shape \(N,\) "
                                         r"\(y.argmax\(1\)\), or probabilities as floats"):
        _trainer(batch_size=8).fit((x, onehot))
    soft = _trainer(batch_size=8).fit((x, onehot.float()))  # the float form trains, as torch takes it
    assert math.isfinite(soft.history[-1]["train_loss"])


@pytest.mark.parametrize("loss_fn", [nn.BCEWithLogitsLoss(), nn.functional.binary_cross_entropy_with_logits])
def test_binary_targets_of_the_wrong_rank_are_named_with_both_fixes(loss_fn):
    x, _ = _data()
    y = (x[:, 0] > 0).float()
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))  # one score per example, (N, 1)
    with pytest.raises(ValueError, match="Target size"):  # torch's own refusal, which does not say which to change
        loss_fn(model(x), y)
    with pytest.raises(ValueError, match=r"binary targets are \(8,\) but the model gives one score per example as "
                                         r"\(8, 1\): give the targets as \(N, 1\) \(y.unsqueeze\(1\)\)"):
        _trainer(model, batch_size=8, loss_fn=loss_fn).fit((x, y))
    state = _trainer(model, batch_size=8, loss_fn=loss_fn).fit((x, y.unsqueeze(1)))
    assert math.isfinite(state.history[-1]["train_loss"])
