"""A callback that reads validation metrics, in a run without validation data, is refused in the words of the
caller: a library user is told what to pass to ``fit`` or to drop the callback; a config names its own keys."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell.config import StopConfig
from trainwell.errors import ConfigError, TrainwellError
from trainwell.train import EarlyStopping, GeneralizationLoss, Trainer, stop_callback


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.body(x)


def user_loader():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 4, generator=g), torch.randint(0, 3, (48,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=g)


@pytest.mark.parametrize("callback, name", [(EarlyStopping(patience=2), "EarlyStopping"),
                                            (GeneralizationLoss(alpha=5), "GeneralizationLoss")])
def test_library_user_is_told_to_pass_validation_data_or_drop_the_callback(callback, name):
    torch.manual_seed(0)
    model = TwoLayer()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), 1e-3), epochs=3, callbacks=[callback])
    with pytest.raises(TrainwellError) as err:
        trainer.fit(user_loader())
    message = str(err.value)
    assert not isinstance(err.value, ConfigError)
    assert "'val_loss', which this run does not log" in message and len(message.splitlines()) == 1
    assert "trainer.fit(train, val)" in message and f"drop {name} from callbacks" in message
    assert "stop." not in message and "config" not in message
    assert (f"monitor one of them ({name}(monitor=...))" in message) == (name == "EarlyStopping")


def test_library_user_with_validation_data_trains():
    torch.manual_seed(0)
    model = TwoLayer()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), 1e-3), epochs=2,
                      callbacks=[EarlyStopping(patience=2)])
    state = trainer.fit(user_loader(), user_loader())
    assert len(state.history) == 2 and all("val_loss" in r for r in state.history)


def test_a_config_built_stopper_names_the_config_keys():
    torch.manual_seed(0)
    model = TwoLayer()
    stopper = stop_callback.from_config(StopConfig(criteria=["early_stopping"], patience=2))
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), 1e-3), epochs=2, callbacks=[stopper])
    with pytest.raises(ConfigError) as err:
        trainer.fit(user_loader())
    message = str(err.value)
    assert "monitor one of them (stop.monitor)" in message and "stop.strict = false" in message
    assert "trainer.fit" not in message and len(message.splitlines()) == 1
    relaxed = stop_callback.from_config(StopConfig(criteria=["early_stopping"], patience=2, strict=False))
    model = TwoLayer()
    state = Trainer(model, torch.optim.Adam(model.parameters(), 1e-3), epochs=2, callbacks=[relaxed]).fit(
        user_loader())
    assert len(state.history) == 2
