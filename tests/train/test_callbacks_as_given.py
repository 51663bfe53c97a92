"""Callbacks as users write them: imported from trainwell.train, given without their list, or as the class."""

import pytest
import torch
from torch import nn

from trainwell.train import Checkpoint, CSVLogger, EarlyStopping, GeneralizationLoss, Trainer


def _trainer(callbacks, **kwargs):
    model = nn.Linear(3, 2)
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=4, callbacks=callbacks,
                   **kwargs)


@pytest.mark.parametrize("given", [EarlyStopping(), GeneralizationLoss(alpha=5)])
def test_a_criterion_without_its_list_is_named(given):
    name = type(given).__name__
    with pytest.raises(TypeError, match=rf"^callbacks takes a list of callbacks, got {name} alone: "
                                        rf"callbacks=\[{name}\(\.\.\.\)\]$"):
        _trainer(given)


def test_a_callback_without_its_list_is_named(tmp_path):
    with pytest.raises(TypeError, match=r"got CSVLogger alone: callbacks=\[CSVLogger"):
        _trainer(CSVLogger(tmp_path / "m.csv"))


@pytest.mark.parametrize("cls", [EarlyStopping, Checkpoint])
def test_the_class_instead_of_an_instance_is_named(cls):
    with pytest.raises(TypeError, match=rf"{cls.__name__} is the class, not a callback: give an instance"):
        _trainer([cls])


def test_a_tuple_of_callbacks_trains_and_stops_as_a_list_does(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    state = _trainer((EarlyStopping(monitor="train_loss", patience=0, min_delta=10.0),)).fit((x, y))
    assert state.stop.startswith("early stopping") and len(state.history) == 2
