"""Evaluation data whose shape the model's first layer refuses (``Trainer.validate``/``test``/``predict``, and the
validation data of ``fit``) is named in one line, as training data is; other errors stay torch's own."""
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
