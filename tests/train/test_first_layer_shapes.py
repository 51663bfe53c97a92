"""Data whose shape the model's first layer refuses (a wrong feature count, inputs without their batch or channel
dimension) is named in one line at the first batch; any other shape error is torch's own, unchanged."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell.train import Trainer


class Mlp(nn.Module):
    def __init__(self, features=4):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(features, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class SmallCnn(nn.Module):
    def __init__(self, channels=1):
        super().__init__()
        self.conv, self.head = nn.Conv2d(channels, 4, 3), nn.Linear(4, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


class WrongSecondLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(7, 3)

    def forward(self, x):
        return self.b(self.a(x))


def fit(model, x, loader=False):
    y = torch.randint(0, 3, (len(x),), generator=torch.Generator().manual_seed(0))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1,
                      batch_size=None if loader else 8)
    data = DataLoader(TensorDataset(x, y), batch_size=8) if loader else (x, y)
    return trainer.fit(data)


@pytest.mark.parametrize("model, x, expected, fix", [
    (Mlp(4), torch.randn(40, 5), "first layer 'fc1' is Linear(in_features=4), which takes (N, 4)",
     "the data has 5 features: give the layer 5, or the data 4"),
    (Mlp(4), torch.randn(40), "shape (8,), but the model's first layer 'fc1' is Linear(in_features=4)",
     "give the data as (N, 4)"),
    (Mlp(1), torch.randn(40), "first layer 'fc1' is Linear(in_features=1), which takes (N, 1)", "x.unsqueeze(1)"),
    (SmallCnn(1), torch.randn(40, 12, 12), "shape (8, 12, 12), but the model's first layer 'conv' is "
     "Conv2d(in_channels=1), which takes (N, 1, H, W)", "x.unsqueeze(1)"),
    (SmallCnn(1), torch.randn(40, 3, 12, 12), "Conv2d(in_channels=1)", "the data has 3 channels"),
])
@pytest.mark.parametrize("loader", [False, True])
def test_a_shape_the_first_layer_refuses_is_named_in_one_line(model, x, expected, fix, loader):
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError) as err:
        fit(model, x, loader)
    message = str(err.value)
    assert message.startswith("train batches hold inputs of shape (8")
    assert expected in message and fix in message and len(message.splitlines()) == 1
    with pytest.raises(RuntimeError):  # the oracle: torch refuses the same batch
        model(x[:8])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("model, x", [(WrongSecondLayer(), torch.randn(40, 4)),
                                      (SmallCnn(1), torch.randn(40, 1, 2, 2))])
def test_other_shape_errors_are_torchs_own(model, x):
    with pytest.raises(RuntimeError) as ours:
        fit(model, x)
    with pytest.raises(RuntimeError) as torchs:
        model(x[:8])
    assert str(ours.value) == str(torchs.value)


def test_the_right_shapes_train():
    torch.manual_seed(0)
    assert len(fit(Mlp(4), torch.randn(40, 4)).history) == 1
    assert len(fit(SmallCnn(1), torch.randn(40, 1, 6, 6), loader=True).history) == 1
