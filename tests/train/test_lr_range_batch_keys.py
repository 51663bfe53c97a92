"""lr_range_test on a user's dataset whose dict batches use key names of its own."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainwell.train import Trainer
from trainwell.train.lr_range import lr_range_test


class Signals(Dataset):
    def __init__(self, keys=("signal", "cls")):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 10, generator=g)
        self.y = (self.x[:, 0] > 0).long()
        self.keys = keys

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {self.keys[0]: self.x[i], self.keys[1]: self.y[i], "id": i}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(10, 16), nn.Linear(16, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _run(dataset, **kwargs):
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return lr_range_test(model, opt, DataLoader(dataset, batch_size=32), steps=20, **kwargs)


def test_own_key_names_are_read_as_the_trainer_reads_them():
    named = _run(Signals(), batch_keys=("signal", "cls"))
    known = _run(Signals(keys=("x", "y")))  # the same batches under names trainwell knows
    assert named.losses == known.losses and named.lrs == known.lrs


def test_without_batch_keys_the_error_names_lr_range_test_s_argument():
    with pytest.raises(TypeError, match=r"keys 'signal', 'cls', 'id' has no input key.*"
                                        r"lr_range_test\(\.\.\., batch_keys=\('input_key', 'target_key'\)\)"):
        _run(Signals())


def test_a_dict_of_arrays_in_memory_takes_batch_keys_too():
    data = Signals()
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lr_range_test(model, opt, {"signal": data.x, "cls": data.y}, steps=20, batch_keys=("signal", "cls"))
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert result.losses == lr_range_test(model, opt, data.x, data.y, steps=20).losses


@pytest.mark.parametrize("keys", ["signal", ("signal",), ("signal", "cls", "id"), ("signal", 1)])
def test_batch_keys_that_are_not_two_names_are_refused_by_both_calls(keys):
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"^Trainer\(batch_keys=.*\) is not allowed: give two key names"):
        Trainer(model, opt, epochs=1, batch_keys=keys)
    with pytest.raises(TypeError, match=r"^lr_range_test\(batch_keys=.*\) is not allowed: give two key names"):
        lr_range_test(model, opt, DataLoader(Signals(), batch_size=32), steps=20, batch_keys=keys)


def test_a_misspelt_key_is_named():
    model = Net()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_keys=("sig", "cls"))
    with pytest.raises(TypeError, match=r"batch_keys \('sig', 'cls'\) names 'sig', which the batch does not have: "
                                        r"its keys are 'signal', 'cls', 'id'"):
        trainer.fit(DataLoader(Signals(), batch_size=32))
