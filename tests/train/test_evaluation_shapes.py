"""Evaluation data whose shape the model's first layer refuses (``Trainer.validate``/``test``/``predict``, and the
validation data of ``fit``) is named in one line, as training data is; other errors stay torch's own."""
import re

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell.train import Trainer


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class WrongSecondLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(7, 3)

    def forward(self, x):
        return self.b(self.a(x))


def trained():
    torch.manual_seed(0)
    model = Mlp()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8)
    trainer.fit((torch.randn(16, 4), torch.randint(0, 3, (16,))))
    return trainer


WRONG = torch.randn(12, 5)
LABELS = torch.randint(0, 3, (12,))


@pytest.mark.parametrize("call, what", [
    (lambda t: t.validate((WRONG, LABELS)), "val"),
    (lambda t: t.validate(WRONG, LABELS), "val"),
    (lambda t: t.test(DataLoader(TensorDataset(WRONG, LABELS), batch_size=4)), "test"),
    (lambda t: t.predict(WRONG), "predict"),
    (lambda t: t.predict(DataLoader(TensorDataset(WRONG), batch_size=4)), "predict"),
])
def test_a_wrong_feature_count_after_training_is_named_in_one_line(call, what):
    trainer = trained()
    with pytest.raises(ValueError) as err:
        call(trainer)
    message = str(err.value)
    assert message.startswith(f"{what} batches hold inputs of shape (")
    assert "first layer 'fc1' is Linear(in_features=4), which takes (N, 4)" in message
    assert "the data has 5 features" in message and len(message.splitlines()) == 1
    with pytest.raises(RuntimeError):  # the oracle: torch refuses the same inputs
        trainer.learner.model(WRONG)


def test_wrong_validation_data_in_fit_and_integer_inputs_are_named():
    model = Mlp()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8)
    with pytest.raises(ValueError, match=r"^val batches hold inputs of shape \(12, 5\)"):
        trainer.fit((torch.randn(16, 4), torch.randint(0, 3, (16,))), (WRONG, LABELS))
    with pytest.raises(TypeError, match=r"^predict inputs are uint8, .*x.float\(\) / 255"):
        trainer.predict(torch.zeros(3, 4, dtype=torch.uint8))


def test_other_errors_in_evaluation_are_torchs_own():
    model = WrongSecondLayer()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8)
    with pytest.raises(RuntimeError) as ours:
        trainer.predict(torch.randn(12, 4))
    with pytest.raises(RuntimeError) as torchs:
        trainer.learner.model(torch.randn(12, 4))
    assert str(ours.value) == str(torchs.value)


class NormedCnn(nn.Module):  # a user's CNN with BatchNorm, which needs the batch axis the conv does not
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.head = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).mean((-2, -1)))


@pytest.mark.parametrize(("model", "example"), [
    (nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)), torch.randn(4)),
    (NormedCnn(), torch.randn(3, 6, 6))])
def test_one_example_without_its_batch_axis_is_named_where_a_later_layer_needs_the_axis(model, example):
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8)
    with pytest.raises(ValueError) as torch_says:  # the oracle: torch refuses the same input in eval mode
        model.eval()(example)
    assert "input" in str(torch_says.value)
    shape = tuple(example.shape)
    with pytest.raises(ValueError, match=rf"predict got inputs of shape {re.escape(str(shape))}, one example "
                                         r"without its batch axis: .* give x.unsqueeze\(0\) for one example"):
        trainer.predict(example)
    with torch.no_grad():
        assert torch.allclose(trainer.predict(example.unsqueeze(0)), model.eval()(example.unsqueeze(0)))
    model.train()
    with pytest.raises(ValueError, match="label"):  # trainwell's own checks on evaluation data are unchanged
        trainer.validate((example.unsqueeze(0).repeat(4, *[1] * example.dim()), torch.tensor([0, 1, 2, 5])))
