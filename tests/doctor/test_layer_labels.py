"""The dead-unit check names a layer by its name and by what it is: a user's Sequential inside their own module gives
its ReLU the bare index 'body.1', which the row follows with the layer type and the weighted layer before it."""

import pytest
import torch
from torch import nn

from trainwell import doctor
from trainwell.doctor.layer_labels import layer_label, shape_of


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.mark.slow  # ~0.5 s: a check run
def test_a_dead_layer_of_a_user_s_sequential_is_named_with_its_type():
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():
        model.body[2].bias.fill_(-100.0)  # every unit of the second ReLU is off for every input
    x = torch.randn(64, 8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    v = doctor.check(model, x, torch.randint(0, 4, (64,)), nn.CrossEntropyLoss(), optimizer=opt)["dead units"]
    assert v.status == "fail"
    assert v.value.startswith("100% of the units of 'body.3' (ReLU after Linear(64 -> 32)) are 0 on all 64 examples")


def test_a_layer_s_label_says_its_sizes():
    assert shape_of(nn.Conv2d(3, 16, 3)) == "Conv2d(3 -> 16)"
    assert shape_of(nn.Embedding(100, 8)) == "Embedding(100 -> 8)"
    assert shape_of(nn.ReLU()) == "ReLU"
    assert layer_label("act", nn.ReLU6(), None) == "'act' (ReLU6)"
    assert layer_label("F.relu after conv", None, nn.Conv1d(1, 8, 3)) == "'F.relu after conv'"  # says what it is
